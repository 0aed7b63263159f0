"""The module tree as rows: name, class, parameter shapes, counts, trainable, dtype, device.

``LayerTree`` is what ``Session.layers()`` returns. It renders as an aligned text tree (``repr``) and a
collapsible HTML tree; the rows are plain data for tests, widgets and ``to_pandas()``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from torch import nn

from nbtune.core.model.architecture import block_lists, is_shadow_param
from nbtune.core.model.params import param_dtype, param_numel, param_shape
from nbtune.core.model.quantize import is_quantized_param
from nbtune.render.tree import tree_html, tree_text


@dataclass
class ModuleInfo:
    """One row of the layer tree. ``folded`` > 0 marks a row standing for that many identical blocks."""

    name: str
    type: str
    depth: int
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # own parameters only
    own_params: int = 0
    total_params: int = 0
    trainable: int = 0
    dtype: str = ""
    device: str = ""
    n_children: int = 0
    folded: int = 0
    trainable_capacity: int | None = None  # parameters besides peft's frozen head backup (trainable_counts)

    @property
    def capacity(self) -> int:
        """Parameters under this module that count for its trainable state (``trainable_counts``)."""
        return self.total_params if self.trainable_capacity is None else self.trainable_capacity

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name else "(model)"

    @property
    def trainable_state(self) -> str:
        """'all', 'none' or 'partial': the checkbox state of this module (a head peft trains through
        ``modules_to_save`` is 'all' when its live copy trains: its frozen backup never does)."""
        return trainable_state(self.trainable, self.capacity)


def trainable_counts(named_params) -> tuple[int, int]:
    """(parameters, parameters that train) among ``(name, parameter)`` pairs with full names, for the trainable
    state a tree shows. peft's frozen backup of a head it trains (``classifier.original_module``) never trains, so
    it is left out: a fully trained head counts as all trainable. A 4/8-bit packed weight counts (it is part of the
    module and does not train), so a 4-bit block whose norms train shows as partial, not as trainable."""
    live = [p for n, p in named_params if not is_shadow_param(n)]
    return sum(param_numel(p) for p in live), sum(param_numel(p) for p in live if p.requires_grad)


def can_train(named_params) -> bool:
    """Whether anything among ``(name, parameter)`` pairs could be unfrozen (not only packed 4/8-bit weights or
    peft's frozen backups)."""
    return any(not is_shadow_param(n) and not is_quantized_param(p) for n, p in named_params)


def trainable_state(trainable: int, capacity: int) -> str:
    """'all', 'none' or 'partial' for ``trainable`` of ``capacity`` parameters (``trainable_counts``)."""
    if capacity == 0 or trainable == 0:
        return "none"
    return "all" if trainable >= capacity else "partial"


def _describe(values: set[str]) -> str:
    return ",".join(sorted(values)) if values else ""


def module_rows(model: nn.Module) -> list[ModuleInfo]:
    """Every module of ``model`` as a ModuleInfo, in registration (depth-first) order."""
    rows = []
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        named = list(module.named_parameters(prefix=name))
        subtree = [p for _, p in named]
        rows.append(ModuleInfo(
            name=name,
            type=type(module).__name__,
            depth=0 if not name else name.count(".") + 1,
            shapes={n: param_shape(p) for n, p in own},
            own_params=sum(param_numel(p) for _, p in own),
            total_params=sum(param_numel(p) for p in subtree),
            trainable=sum(param_numel(p) for p in subtree if p.requires_grad),
            dtype=_describe({param_dtype(p) for p in subtree}),
            device=_describe({str(p.device) for p in subtree}),
            n_children=sum(1 for _ in module.children()),
            trainable_capacity=trainable_counts(named)[0],
        ))
    return rows


def _signature(rows_by_name: dict[str, ModuleInfo], prefix: str) -> tuple:
    """Structure of a block: relative names, classes and shapes of everything under it."""
    return tuple(
        (n[len(prefix):], r.type, tuple(sorted(r.shapes.items())))
        for n, r in rows_by_name.items() if n == prefix or n.startswith(prefix + ".")
    )


def _fold(model: nn.Module, rows: list[ModuleInfo]) -> list[ModuleInfo]:
    """Replace blocks 1..n-1 of each list of identical blocks by one summary row."""
    by_name = {r.name: r for r in rows}
    hidden: set[str] = set()
    summaries: dict[str, ModuleInfo] = {}
    for bl in block_lists(model):
        first = _signature(by_name, bl.block(0))
        same = all(_signature(by_name, bl.block(i)) == first for i in range(1, bl.count))
        if not same or bl.count < 3:
            continue
        rest = [by_name[bl.block(i)] for i in range(1, bl.count)]
        summaries[bl.block(1)] = ModuleInfo(
            name=f"{bl.name}.1-{bl.count - 1}",
            type=bl.block_type,
            depth=rest[0].depth,
            total_params=sum(r.total_params for r in rest),
            trainable=sum(r.trainable for r in rest),
            trainable_capacity=sum(r.capacity for r in rest),
            dtype=_describe({d for r in rest for d in r.dtype.split(",") if d}),
            device=_describe({d for r in rest for d in r.device.split(",") if d}),
            n_children=rest[0].n_children,
            folded=len(rest),
        )
        hidden.update(bl.block(i) for i in range(1, bl.count))
    out = []
    for row in rows:
        if row.name in summaries:
            out.append(summaries[row.name])
        if any(row.name == h or row.name.startswith(h + ".") for h in hidden):
            continue
        out.append(row)
    return out


def _filtered(rows: list[ModuleInfo], pattern: str) -> list[ModuleInfo]:
    """Rows whose name contains or glob-matches ``pattern``, with their ancestors and descendants."""
    glob = any(c in pattern for c in "*?[")
    hits = [
        r.name for r in rows
        if r.name and (fnmatch.fnmatchcase(r.name, pattern) or fnmatch.fnmatchcase(r.name, "*." + pattern)
                       if glob else pattern in r.name)
    ]
    keep: set[str] = {""}
    for hit in hits:
        parts = hit.split(".")
        keep.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [r for r in rows if r.name in keep or any(r.name.startswith(h + ".") for h in hits)]


class LayerTree:
    """A model's module tree. ``repr`` is an aligned text tree; ``_repr_html_`` a collapsible one.

    Args:
        model: the module to describe.
        filter: substring or glob; keeps matching modules with their ancestors and descendants.
        depth: deepest level shown (top-level children are depth 1); None shows everything.
        fold: fold runs of identical blocks (``layer.1-11``); defaults to True without a filter.
    """

    def __init__(self, model: nn.Module, filter: str | None = None, depth: int | None = None,
                 fold: bool | None = None, title: str | None = None):
        rows = module_rows(model)
        if fold is None:
            fold = filter is None
        if fold:
            rows = _fold(model, rows)
        if filter:
            rows = _filtered(rows, filter)
        if depth is not None:
            rows = [r for r in rows if r.depth <= depth]
        self.rows: list[ModuleInfo] = rows
        self.title = title or type(model).__name__
        self.filter, self.depth, self.fold = filter, depth, fold

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, name: str) -> ModuleInfo:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{name!r} is not a row of this tree (folded or filtered out?)")

    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    def to_pandas(self):
        """The rows as a pandas DataFrame (one row per module)."""
        import pandas as pd

        return pd.DataFrame([{**vars(r), "shapes": dict(r.shapes)} for r in self.rows])

    def __repr__(self) -> str:
        return tree_text(self)

    def _repr_html_(self) -> str:
        return tree_html(self)
