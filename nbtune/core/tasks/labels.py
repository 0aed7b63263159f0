"""One label map per run: the classes the training and evaluation data hold are read together, before anything is
encoded or trained, and a class that only the evaluation data has is refused with the class, the known classes and
the nearest known one (a typo such as ``negatve``). Every labelled task reads its classes through
``TaskHandler.classes_in``, so the check is the same for sentence labels, image labels and token tags.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from nbtune.core.common.errors import close_matches, few
from nbtune.core.data.features import DataError


def class_of(value: Any) -> str | int | None:
    """A label as a class: a name, or an integral id; None for what is not a class (missing values, fractions,
    other types), which the task's own encoding refuses with its cause."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def classes(values: Iterable[Any]) -> set[str | int]:
    """The classes among ``values``; lists (token tags, one list per example) are read item by item."""
    found: set[str | int] = set()
    for value in values:
        items = value if isinstance(value, (list, tuple, np.ndarray)) else (value,)
        found.update(c for c in map(class_of, items) if c is not None)
    return found


def _shown(name: str | int, known: list[str | int]) -> str:
    if not isinstance(name, str):
        return repr(name)
    near = close_matches(name, [k for k in known if isinstance(k, str)], n=1)
    return f"{name!r} (did you mean {near[0]!r}?)" if near else repr(name)


def _sorted(items: Iterable[str | int]) -> list[str | int]:
    return sorted(items, key=lambda c: (isinstance(c, str), str(c) if isinstance(c, str) else c))


def require_known(found: set[str | int], known: Iterable[str | int], what: str, source: str, fix: str) -> None:
    """Raise one DataError naming every class of ``found`` that ``known`` lacks, with the nearest known name.

    ``what`` is the data being checked ("the evaluation data"), ``source`` the known classes ("the training data's
    classes"), ``fix`` what to do about it."""
    known = _sorted(set(known))
    # only classes of the kind the known ones are: names against names, ids against ids (other kinds are the
    # encoding's to refuse, with their own cause)
    kinds = {isinstance(k, str) for k in known}
    unknown = _sorted(c for c in found if c not in set(known) and isinstance(c, str) in kinds)
    if not unknown:
        return
    noun = "a class" if len(unknown) == 1 else f"{len(unknown)} classes"
    raise DataError(f"{what[0].upper()}{what[1:]} has {noun} not among {source}: "
                    f"{few([_shown(c, known) for c in unknown], 10)}. The known ones: "
                    f"{few([repr(k) for k in known], 20)}. {fix}")


def require_evaluation_classes(handler, train_table, eval_table, cfg) -> None:
    """Refuse evaluation data holding a class the training data lacks: its score would count a class the run never
    trains (and, with names learned from the data, against an id of its own). Read before anything is encoded."""
    known = handler.classes_in(train_table, cfg)
    if not known or eval_table is None:
        return
    require_known(handler.classes_in(eval_table, cfg) or set(), known, "the evaluation data", "the training data's classes",
                  "Correct the evaluation labels, or add examples of the class to the training data.")
