"""Parameter bookkeeping: one accountant for every count nbtune shows.

How nbtune counts, everywhere (session, summary, training header, run folder, saved folder): every parameter the
model holds, adapters included (the total is base + adapter, stated apart when an adapter is attached); tied
weights (GPT-2's ``lm_head`` and ``wte``) once; a 4-bit packed weight by the values it stands for (two per byte),
not by its bytes, so a 4-bit model counts as its full-precision original. Everything is keyed by the *canonical*
name (the first name ``named_parameters`` gives), so counts agree with what ``save()`` writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn

from nbtune.core.model.architecture import is_adapter_param, unwrap


def param_numel(param: torch.Tensor) -> int:
    """Element count, undoing bitsandbytes' 4-bit packing (two values per byte)."""
    n = param.numel()
    if type(param).__name__ == "Params4bit":
        itemsize = getattr(getattr(param, "quant_storage", None), "itemsize", 1)
        n = n * 2 * itemsize
    return n


def param_shape(param: torch.Tensor) -> tuple[int, ...]:
    """The logical shape: a 4-bit weight is stored as a packed column of bytes, its quant state keeps the real one."""
    state = getattr(param, "quant_state", None)
    if type(param).__name__ == "Params4bit" and getattr(state, "shape", None) is not None:
        return tuple(state.shape)
    return tuple(param.shape)


def param_dtype(param: torch.Tensor) -> str:
    """The dtype as a user thinks of it: ``nf4``/``fp4`` for 4-bit weights, ``int8`` for LLM.int8() ones."""
    if type(param).__name__ == "Params4bit":
        return str(getattr(param, "quant_type", None) or "4bit")
    return str(param.dtype).replace("torch.", "")


def param_bytes(param: torch.Tensor) -> int:
    """Bytes the parameter holds: the packed data plus bitsandbytes' quantization constants (absmax per block,
    and with double quantization the constants of those)."""
    nbytes = param.numel() * param.element_size()
    state = getattr(param, "quant_state", None)
    if state is not None:
        for tensor in (getattr(state, "absmax", None), getattr(getattr(state, "state2", None), "absmax", None),
                       getattr(state, "code", None)):
            if isinstance(tensor, torch.Tensor):
                nbytes += tensor.numel() * tensor.element_size()
    scales = getattr(param, "SCB", None)  # LLM.int8(): one float scale per row
    if isinstance(scales, torch.Tensor):
        nbytes += scales.numel() * scales.element_size()
    return nbytes


def copy_tensors(targets: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved ``tensors`` into the model's ``targets`` (parameters or buffers by name), in place, keeping each
    target's device and dtype. Callers check first that every name exists (each says so in its own words)."""
    with torch.no_grad():
        for name, tensor in tensors.items():
            target = targets[name]
            target.copy_(tensor.to(target.device, target.dtype))


class ParamIndex:
    """Canonical names of a model's parameters, their aliases (ties) and the modules that own them."""

    def __init__(self, model: nn.Module):
        self.params: dict[str, nn.Parameter] = {}
        self.aliases: dict[str, list[str]] = defaultdict(list)
        canonical_of: dict[int, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            key = id(param)
            if key in canonical_of:
                self.aliases[canonical_of[key]].append(name)
            else:
                canonical_of[key] = name
                self.params[name] = param
        self._canonical_of = canonical_of
        self._model = model

    def canonical(self, param: torch.Tensor) -> str:
        return self._canonical_of[id(param)]

    def under(self, module_name: str) -> list[str]:
        """Canonical names of every parameter inside a module (tied ones included)."""
        module = self._model.get_submodule(module_name) if module_name else self._model
        return [self.canonical(p) for p in module.parameters()]

    def all_names(self) -> list[str]:
        """Every parameter name, aliases included (selectors may name either)."""
        names = list(self.params)
        for extra in self.aliases.values():
            names.extend(extra)
        return names

    def resolve_name(self, name: str) -> str:
        """Canonical name for a parameter name that may be an alias."""
        if name in self.params:
            return name
        for canon, extra in self.aliases.items():
            if name in extra:
                return canon
        raise KeyError(name)

    def tied_note(self, name: str) -> str | None:
        extra = self.aliases.get(name)
        return f"{name} is tied to {', '.join(extra)}" if extra else None


@dataclass
class ModuleCount:
    name: str
    type: str
    total: int
    trainable: int


@dataclass
class TrainGroup:
    """Trainable parameters of one kind: ``"adapter"`` (peft's weights) or the class of the modules owning them."""

    kind: str
    modules: int
    params: int


@dataclass
class ParamCounts:
    """Total and trainable parameter counts, overall, per top-level module and per dtype."""

    total: int
    trainable: int
    by_module: list[ModuleCount] = field(default_factory=list)
    by_dtype: dict[str, int] = field(default_factory=dict)
    trainable_bytes: int = 0
    total_bytes: int = 0
    adapter: int = 0  # of ``total``: parameters peft added (adapter weights, soft prompts, trained head copies)
    trains: list[TrainGroup] = field(default_factory=list)  # what trains, by kind, largest first

    @property
    def base(self) -> int:
        return self.total - self.adapter

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def pct_trainable(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def count_params(model: nn.Module, depth: int = 1) -> ParamCounts:
    """Count parameters of ``model``; ``by_module`` lists the modules ``depth`` levels down."""
    index = ParamIndex(model)
    total = trainable = total_bytes = trainable_bytes = adapter = 0
    by_dtype: dict[str, int] = defaultdict(int)
    for name, param in index.params.items():
        n = param_numel(param)
        nbytes = param_bytes(param)
        total += n
        total_bytes += nbytes
        by_dtype[param_dtype(param)] += n
        adapter += n if is_adapter_param(name) else 0
        if param.requires_grad:
            trainable += n
            trainable_bytes += nbytes

    # Inside a peft wrapper, list the wrapped model's modules (bert, classifier) and peft's own (prompt_encoder).
    inner, prefix = unwrap(model)
    level = (prefix.count(".") + 1 if prefix else 0) + depth - 1
    by_module = []
    seen: set[int] = set()  # a tied weight is counted in the first module that owns it
    candidates = [(n[len(prefix) + 1:] if prefix else n, m) for n, m in model.named_modules()
                  if n and n.count(".") == level and (not prefix or n.startswith(prefix + "."))]
    if prefix:
        candidates += [(n, m) for n, m in model.named_children() if m is not inner and n != prefix.split(".")[0]]
    for name, module in candidates:
        tot = tr = 0
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            tot += param_numel(p)
            tr += param_numel(p) if p.requires_grad else 0
        if tot:
            by_module.append(ModuleCount(name, type(module).__name__, tot, tr))
    # Parameters registered directly on the root (rare: nn.Parameter on a hand-written model).
    direct = [p for p in model.parameters(recurse=False) if id(p) not in seen]
    if direct:
        tot = sum(param_numel(p) for p in direct)
        tr = sum(param_numel(p) for p in direct if p.requires_grad)
        by_module.append(ModuleCount("(root)", type(model).__name__, tot, tr))
    return ParamCounts(total, trainable, by_module, dict(by_dtype), trainable_bytes, total_bytes, adapter,
                       _trains(model))


def _trains(model: nn.Module) -> list[TrainGroup]:
    """Trainable parameters grouped by what owns them: adapter weights, else the owning module's class."""
    modules: dict[str, int] = defaultdict(int)
    params: dict[str, int] = defaultdict(int)
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        kinds = set()
        for name, param in module.named_parameters(prefix=module_name, recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            kind = "adapter" if is_adapter_param(name) else type(module).__name__
            params[kind] += param_numel(param)
            kinds.add(kind)
        for kind in kinds:
            modules[kind] += 1
    return sorted((TrainGroup(k, modules[k], params[k]) for k in params), key=lambda g: -g.params)
