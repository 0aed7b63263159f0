"""Task registry: which ``AutoModelFor...`` class serves each task, and how to infer a task.

Each task later gets its own small module (preprocess, collate, metrics); this file only knows
names and model classes so that loading stays independent of training code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TaskError


@dataclass(frozen=True)
class TaskSpec:
    """What nbtune needs to know about a task to load a model for it."""

    name: str
    auto_class: str  # attribute of ``transformers``
    description: str
    has_labels: bool = False  # takes num_labels / id2label


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("text-classification", "AutoModelForSequenceClassification",
                 "sentence or sentence-pair classification; regression with num_labels=1", has_labels=True),
        TaskSpec("token-classification", "AutoModelForTokenClassification",
                 "a label per token (NER, POS)", has_labels=True),
        TaskSpec("question-answering", "AutoModelForQuestionAnswering", "extractive QA (start/end spans)"),
        TaskSpec("causal-lm", "AutoModelForCausalLM", "next-token language modelling, instruction tuning"),
        TaskSpec("masked-lm", "AutoModelForMaskedLM", "masked language modelling (domain adaptation)"),
        TaskSpec("seq2seq", "AutoModelForSeq2SeqLM", "sequence to sequence: summarisation, translation"),
    )
}

ALIASES = {
    "sequence-classification": "text-classification",
    "classification": "text-classification",
    "regression": "text-classification",
    "ner": "token-classification",
    "qa": "question-answering",
    "extractive-qa": "question-answering",
    "text-generation": "causal-lm",
    "clm": "causal-lm",
    "mlm": "masked-lm",
    "fill-mask": "masked-lm",
    "text2text-generation": "seq2seq",
    "summarization": "seq2seq",
    "translation": "seq2seq",
}

# Suffixes of transformers class names -> task. Order matters: the longest, most specific first.
_CLASS_SUFFIXES = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForConditionalGeneration", "seq2seq"),
    ("ForSeq2SeqLM", "seq2seq"),
    ("ForCausalLM", "causal-lm"),
    ("LMHeadModel", "causal-lm"),
    ("ForMaskedLM", "masked-lm"),
)


def get_task(name: str) -> TaskSpec:
    """The TaskSpec for ``name`` (aliases accepted), or a TaskError listing the known tasks."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in TASKS:
        known = ", ".join(TASKS)
        raise TaskError(f"Unknown task {name!r}. Known tasks: {known}.")
    return TASKS[key]


def task_from_class_name(class_name: str) -> str | None:
    """Infer a task from a model class name such as ``BertForSequenceClassification``."""
    for suffix, task in _CLASS_SUFFIXES:
        if class_name.endswith(suffix):
            return task
    return None


def auto_class(spec: TaskSpec):
    """The transformers auto class for a task (imported lazily: transformers is slow to import)."""
    import transformers

    return getattr(transformers, spec.auto_class)


def supported_tasks(config) -> list[str]:
    """Tasks for which transformers has a model class for this config type."""
    out = []
    for spec in TASKS.values():
        try:
            auto_class(spec)._model_mapping[type(config)]
        except (KeyError, ValueError):
            continue
        out.append(spec.name)
    return out


def check_labels(num_labels: int | None, labels, error: type[Exception] = TaskError) -> tuple[int | None, list[str] | None]:
    """Validated ``(num_labels, label names)``: names set the count; a count alone must be a positive integer.

    ``error`` is the exception class the caller reports with (loading and head replacement differ)."""
    if labels is not None:
        labels = [str(x) for x in labels]
        if not labels or len(set(labels)) != len(labels):
            raise error(f"labels must be a non-empty list of distinct names; got {labels}.")
        if num_labels is not None and num_labels != len(labels):
            raise error(f"num_labels={num_labels} but {len(labels)} label names were given; pass one of them.")
        num_labels = len(labels)
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1):
        raise error(f"num_labels must be a positive integer (1 for regression); got {num_labels!r}.")
    return num_labels, labels


def label_config(task: str, num_labels: int, names: list[str] | None = None) -> dict:
    """Config values for a head of ``num_labels`` outputs: label names both ways, and the problem type."""
    names = names or [f"LABEL_{i}" for i in range(num_labels)]
    out = {"num_labels": num_labels, "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    if task == "text-classification":
        out["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
    return out


def has_default_names(id2label: dict) -> bool:
    """True while a head's labels are still the placeholders ``LABEL_i`` (named by no data yet)."""
    return all(str(v) == f"LABEL_{k}" for k, v in id2label.items())
