"""Task name -> handler (preprocess, collate, metrics). New tasks register here."""

from __future__ import annotations

from ..errors import TaskError
from .base import TaskHandler


def handler_for(session) -> TaskHandler:
    """The handler for the session's task (classification turns into regression with one output)."""
    from .causal_lm import CausalLMTask
    from .classification import ClassificationTask
    from .masked_lm import MaskedLMTask
    from .question_answering import QuestionAnsweringTask
    from .seq2seq import Seq2SeqTask
    from .token_classification import TokenClassificationTask

    task = session.task
    if task == "text-classification":
        config = getattr(session.model, "config", None)
        return ClassificationTask(regression=getattr(config, "num_labels", 2) == 1)
    if task == "token-classification":
        return TokenClassificationTask(session)
    simple = {"causal-lm": CausalLMTask, "masked-lm": MaskedLMTask, "seq2seq": Seq2SeqTask,
              "question-answering": QuestionAnsweringTask}
    if task in simple:
        return simple[task]()
    if task is None and getattr(session.model, "config", None) is None:
        from .module import ModuleTask

        return ModuleTask()
    raise TaskError(
        f"This session has no task ({task!r}), so nbtune does not know how to read data for it. Load the model with "
        "task=... (text-classification, token-classification, question-answering, causal-lm, masked-lm, seq2seq)."
    )
