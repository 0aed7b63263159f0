"""What every task module provides to the training loop: prepare, collate, collect, metrics."""

from __future__ import annotations

from typing import Any, Callable

import torch

from nbtune.core.common.errors import TaskError, TrainConfigError
from nbtune.core.data.features import DataError, Features, pick_column, require_present
from nbtune.core.data.modality import Modality, get_modality
from nbtune.core.tasks.labels import classes


class TaskHandler:
    """Base class for one task: what it is (class attributes, read by loading, adapters and recipes) and how it reads,
    batches and scores data (the hooks). A task file subclasses this and decorates the class with
    ``@register_task``."""

    name = ""
    aliases: tuple[str, ...] = ()
    description = ""
    auto_class: str | None = None  # attribute of ``transformers`` that builds a model for the task
    class_suffixes: tuple[str, ...] = ()  # model class names ending so are models for this task
    labelled = False  # takes num_labels / label names; its head is sized to them
    new_head = False  # the head is new for the task: trained and saved along with any adapter
    peft_task_type: str | None = None  # peft's TaskType, where peft has one
    # default evaluation batch = training batch x this: no activations are kept for backward, so it fits
    eval_batch_factor = 4
    columns: dict[str, tuple[str, ...]] = {}  # role -> accepted column names, first found wins
    label_role: str | None = None  # the role of ``columns`` holding class labels (names or ids), if any
    main_metric = "loss"
    greater_is_better = False
    raw_data = False  # True: prepare() takes the data as given (tensors), not as a table
    order = 50  # place in listings (encoder tasks first, as the docs present them)
    default_objective = "supervised"  # the objective (nbtune.core.objectives) that trains it unless one is named
    chunked_logits = False  # its loss computes the output layer's logits in chunks (memory estimates count one chunk)
    modality = "text"  # what its inputs are (nbtune.core.data.modality): batch sizes, probes, storage ask it

    @classmethod
    def eval_batch(cls, batch_size: int, eval_batch_size: int | None = None) -> int:
        """The evaluation batch of a run at ``batch_size``: ``eval_batch_size`` if given, else ``batch_size`` times
        ``eval_batch_factor`` (evaluation and the memory estimate both size it so)."""
        return eval_batch_size or batch_size * cls.eval_batch_factor

    @classmethod
    def eval_generation_batch(cls, eval_batch_size: int | None = None) -> int | None:
        """The batch an evaluation generates text in (seq2seq's ROUGE/BLEU), ``eval_batch_size`` being the run's
        setting; None for tasks whose evaluation does not generate."""
        return None

    @classmethod
    def problem_type(cls, num_labels: int) -> str | None:
        """The ``config.problem_type`` for a head of ``num_labels`` outputs (transformers picks the loss by it);
        None: leave it to transformers."""
        return None

    @classmethod
    def inputs(cls) -> Modality:
        """The task's modality (an instance; modalities keep no state)."""
        return get_modality(cls.modality)

    @classmethod
    def for_session(cls, session) -> "TaskHandler":
        """The handler instance for a session (a task whose behaviour depends on the head overrides this)."""
        return cls()

    def column(self, table, role: str, given: dict[str, str], required: bool = True) -> str | None:
        """The column playing ``role``: the user's mapping, else the first of the task's names for it present."""
        return pick_column(table, role, self.columns.get(role, (role,)), given, required=required)

    def classes_in(self, table, cfg) -> set | None:
        """The classes (label names or integer ids) of a table's labels, before any encoding; None for a task
        without classes or a table without labels (``nbtune.core.tasks.labels`` checks them across tables)."""
        column = self.column(table, self.label_role, cfg.columns, required=False) if self.label_role else None
        return classes(table[column].tolist()) if column else None

    def forward(self, model, batch: dict[str, torch.Tensor]):
        """Run the model on a batch; the result has ``.loss`` (transformers models compute it themselves)."""
        return model(**batch)

    def prepare(self, session, table, cfg, require_labels: bool = True) -> Features:
        """Validate columns and labels, encode (eagerly, or per item with ``encoded_per_item``) and return features
        (raises DataError, changes nothing)."""
        raise NotImplementedError

    def eval_collator(self, session, cfg):
        """The collator for evaluation (deterministic where training's is random, e.g. MLM masking)."""
        return self.collator(session, cfg)

    def pack(self, features: Features, cfg) -> Features:
        """Training features packed several to a row (``packing=True``); only causal LM packs."""
        raise TrainConfigError(f"packing=True is for causal-lm fine-tuning; {self.name} examples are not packed.")

    def collect(self, outputs, batch: dict[str, torch.Tensor], store: dict[str, list]) -> None:
        """Keep what ``metrics`` needs from one evaluation batch (on the CPU)."""

    def metrics(self, store: dict[str, list], loss: float, features: Features | None = None) -> dict[str, float]:
        return {"loss": loss}

    def generation_metrics(self, session, features: Features, cfg) -> dict[str, float]:
        """Metrics that need generated text (ROUGE, BLEU); none by default."""
        return {}

    def apply(self, session, features: Features) -> None:
        """Changes to the model that the data implies (label names), made only once all data is valid."""

    def step_metrics(self, outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-step training metrics besides the loss, as 0-d device tensors (no host sync here: the loop reads them
        with the loss, once per step). They reach ``StepEnded.metrics``, the history and the dashboard's second
        panel; e.g. preference tuning's reward margin and accuracy. None by default."""
        return {}

    def predict(self, session, items: list, batch_size: int, max_length: int | None) -> list[dict[str, Any]]:
        """One prediction dict per input item (the model is in eval mode)."""
        raise TaskError(f"predict() is not defined for {self.name}; use evaluate(data) for its metrics.")

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return self.inputs().batch_size(batch)

    def tokens_of(self, batch: dict[str, torch.Tensor]) -> int:
        return self.inputs().tokens(batch)

    def encoded_per_item(self, session, values: list, cfg, extra: list[dict[str, Any]] | None = None,
                         label_names: dict[int, str] | None = None, meta: dict[str, Any] | None = None) -> Features:
        """Features the modality encodes one example at a time, as batches ask (``Features`` says when they are
        cached and how random transforms are seeded). ``values`` are read raw inputs; ``extra`` holds each
        example's other fields (its ``labels``), added to the encoded inputs as they are."""
        modality = self.inputs()
        extra = extra or [{} for _ in values]
        augment = cfg.augment
        # the user's own random transform (augment=a pipeline) goes to the modality, which applies it seeded
        own = {"transform": augment} if callable(augment) else {}

        def encode(row: dict[str, Any], train: bool, rng) -> dict[str, Any]:
            # no generator: no random transform (augment=False, or the modality is deterministic)
            return {**modality.encode(session, row["value"], train, rng if augment else None, **own), **row["extra"]}

        rows = [{"value": v, "extra": e} for v, e in zip(values, extra)]
        return Features(rows, [modality.value_size(v) for v in values], label_names=label_names, meta=meta or {},
                        encode=encode, seed=cfg.seed, cache=modality.deterministic)

    def collator(self, session, cfg):
        """A callable turning a list of encoded examples into a batch: the modality's collation by default."""
        modality = self.inputs()
        return lambda rows: modality.collate(session, rows)

    def sizes(self, rows: list[dict[str, Any]]) -> list[int]:
        """Each encoded example's size for batching, as the modality measures it."""
        modality = self.inputs()
        return [modality.size(r) for r in rows]


class GenerativeTask(TaskHandler):
    """Tasks whose prediction is text: ``predict`` is ``Session.generate``."""

    def predict(self, session, items, batch_size, max_length) -> list[dict[str, Any]]:
        if not all(isinstance(x, str) for x in items):
            raise TaskError(f"predict() for {self.name} takes prompts (strings).")
        return [{"text": t} for t in session.generate(items)]


class TokenLossTask(TaskHandler):
    """Language-model-style tasks: the evaluation loss is averaged over predicted tokens, not batches.

    The model's loss is a mean over the predicted tokens of a batch; weighting it by their count gives the exact
    average over the whole evaluation set. ``shifted``: causal LMs predict token t+1 from token t.
    """

    shifted = False
    report_perplexity = True
    eval_batch_factor = 2  # a vocabulary-wide logits tensor per token dominates evaluation memory

    def collect(self, outputs, batch, store) -> None:
        labels = batch["labels"][:, 1:] if self.shifted else batch["labels"]
        n = int((labels != -100).sum())
        store.setdefault("token_loss", []).append(float(outputs.loss) * n)
        store.setdefault("tokens", []).append(n)

    def metrics(self, store, loss: float, features=None) -> dict[str, float]:
        import math

        mean = sum(store.get("token_loss", [])) / (sum(store.get("tokens", [])) or 1)
        return {"loss": mean, "perplexity": math.exp(min(mean, 50.0))} if self.report_perplexity else {"loss": mean}


def in_length_order(items: list, length: Callable[[Any], int], batch_size: int,
                    run: Callable[[list], list]) -> list:
    """``run`` over batches of ``items`` taken longest first (little padding), in inference mode; the results come
    back in input order. ``length`` is a cheap proxy (characters, words): only the grouping depends on it."""
    order = sorted(range(len(items)), key=lambda i: -length(items[i]))
    out: list = [None] * len(items)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            for index, result in zip(chosen, run([items[i] for i in chosen])):
                out[index] = result
    return out


def require_tokenizer(session, task: str) -> Any:
    if session.tokenizer is None:
        raise DataError(f"Training a {task} model on text needs a tokenizer; load the model with one "
                        "(nbtune.load(..., tokenizer='path')) or set session.tokenizer.")
    return session.tokenizer


def texts_of(table, column: str) -> list[str]:
    """The column as strings; a missing or empty text is an error naming the example."""
    values = table[column].tolist()
    require_present(values, column, "text")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise DataError(f"Example {i} in column {column!r} is {type(v).__name__} {v!r}, not text: give text, "
                            f"or convert the column (df[{column!r}].astype(str)).")
    return values
