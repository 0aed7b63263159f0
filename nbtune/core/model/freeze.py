"""Selectors over a model's dotted names, and freezing / unfreezing through them.

A selector names modules or parameters; a module covers every parameter under it. Forms:

- exact name or dotted suffix: ``classifier``, ``encoder.layer.0``, ``bert.embeddings.word_embeddings.weight``
- glob: ``encoder.layer.*.attention.*`` (matched against the full name or any dotted suffix of it)
- regex: ``re:layer\\.(10|11)\\.`` (``re.search`` on full names)
- index range over a block list: ``encoder.layer.[0-3]`` (inclusive), ``layers.[-2:]`` (Python slice),
  ``h.[0,2,4]``, optionally followed by a sub-path: ``layer.[0-3].attention``
- class: ``type:LayerNorm``, ``type:*Norm`` (any class in the module's MRO)
- presets: ``all``, ``head``, ``qkv``, ``top:N``, ``bitfit``, ``embeddings``

All selectors of a call are resolved before anything changes, so a bad one changes nothing.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from torch import nn

from nbtune.core.common.errors import SelectorError, close_matches
from nbtune.core.model.architecture import (
    HEAD_NAMES,
    embedding_module_names,
    head_module_names,
    is_adapter_param,
    is_shadow_param,
    modules_after,
    modules_with_params,
    qkv_module_names,
    repeated_units,
)
from nbtune.core.model.params import ParamIndex, param_numel
from nbtune.core.model.quantize import is_quantized_param
from nbtune.render.reports import freeze_report_html, freeze_report_text

PRESETS = ("all", "head", "qkv", "top:N", "bitfit", "embeddings", "adapters")
SELECTOR_HELP = (
    "Selectors are dotted names ('encoder.layer.0'), globs ('*.attention.*'), 're:<regex>', "
    "ranges ('encoder.layer.[0-3]', 'layers.[-2:]'), 'type:<Class>' or presets "
    "(all, head, qkv, top:N, bitfit, embeddings, adapters)."
)
_RANGE = re.compile(r"^(?P<prefix>[^\[]*?)\.?\[(?P<spec>[-0-9:, ]+)\](?P<rest>.*)$")


@dataclass
class Selection:
    """What a list of selectors resolved to."""

    params: list[str]  # canonical parameter names, in model order
    matches: dict[str, list[str]]  # selector -> the outermost names it matched


@dataclass
class FreezeReport:
    """What a freeze/unfreeze call changed. Renders as text (``repr``) and HTML."""

    action: str
    selectors: tuple[str, ...]
    matches: dict[str, list[str]]
    changed: list[str]
    changed_numel: int
    trainable_before: int
    trainable_after: int
    total: int
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return freeze_report_text(self)

    def _repr_html_(self) -> str:
        return freeze_report_html(self)


def _is_glob(sel: str) -> bool:
    return any(c in sel for c in "*?[")


def _name_matches(name: str, pattern: str) -> bool:
    """Exact/glob match against the whole dotted name or any dotted suffix of it."""
    if _is_glob(pattern):
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)
    return name == pattern or name.endswith("." + pattern)


def _outermost(names: list[str]) -> list[str]:
    """Drop names inside an already listed module (``a.b`` hides ``a.b.c``)."""
    unique = list(dict.fromkeys(names))  # keep model order
    chosen = set(unique)

    def has_listed_ancestor(name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:i]) in chosen for i in range(1, len(parts)))

    return [n for n in unique if not has_listed_ancestor(n)]


class _Resolver:
    """Resolves selectors against one model; built once per call (names are listed once)."""

    def __init__(self, model: nn.Module, index: ParamIndex):
        self.model = model
        self.index = index
        self.modules = {n: m for n, m in model.named_modules() if n}
        self.param_names = index.all_names()
        self.names = list(self.modules) + self.param_names

    # -- single selector -------------------------------------------------------------------
    def match(self, selector: str) -> list[str]:
        sel = selector.strip()
        if not sel:
            raise SelectorError(f"An empty selector was given. {SELECTOR_HELP}")
        preset = self._preset(sel)
        if preset is not None:
            return preset
        if sel.startswith("re:"):
            try:
                rx = re.compile(sel[3:])
            except re.error as exc:
                raise SelectorError(f"Selector {selector!r} is not a valid regular expression ({exc}).") from None
            return [n for n in self.names if rx.search(n)]
        if sel.startswith("type:"):
            pattern = sel[5:].strip()
            if not pattern:
                raise SelectorError(f"Selector {selector!r} names no type. Types in this model: {self._types()}.")
            return [
                n for n, m in self.modules.items()
                if any(fnmatch.fnmatchcase(cls.__name__, pattern) for cls in type(m).__mro__)
            ]
        ranged = _RANGE.match(sel)
        if ranged:
            return self._range(selector, ranged)
        return [n for n in self.names if _name_matches(n, sel)]

    def _preset(self, sel: str) -> list[str] | None:
        key = sel.lower()
        if key == "all":
            tops = [n for n, m in self.model.named_children() if any(True for _ in m.parameters())]
            return tops + [n for n, _ in self.model.named_parameters(recurse=False)]
        if key == "head":
            heads = head_module_names(self.model)
            if not heads:
                last = modules_with_params(self.model)[-3:][::-1]
                raise SelectorError(
                    f"Preset 'head' found no task head in {type(self.model).__name__}: none of its top-level modules "
                    f"has a head name ({', '.join(HEAD_NAMES)}). Name the head module instead; the last modules "
                    f"with parameters are {', '.join(last) or 'none'} (s.layers() shows them all)."
                )
            return heads
        if key == "qkv":
            found = qkv_module_names(self.model)
            if not found:
                raise SelectorError(
                    f"Preset 'qkv' found no attention query/key/value projections in {type(self.model).__name__}. "
                    "Name the projections instead, e.g. 're:attn'."
                )
            return found
        if key == "bitfit":
            found = [n for n in self.index.params if n.split(".")[-1] == "bias"]
            if not found:
                raise SelectorError(f"Preset 'bitfit' trains biases, and {type(self.model).__name__} has none. Choose "
                                    "another preset (head, top:N) or attach an adapter (s.add_lora()).")
            return found
        if key == "embeddings":
            found = embedding_module_names(self.model)
            if not found:
                raise SelectorError(f"Preset 'embeddings' found no nn.Embedding (or module called 'embeddings') in "
                                    f"{type(self.model).__name__}. Name the input layer instead (s.layers() lists "
                                    "the modules).")
            return found
        if key in ("adapter", "adapters"):
            active = _active_adapter(self.model)
            found = [n for n in self.index.params
                     if is_adapter_param(n) and not is_shadow_param(n) and (active is None or active in n.split("."))]
            if not found:
                raise SelectorError("Preset 'adapters' matched nothing: no adapter is attached (use add_lora & co.).")
            return found
        if key.startswith("top:"):
            return self._top(sel)
        return None

    def _top(self, sel: str) -> list[str]:
        arg = sel[4:].strip()
        if not arg.isdigit() or int(arg) < 1:
            raise SelectorError(f"Preset {sel!r} needs a positive block count, e.g. 'top:2'.")
        n = int(arg)
        stacks = repeated_units(self.model)
        if not stacks:
            raise SelectorError(
                f"Preset {sel!r} needs repeated blocks (a ModuleList of layers, or a CNN's stages) and "
                f"{type(self.model).__name__} has none. Name the modules to unfreeze instead."
            )
        out = []
        for units in stacks:
            out += units[-n:]
            out += modules_after(self.model, units[-1])
        return out + head_module_names(self.model)

    def _range(self, selector: str, m: re.Match) -> list[str]:
        prefix, spec, rest = m["prefix"], m["spec"].replace(" ", ""), m["rest"]
        containers = [
            name for name, module in self.modules.items()
            if _name_matches(name, prefix) and any(k.isdigit() for k, _ in module.named_children())
        ]
        if not containers:
            return []
        out = []
        for container in containers:
            count = sum(1 for k, _ in self.modules[container].named_children() if k.isdigit())
            for i in _parse_indices(selector, spec, count, container):
                target = f"{container}.{i}"
                if not rest:
                    out.append(target)
                else:
                    pattern = target + rest
                    out += [n for n in self.names if n.startswith(target + ".") and fnmatch.fnmatchcase(n, pattern)]
        return out

    def _types(self) -> str:
        return ", ".join(sorted({type(m).__name__ for m in self.modules.values()}))

    def what_exists(self, selector: str) -> str:
        """For a selector that matched nothing: what its form could have matched in this model."""
        sel = selector.strip()
        if sel.startswith("type:"):
            hints = close_matches(sel[5:].strip(), sorted({type(m).__name__ for m in self.modules.values()}))
            close = f" Closest: {', '.join(hints)}." if hints else ""
            return f"Module types in this model: {self._types()}.{close}"
        if _RANGE.match(sel):
            lists = [f"{name} (0-{count - 1})" for name, count in self._numbered()]
            return f"Numbered containers: {', '.join(lists) or 'none'}."
        hints = self.suggestions(sel)
        return f"Closest names: {', '.join(hints)}." if hints else ""

    def _numbered(self) -> list[tuple[str, int]]:
        out = []
        for name, module in self.modules.items():
            count = sum(1 for k, _ in module.named_children() if k.isdigit())
            if count:
                out.append((name, count))
        return out

    # -- many selectors --------------------------------------------------------------------
    def suggestions(self, selector: str) -> list[str]:
        generic = {re.sub(r"\.\d+(?=\.|$)", ".*", n) for n in self.modules}
        parts = {p for n in self.modules for p in n.split(".") if not p.isdigit()}
        return close_matches(selector, sorted(generic) + sorted(parts) + list(PRESETS))

    def resolve(self, selectors: tuple[str, ...]) -> Selection:
        matches: dict[str, list[str]] = {}
        chosen: set[str] = set()
        for sel in selectors:
            if not isinstance(sel, str):
                raise SelectorError(f"Selectors are strings; got {sel!r} ({type(sel).__name__}). {SELECTOR_HELP}")
            names = self.match(sel)
            if not names:
                hint = self.what_exists(sel)
                raise SelectorError(f"Selector {sel!r} matches nothing in {type(self.model).__name__}. "
                                    + (f"{hint} " if hint else "") + SELECTOR_HELP)
            matches[sel] = _outermost(names)
            for name in names:
                if name in self.modules:
                    chosen.update(self.index.under(name))
                else:
                    chosen.add(self.index.resolve_name(name))
        # peft's frozen backup of a trained head is never trained: selecting the head means its live copy.
        ordered = [n for n in self.index.params if n in chosen and not is_shadow_param(n)]
        return Selection(ordered, matches)


def _active_adapter(model: nn.Module) -> str | None:
    active = getattr(model, "active_adapter", None)
    return active if isinstance(active, str) else None


def _parse_indices(selector: str, spec: str, count: int, container: str) -> list[int]:
    """Indices named by a range spec such as ``0-3``, ``-2:``, ``1,3,5`` for a list of ``count``."""
    out: list[int] = []
    bad = SelectorError(
        f"Range {selector!r}: {container} has {count} blocks (0-{count - 1}); "
        f"'[{spec}]' is not a valid range. Use [a-b] (inclusive), [a:b] (slice), [-2:] or [i,j,k]."
    )
    for part in filter(None, spec.split(",")):
        if re.fullmatch(r"-?\d+", part):
            i = int(part)
            if not -count <= i < count:
                raise SelectorError(
                    f"Range {selector!r}: index {i} is out of range; {container} has {count} blocks (0-{count - 1})."
                )
            out.append(i % count)
        elif re.fullmatch(r"\d+-\d+", part):
            lo, hi = map(int, part.split("-"))
            if lo > hi or hi >= count:
                raise SelectorError(
                    f"Range {selector!r}: {lo}-{hi} is outside {container}, which has {count} blocks (0-{count - 1})."
                )
            out += list(range(lo, hi + 1))
        elif re.fullmatch(r"(-?\d+)?:(-?\d+)?", part):
            lo, hi = (int(x) if x else None for x in part.split(":"))
            out += list(range(count))[slice(lo, hi)]
        else:
            raise bad
    return sorted(set(out))


def select(model: nn.Module, *selectors: str, index: ParamIndex | None = None) -> Selection:
    """Resolve selectors to canonical parameter names without changing anything."""
    if not selectors:
        raise SelectorError(f"No selector given. {SELECTOR_HELP}")
    return _Resolver(model, index or ParamIndex(model)).resolve(tuple(selectors))


def set_trainable(model: nn.Module, selectors: tuple[str, ...], trainable: bool) -> FreezeReport:
    """Freeze (``trainable=False``) or unfreeze the parameters the selectors cover; report the change."""
    index = ParamIndex(model)
    selection = select(model, *selectors, index=index)  # may raise: nothing has changed yet
    params = index.params
    before = sum(param_numel(p) for p in params.values() if p.requires_grad)
    changed = [n for n in selection.params if params[n].requires_grad != trainable]
    # packed 4/8-bit weights cannot take gradients: they train through an adapter
    quantized = [n for n in changed if trainable and is_quantized_param(params[n])]
    if quantized:
        changed = [n for n in changed if n not in quantized]
        if not changed:
            raise SelectorError(
                f"{', '.join(map(repr, selectors))} covers only quantized weights ({len(quantized)} tensors, e.g. "
                f"{quantized[0]}), which cannot train. Attach an adapter to train them (s.add_lora()), or load the "
                "model without quantize=... to fine-tune them fully.")
    for name in changed:
        params[name].requires_grad_(trainable)
    after = sum(param_numel(p) for p in params.values() if p.requires_grad)
    notes = [note for n in selection.params if (note := index.tied_note(n))]
    if quantized:
        notes.append(f"left {len(quantized)} quantized weights frozen (4/8-bit weights train through an adapter)")
    return FreezeReport(
        action="unfreeze" if trainable else "freeze",
        selectors=tuple(selectors),
        matches=selection.matches,
        changed=changed,
        changed_numel=sum(param_numel(params[n]) for n in changed),
        trainable_before=before,
        trainable_after=after,
        total=sum(param_numel(p) for p in params.values()),
        notes=notes,
    )
