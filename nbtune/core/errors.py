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


def close_matches(word: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates most similar to ``word`` (best first), for "did you mean" hints.

    Besides difflib's ratio we also offer candidates that contain ``word`` as a dotted component,
    because users usually type a short name (``attention``) for a long dotted path.
    """
    pool = list(dict.fromkeys(candidates))
    found = difflib.get_close_matches(word, pool, n=n, cutoff=0.5)
    tail = word.split(".")[-1]
    for cand in pool:
        if len(found) >= n:
            break
        if cand not in found and tail and tail in cand.split("."):
            found.append(cand)
    return found[:n]
