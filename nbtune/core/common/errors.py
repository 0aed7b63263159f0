"""nbtune's exceptions.

Every message says what is wrong *and* what to do about it. Raising one of these never leaves a
session half-changed: callers validate first and mutate afterwards.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class NbtuneError(Exception):
    """Base class for user-facing errors (bad input, not bugs).

    The notebook faces print these as one clear message instead of a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: show the message alone. The frames inside nbtune say nothing the message does not, and
        the user's own cell is the one they just ran. Any other exception (a bug) keeps its full traceback."""
        return [f"{type(self).__name__}: {self}"]


class ModelLoadError(NbtuneError):
    """A model could not be loaded: missing path, hub unreachable, bad GGUF file..."""


class TaskError(NbtuneError):
    """An unknown task, or a task the architecture has no head for."""


class SelectorError(NbtuneError):
    """A freeze/unfreeze selector that is malformed or matches nothing."""


class HeadError(NbtuneError):
    """The task head cannot be found or replaced as asked."""


class AdapterError(NbtuneError):
    """An adapter cannot be attached, switched, merged or loaded as asked."""


class SaveError(NbtuneError):
    """A session cannot be saved or restored as asked."""


class MetaModelError(NbtuneError):
    """An operation needs real weights but the model was built on the meta device."""


class RecipeError(NbtuneError):
    """A recipe that cannot be used as written."""


class TrainConfigError(NbtuneError):
    """A training setting is out of range or of the wrong kind."""


class TrainingError(NbtuneError):
    """Training cannot start or go on (nothing to train, out of memory, mismatched checkpoint)."""


class DataError(NbtuneError):
    """Training or evaluation data that cannot be used as given."""


class CallbackError(NbtuneError):
    """A callback that cannot work as written (a misspelt hook)."""


class CheckpointError(NbtuneError):
    """A checkpoint folder is missing, incomplete or does not fit the session."""


class MagicUsageError(NbtuneError):
    """A ``%nbtune`` line that cannot be understood."""


class OutOfMemoryError(TrainingError):
    """The device ran out of memory and the micro-batch could not (or may not) be halved further."""


# Names people bring from other tools (transformers' TrainingArguments, peft's configs) -> nbtune's, offered before
# any spelling guess: "learning_rate" is closer in spelling to "warmup" than to "lr".
SYNONYMS = {
    "learning_rate": "lr", "learningrate": "lr", "num_epochs": "epochs", "num_train_epochs": "epochs",
    "n_epochs": "epochs", "epoch": "epochs", "per_device_train_batch_size": "batch_size",
    "train_batch_size": "batch_size", "bs": "batch_size", "batchsize": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "accumulation_steps": "grad_accum", "warmup_ratio": "warmup",
    "warmup_steps": "warmup", "max_seq_length": "max_length", "max_seq_len": "max_length", "max_len": "max_length",
    "lr_scheduler_type": "schedule", "lr_scheduler": "schedule", "scheduler": "schedule",
    "mixed_precision": "precision", "fp16": "precision", "bf16": "precision", "output_dir": "checkpoint_dir",
    "eval_steps": "eval_every", "save_steps": "save_every", "early_stopping_patience": "early_stopping",
    "patience": "early_stopping", "per_device_eval_batch_size": "eval_batch_size", "clip": "max_grad_norm",
    "rank": "r", "lora_r": "r", "lora_rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
    "target_modules": "targets", "target": "targets", "num_virtual_tokens": "n_tokens",
    "virtual_tokens": "n_tokens", "use_dora": "dora", "use_rslora": "rslora",
}


def few(items, n: int, sep: str = ", ") -> str:
    """The first ``n`` of ``items`` for a message, and how many more there are: ``a, b, c (+4 more)``."""
    items = list(items)
    shown = sep.join(map(str, items[:n]))
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def close_matches(word: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates most similar to ``word`` (best first), for "did you mean" hints.

    A known synonym (``learning_rate`` for ``lr``, ``rank`` for ``r``) comes first. Besides difflib's ratio we also
    offer candidates that contain ``word`` as a dotted component, because users usually type a short name
    (``attention``) for a long dotted path.
    """
    pool = list(dict.fromkeys(candidates))
    synonym = SYNONYMS.get(str(word).lower())
    found = [synonym] if synonym in pool else []
    found += [c for c in difflib.get_close_matches(word, pool, n=n, cutoff=0.5) if c not in found]
    tail = word.split(".")[-1]
    for cand in pool:
        if len(found) >= n:
            break
        if cand not in found and tail and tail in cand.split("."):
            found.append(cand)
    return found[:n]
