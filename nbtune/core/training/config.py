"""``TrainConfig``: every knob of a training run, validated before anything starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nbtune.core.common.errors import TrainConfigError, close_matches
from nbtune.core.training.schedules import SCHEDULE_FACTORS


def _field_types(cls) -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(cls)}


def _coerce(name: str, value: Any, type_name: str) -> Any:
    """Numbers written as text ('5e-5' from YAML or a command line) become numbers; other kinds are checked."""
    numeric = "int" in type_name or "float" in type_name
    if not numeric or value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise TrainConfigError(f"{name} must be a number; got {value!r}.") from None
    if not isinstance(value, (int, float)):
        raise TrainConfigError(f"{name} must be a number; got {value!r}.")
    if "int" in type_name and "float" not in type_name:
        if value != int(value):
            raise TrainConfigError(f"{name} must be a whole number; got {value!r}.")
        return int(value)
    return value


SCHEDULES = tuple(SCHEDULE_FACTORS)
LOSS_ON = ("assistant", "last", "all")  # chat data: which tokens carry the loss (core/chat.py)
PRECISIONS = ("auto", "no", "fp16", "bf16")


CUSTOM_AUGMENT = "custom pipeline: "  # how to_dict records augment=a callable


def custom_augment(value: Any) -> bool:
    """Whether ``value`` is a user's augmentation pipeline, or a run folder's record of one (``to_dict``)."""
    return callable(value) or isinstance(value, str) and value.startswith(CUSTOM_AUGMENT)


@dataclass
class TrainConfig:
    """Settings of one ``Session.train`` call. Unknown names are rejected with the valid ones listed."""

    epochs: float = 1
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    lr: float | None = None  # None: what trains for the trainable set (optim.default_lr), said in the run
    batch_size: int = 16
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup: float = 0.0  # a fraction of the steps (< 1) or a number of steps (>= 1)
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    head_lr: float | None = None  # discriminative fine-tuning: a separate rate for the task head
    layer_decay: float | None = None  # layer-wise lr decay: block i of L gets lr * decay**(L - i)
    max_length: int | None = 256  # truncation; padding stays dynamic
    pad_to: int | None = None  # pad every batch to this length (only if you must)
    max_target_length: int | None = 128  # seq2seq targets
    stride: int = 64  # extractive QA: overlap between the windows of a long context
    eval_generate: bool = True  # seq2seq: generate during evaluation for ROUGE/BLEU
    max_new_tokens: int = 64  # generation length during evaluation
    mlm_probability: float = 0.15  # masked LM: share of tokens masked
    group_by_length: bool = True
    # causal LM: several examples per row of max_length tokens, kept apart by position ids (training/packing.py)
    packing: bool = False
    chat_template: str | None = None  # a named template (chat.NAMED_TEMPLATES) for tokenizers without one
    loss_on: str = "assistant"  # chat data: "assistant" (every assistant turn), "last" (the last one) or "all"
    # token-aware batching: each batch takes as many examples as fit this many padded tokens (batch_size is then
    # not used); for data of very mixed lengths. See nbtune.core.data.batching.
    max_tokens_per_batch: int | None = None
    seed: int = 42
    # random training transforms of modalities that have them (images: crop and flip), seeded per example and
    # epoch; False trains on the evaluation encoding; a callable (a torchvision transforms.v2 pipeline) is used in
    # place of the standard one. Text has none.
    augment: Any = True
    precision: str = "auto"
    eval_every: int | None = None  # optimizer steps between evaluations; None: at the end of each epoch
    eval_batch_size: int | None = None
    early_stopping: int | None = None  # evaluations without improvement before stopping
    early_stopping_metric: str | None = None  # default: the task's main metric
    checkpoint_dir: str | None = None
    save_every: int | None = None  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2
    save_run: bool = True  # write a run folder (settings, data, checkpoints, history): see nbtune.core.training.run_folder
    run_name: str | None = None  # the run folder's name (default: time, model and method)
    save_minutes: float = 10.0  # wall-clock minutes between checkpoints of a run folder (a disconnect loses less)
    auto_batch: bool = False  # on out-of-memory, halve the micro-batch and accumulate more
    # glibc returns freed blocks of 8 MiB and up to the system: lower peak RSS, slower steps (training/host_allocator.py)
    low_host_memory: bool = False
    log_every: float = 10.0  # seconds between console lines
    columns: dict[str, str] = field(default_factory=dict)
    # the loss: a registered objective (nbtune.core.objectives); None: the session's, else the task's default
    objective: str | None = None
    # the objective's own settings (DPO's beta...), checked against its settings class when the run starts;
    # train(beta=0.2) puts them here
    objective_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise TrainConfigError(message)

        check(self.epochs > 0, f"epochs must be > 0; got {self.epochs}.")
        if isinstance(self.augment, str) and self.augment.startswith(CUSTOM_AUGMENT):  # a record, not the code
            raise TrainConfigError(f"This run trained with its own augmentation pipeline ({self.augment[len(CUSTOM_AUGMENT):]}"
                                   "), which is Python code a run folder does not hold; pass it again: augment=pipeline "
                                   "(e.g. nbtune.resume(name, augment=pipeline)).")
        check(isinstance(self.augment, bool) or callable(self.augment),
              f"augment is True, False or a transform (a torchvision transforms.v2 pipeline); got {self.augment!r}.")
        check(self.max_steps is None or self.max_steps > 0, f"max_steps must be > 0; got {self.max_steps}.")
        check(self.lr is None or self.lr > 0, f"lr must be > 0; got {self.lr}. Typical: 2e-5..5e-5 full fine-tuning, 1e-4..1e-3 LoRA.")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be a positive integer; got {self.batch_size}.")
        check(isinstance(self.grad_accum, int) and self.grad_accum >= 1, f"grad_accum must be a positive integer; got {self.grad_accum}.")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0; got {self.weight_decay}.")
        check(self.warmup >= 0, f"warmup must be >= 0; got {self.warmup}.")
        check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}; got {self.schedule!r}.")
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}; got {self.precision!r}.")
        check(self.layer_decay is None or 0 < self.layer_decay <= 1, f"layer_decay must be in (0, 1]; got {self.layer_decay}.")
        check(self.head_lr is None or self.head_lr > 0, f"head_lr must be > 0; got {self.head_lr}.")
        check(self.max_length is None or self.max_length >= 2, f"max_length must be >= 2; got {self.max_length}.")
        check(self.eval_every is None or self.eval_every >= 1, f"eval_every must be >= 1; got {self.eval_every}.")
        check(self.save_every is None or self.save_every >= 1, f"save_every must be >= 1; got {self.save_every}.")
        check(self.early_stopping is None or self.early_stopping >= 1, f"early_stopping must be >= 1; got {self.early_stopping}.")
        check(0 < self.mlm_probability < 1, f"mlm_probability must be in (0, 1); got {self.mlm_probability}.")
        check(self.stride >= 0, f"stride must be >= 0; got {self.stride}.")
        check(self.max_tokens_per_batch is None or self.max_tokens_per_batch >= 1,
              f"max_tokens_per_batch must be a positive number of tokens; got {self.max_tokens_per_batch}.")
        check(self.save_minutes > 0, f"save_minutes must be > 0; got {self.save_minutes}.")
        check(self.loss_on in LOSS_ON, f"loss_on must be one of {LOSS_ON}; got {self.loss_on!r}.")
        check(not self.packing or self.max_length is not None,
              "packing=True fills rows of max_length tokens; set max_length (e.g. 1024).")
        check(not (self.packing and self.max_tokens_per_batch), "packing=True already fills every row; drop "
              "max_tokens_per_batch (or packing).")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "TrainConfig":
        """Build from keyword arguments. A name that is not a field but a setting of the named objective (or, with
        none named, of any registered one) goes to ``objective_settings``, checked once the run's objective is
        known; any other name raises an error that lists the valid ones."""
        # the registry is imported here, not at the top: magics import this module at %load_ext, without torch
        from nbtune.core.objectives import get_objective, objective_settings_names

        valid = {f.name for f in fields(cls)}
        extra = {k: kwargs.pop(k) for k in sorted(set(kwargs) - valid)}
        if extra:
            named = kwargs.get("objective")
            known = (get_objective(named).setting_names() if named
                     else sorted({n for names in objective_settings_names().values() for n in names}))
            unknown = [k for k in extra if k not in known]
            if unknown:
                everything = sorted(valid | set(known))
                hints = {u: close_matches(u, everything, n=1) for u in unknown}
                said = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
                where = f" and the {named} objective's ({', '.join(known) or 'none'})" if named else (
                    f"; objectives' settings: {', '.join(known)}" if known else "")
                raise TrainConfigError(f"Unknown training setting {said}. Valid settings: {', '.join(sorted(valid))}"
                                       f"{where}.")
            kwargs["objective_settings"] = {**dict(kwargs.get("objective_settings") or {}), **extra}
        types = _field_types(cls)
        return cls(**{k: _coerce(k, v, types[k]) for k, v in kwargs.items()})

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (run folders and checkpoints write them as JSON): an augmentation pipeline
        is recorded by its description, and asked for again when the run is resumed."""
        out = asdict(self)
        if callable(self.augment):
            out["augment"] = CUSTOM_AUGMENT + " ".join(repr(self.augment).split())
        return out

    # Settings that decide the data order and step count: a resumed run must use the same.
    ORDER_KEYS = ("batch_size", "grad_accum", "seed", "group_by_length", "max_tokens_per_batch", "epochs", "max_steps",
                  "packing")
