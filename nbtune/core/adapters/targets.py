"""Which modules LoRA (or IA3) can wrap, what each choice costs, and turning ``targets=`` into names.

Target names differ by architecture (``query``/``value``, ``q_proj``/``v_proj``, ``c_attn``...), so nbtune
lists the real ones, grouped by short name, with the trainable parameters each adds per unit of rank.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from nbtune.core.common.errors import AdapterError, SelectorError
from nbtune.core.model.architecture import head_module_names, is_adapter_param, is_under, qkv_module_names, unwrap
from nbtune.core.model.freeze import select
from nbtune.render.adapters import targets_html, targets_text


@dataclass
class TargetGroup:
    """Modules sharing a short name (``query``), their class and LoRA's cost per unit of rank."""

    short_name: str
    type: str
    count: int
    shape: str  # "in -> out" of the first module
    params_per_rank: int  # trainable params LoRA adds at r=1 over all modules of the group
    names: list[str]


@dataclass
class LoraTargets:
    """Result of ``Session.lora_targets()``: every wrappable module group, in model order."""

    groups: list[TargetGroup]

    def __iter__(self):
        return iter(self.groups)

    def __getitem__(self, short_name: str) -> TargetGroup:
        for g in self.groups:
            if g.short_name == short_name:
                return g
        raise KeyError(f"{short_name!r} is not a LoRA target here; targets: {[g.short_name for g in self.groups]}")

    def cost(self, short_names: list[str], r: int) -> int:
        return sum(self[n].params_per_rank for n in short_names) * r

    def __repr__(self) -> str:
        return targets_text(self)

    def _repr_html_(self) -> str:
        return targets_html(self)


# what "all-linear" covers: Linear layers, GPT-2's Conv1D, and bitsandbytes' 4/8-bit Linear layers
LINEAR_TYPES = ("Linear", "Conv1D", "Linear4bit", "Linear8bitLt")


def _base_layer(module: nn.Module) -> nn.Module:
    base = getattr(module, "base_layer", None)
    return base if isinstance(base, nn.Module) and base is not module else module


def _dims(module: nn.Module) -> tuple[str, int] | None:
    """(shape text, LoRA params per unit rank) for a module LoRA can wrap, else None."""
    m = _base_layer(module)
    if isinstance(m, nn.Linear):
        return f"{m.in_features} -> {m.out_features}", m.in_features + m.out_features
    if type(m).__name__ == "Conv1D":  # GPT-2: weight is (in, out)
        n_in, n_out = m.weight.shape
        return f"{n_in} -> {n_out}", n_in + n_out
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return f"{m.in_channels}x{kh}x{kw} -> {m.out_channels}", m.in_channels * kh * kw // m.groups + m.out_channels
    if isinstance(m, nn.Embedding):
        return f"{m.num_embeddings} -> {m.embedding_dim}", m.num_embeddings + m.embedding_dim
    return None


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(head_module_names(model))


def lora_targets(model: nn.Module, include_head: bool = False) -> LoraTargets:
    """Linear / Conv1D / Conv2d / Embedding modules grouped by short name, with their cost per rank.

    The task head is left out unless asked: it is trained whole (``modules_to_save``), not adapted.
    """
    heads = () if include_head else _head_prefixes(model)
    groups: OrderedDict[str, TargetGroup] = OrderedDict()
    for name, module in model.named_modules():
        if not name or is_adapter_param(name) or name.endswith(".base_layer"):
            continue
        if is_under(name, heads):
            continue
        dims = _dims(module)
        if dims is None:
            continue
        short = name.rsplit(".", 1)[-1]
        typ = type(_base_layer(module)).__name__
        key = short if short not in groups or groups[short].type == typ else f"{short}({typ})"
        group = groups.get(key)
        if group is None:
            groups[key] = TargetGroup(short, typ, 1, dims[0], dims[1], [name])
        else:
            group.count += 1
            group.params_per_rank += dims[1]
            group.names.append(name)
    return LoraTargets(list(groups.values()))


def resolve_targets(model: nn.Module, targets, *, linear_only: bool = False) -> list[str]:
    """Turn ``targets`` into full module names (relative to the unwrapped model) that LoRA can wrap.

    Accepts ``"qkv"``, ``"all-linear"``, a short name (``"c_attn"``), a list of short names, or any freeze
    selector (``"encoder.layer.[6-11].attention.self.query"``, ``"re:..."``). Raises AdapterError listing
    the real candidates with their costs when something matches nothing.
    """
    inner, prefix = unwrap(model)
    available = lora_targets(inner)
    allowed = {n for g in available for n in g.names
               if not linear_only or g.type in ("Linear", "Conv1D")}
    if not allowed:
        raise AdapterError(f"{type(inner).__name__} has no Linear, Conv1D, Conv2d or Embedding module to adapt.")
    items = [targets] if isinstance(targets, str) else list(targets or [])
    if not items:
        raise AdapterError(_candidates_message("No targets given.", available))
    chosen: list[str] = []
    for item in items:
        key = str(item).strip()
        if key.lower() == "all-linear":
            names = [n for g in available if g.type in LINEAR_TYPES for n in g.names]
        elif key.lower() == "qkv":
            names = [n for n in qkv_module_names(inner) if n in allowed]
        elif any(g.short_name == key for g in available):
            names = [n for g in available if g.short_name == key for n in g.names]
        else:
            try:
                matched = select(inner, key).matches[key]
            except SelectorError:
                matched = []
            names = [n for n in allowed if any(n == m or n.startswith(m + ".") for m in matched)]
        names = [n for n in names if n in allowed]
        if not names:
            raise AdapterError(_candidates_message(f"Target {key!r} matches no module LoRA can wrap.", available))
        chosen += [n for n in names if n not in chosen]
    return chosen


def _candidates_message(problem: str, available: LoraTargets) -> str:
    rows = ", ".join(f"{g.short_name} ({g.type} x{g.count}, {g.params_per_rank:,} params per rank)" for g in available)
    return (f"{problem} Candidates: {rows}. Also accepted: 'qkv', 'all-linear', a list of these names, or a "
            "freeze selector such as 'encoder.layer.[6-11].attention.self.query'.")
