"""Saving a session to a folder and restoring it: ``Session.save`` and ``nbtune.load(folder)``.

Layout of a saved folder:

- ``nbtune.json``: task, labels, where the base model came from, adapters, trainable names, freeze log.
- with adapters: peft's own files (``adapter_config.json`` + ``adapter_model.safetensors``; extra adapters in
  sub-folders named after them), so peft users can load them directly, plus
  ``nbtune_trainable.safetensors``: every trainable (or trained) parameter by name. peft stores P-tuning's
  computed prompt instead of its encoder, and never stores base modules the user unfroze; this file keeps
  both, so a reload continues training bit for bit.
- without adapters: a transformers model is saved with ``save_pretrained``; a plain ``nn.Module``'s full state
  goes into ``nbtune_trainable.safetensors``.
- the processor (tokenizer, image processor, feature extractor...), when the session has one that can be
  written (a Python transform cannot: the metadata names it, and ``load(folder, processor=...)`` gives it back).

Files are written to a temporary folder that is renamed into place, so a crash never leaves half a save.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nbtune.core.common.errors import SaveError
from nbtune.core.common.interrupts import deferred_interrupts
from nbtune.core.common.quiet import quietly
from nbtune.core.common.version import __version__
from nbtune.core.data.processor import can_save
from nbtune.core.model.architecture import (
    canonical_name,
    head_module_names,
    is_adapter_param,
    is_peft_model,
    is_shadow_param,
    is_under,
    unwrap,
)
from nbtune.core.model.params import copy_tensors, count_params
from nbtune.core.model.quantize import is_quantized_param, quantization_of
from nbtune.core.tasks import is_labelled

META_FILE = "nbtune.json"
STATE_FILE = "nbtune_trainable.safetensors"
FORMAT = 1


@dataclass
class SaveReport:
    """What ``save`` wrote: the folder, its files, and how many trainable parameters they hold."""

    folder: str
    files: list[str]
    trainable_saved: int
    adapters: list[str]
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"saved to {self.folder}: {len(self.files)} files, {self.trainable_saved:,} trainable parameters"
                + (f", adapters {self.adapters}" if self.adapters else "") + "".join(f"\nnote: {n}" for n in self.notes))


def _is_pretrained(model) -> bool:
    return callable(getattr(model, "save_pretrained", None)) and hasattr(model, "config")


def _atomic_dir(folder: Path):
    """A temporary sibling of ``folder`` to write into; ``_commit`` moves it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))


def _backup_of(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.previous")


def _commit(tmp: Path, folder: Path) -> None:
    """Swap the finished ``tmp`` into ``folder``. The previous save is moved aside first and deleted last; a process
    killed between the two moves leaves it beside the folder, where ``recover_interrupted_save`` finds it."""
    backup = _backup_of(folder)
    with deferred_interrupts():
        if folder.exists():
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(folder, backup)
        os.replace(tmp, folder)
    shutil.rmtree(backup, ignore_errors=True)


def recover_interrupted_save(folder: str | os.PathLike) -> bool:
    """Put a previous save back where a save killed mid-swap left it aside; True when it did."""
    folder = Path(folder).expanduser()
    backup = _backup_of(folder)
    if not folder.exists() and (backup / META_FILE).is_file():
        os.replace(backup, folder)
        return True
    return False


def _state_to_save(session, everything: bool) -> dict[str, torch.Tensor]:
    """Parameters to store ourselves: trainable, trained, and every adapter weight (inactive adapters too)."""
    model = session.model
    trained = session.trained_params  # canonical names: valid whether adapters wrapped the model since or not
    names = {n for n, p in model.named_parameters()
             if p.requires_grad or (is_adapter_param(n) and not is_shadow_param(n)) or canonical_name(n) in trained}
    out = {}
    for name, tensor in list(model.named_parameters()) + (list(model.named_buffers()) if everything else []):
        if everything or name in names:
            out[name] = tensor.detach().to("cpu").clone().contiguous()
    return out


def _changed_from_base(session) -> dict[str, torch.Tensor]:
    """Parameters that differ from the base model the session was loaded from: trained ones and the task head
    (a new or re-initialised head is not in the base checkpoint)."""
    heads = head_module_names(session.model)
    trained = session.trained_params
    return {n: p.detach().to("cpu").clone().contiguous() for n, p in session.model.named_parameters()
            if canonical_name(n) in trained or is_under(n, heads)}


@quietly
def save_session(session, folder: str | os.PathLike, overwrite: bool = False, light: bool = False) -> SaveReport:
    """Write ``session`` to ``folder`` (replacing a previous nbtune save there) and return what was written.

    ``light``: for a transformers model without adapters, store only what differs from the base model (trained
    parameters and the head) and load the base from its source on reload: what a run folder keeps at the start of
    every run, instead of a full copy of the model."""
    from safetensors.torch import save_file

    session.require_weights("save")
    folder = Path(folder).expanduser().resolve()
    recover_interrupted_save(folder)
    if folder.exists() and not folder.is_dir():
        raise SaveError(f"{folder} is a file; pass a folder to save into.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / META_FILE).exists() and not overwrite:
        shown = ", ".join(sorted(p.name for p in folder.iterdir())[:4])
        raise SaveError(f"{folder} already holds files that are not an nbtune save ({shown}...). Choose an empty or "
                        "new folder, or pass overwrite=True to replace everything in it.")
    model = session.model
    peft = is_peft_model(model)
    # a light save of a transformers model keeps only what differs from the base, which reloads from its source
    base_from_source = light and not peft and _is_pretrained(model) and session.source.kind != "module"
    tmp = _atomic_dir(folder)
    try:
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if peft:
            model.save_pretrained(str(tmp))
            state = _state_to_save(session, everything=False)
            stored = _stored_by_peft(model)
            state = {n: t for n, t in state.items() if n not in stored}
        elif base_from_source:
            state = _changed_from_base(session)
        elif _is_pretrained(model):
            model.save_pretrained(str(tmp))
            state = {}
        else:
            state = _state_to_save(session, everything=True)
        if state:
            save_file(state, str(tmp / STATE_FILE))
        if can_save(session.processor):
            session.processor.save_pretrained(str(tmp))
        trainable_saved = sum(p.numel() for p in model.parameters() if p.requires_grad)
        meta = _metadata(session, peft, trainable, trainable_saved)
        meta["has_config"] = meta["has_config"] and not base_from_source
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        _commit(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes = ([f"the processor ({meta['processor_not_saved']}) is Python code, which a folder cannot hold; give it "
              f"again when reloading: nbtune.load({str(folder)!r}, processor=...)"] if meta["processor_not_saved"] else [])
    return SaveReport(str(folder), files, trainable_saved, meta["adapters"], notes)


def _stored_by_peft(model) -> set[str]:
    """Names of the parameters whose tensors peft's own adapter files hold as they are (prompt-learning adapters
    store a computed prompt instead, so their encoders are not among them)."""
    from peft import get_peft_model_state_dict

    by_storage = {(p.data_ptr(), tuple(p.shape)): n for n, p in model.named_parameters()}
    stored = set()
    for name in model.peft_config:
        for tensor in get_peft_model_state_dict(model, adapter_name=name).values():
            found = by_storage.get((tensor.data_ptr(), tuple(tensor.shape)))
            if found is not None:
                stored.add(found)
    return stored


def _parameters(model) -> dict[str, int]:
    """The session's counts as the summary gives them (``nbtune.core.model.params``: adapters included, 4-bit
    weights by the values they hold), so the folder states the number every view shows."""
    counts = count_params(model)
    return {"total": counts.total, "base": counts.base, "adapter": counts.adapter, "trainable": counts.trainable}


def _metadata(session, peft: bool, trainable: list[str], trainable_saved: int) -> dict[str, Any]:
    source = asdict(session.source)
    if source.get("location") and source["kind"] in ("folder", "gguf"):
        source["location"] = str(Path(source["location"]).resolve())
    config = getattr(getattr(session.model, "config", None), "to_dict", None)
    id2label = None
    inner_config = getattr(unwrap(session.model)[0], "config", None)
    if is_labelled(session.task) and inner_config is not None:
        id2label = {int(k): v for k, v in inner_config.id2label.items()}
    return {
        "format": FORMAT,
        "nbtune_version": __version__,
        "task": session.task,
        "objective": session.objective,
        "base": source,
        "peft": peft,
        "adapters": list(session.model.peft_config) if peft else [],
        "active_adapter": session.model.active_adapter if peft else None,
        "adapter_settings": session.adapter_settings,
        "id2label": id2label,
        "trainable": trainable,
        "trained": sorted(session.trained_params),  # frozen since, but changed: a later save must keep them too
        "trainable_numel": trainable_saved,
        "parameters": _parameters(session.model),
        "freeze_log": [[a, list(s)] for a, s in session.freeze_log],
        "seed": session.seed,
        "plugins": session.plugin_modules(),  # imported again on reloading: they define the task, model class...
        # a transformers model that save_pretrained writes (not a torchvision model nbtune gave a config)
        "has_config": config is not None and _is_pretrained(unwrap(session.model)[0]),
        # the processor's class when save_pretrained wrote it; a transform that is Python code is named, not saved
        "processor": type(session.processor).__name__ if can_save(session.processor) else None,
        "processor_not_saved": (type(session.processor).__name__
                                if session.processor is not None and not can_save(session.processor) else None),
    }


# what save_pretrained writes for a tokenizer, an image processor, a feature extractor or a processor
_PROCESSOR_FILES = ("tokenizer*", "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")


def saved_processor(folder: str | os.PathLike, meta: dict[str, Any]) -> bool:
    """Whether ``folder`` holds the session's processor (folders saved before the processor slot existed are
    recognised by their processor files)."""
    if "processor" in meta:
        return meta["processor"] is not None
    return any(any(Path(str(folder)).expanduser().glob(pattern)) for pattern in _PROCESSOR_FILES)


def read_meta(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The saved metadata of an nbtune folder, or None when ``folder`` is not one."""
    path = Path(folder).expanduser() / META_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    if meta.get("format", 0) > FORMAT:
        raise SaveError(f"{folder} was saved by a newer nbtune ({meta.get('nbtune_version')}); upgrade nbtune to load it.")
    return meta


def _adapter_dir(folder: Path, name: str) -> Path:
    return folder if name == "default" else folder / name


def restore(session, folder: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Put a saved folder's adapters, trained weights and freeze state onto ``session`` (its base model)."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if meta["peft"]:
        # Rebuild the adapters from their saved configs, then load the exact weights from our state file:
        # peft will not reload prompt-learning adapters as trainable (it stores their computed prompt only).
        from peft import PeftConfig, get_peft_model, set_peft_model_state_dict
        from safetensors.torch import load_file as load_adapter_file

        first, *rest = meta["adapters"]
        configs = {}
        for name in meta["adapters"]:
            config = PeftConfig.from_pretrained(str(_adapter_dir(folder, name)))
            config.inference_mode = False
            configs[name] = config
        model = get_peft_model(session.model, configs[first], adapter_name=first)
        for name in rest:
            model.add_adapter(name, configs[name])
        for name in meta["adapters"]:  # peft's own files hold the adapter weights; ours below hold the rest
            weights_file = _adapter_dir(folder, name) / "adapter_model.safetensors"
            if weights_file.is_file():
                set_peft_model_state_dict(model, load_adapter_file(str(weights_file)), adapter_name=name)
        model.set_adapter(meta["active_adapter"])
        session.model = model
    state_path = folder / STATE_FILE
    if state_path.exists():
        state = load_file(str(state_path))
        own = dict(session.model.named_parameters())
        own.update(dict(session.model.named_buffers()))
        missing = [n for n in state if n not in own]
        if missing:
            raise SaveError(
                f"{folder} holds weights for {missing[:3]} (+{max(len(missing) - 3, 0)}) that this model lacks: it was "
                "saved from a different architecture or adapter set."
            )
        copy_tensors(own, state)
    trainable = set(meta["trainable"])
    newly_quantized = quantization_of(session.model) is not None and not (meta.get("base") or {}).get("quantize")
    if newly_quantized:
        # Saved in full precision, reloaded with quantize=...: the saved trainable set described a model whose
        # weights could all train (a full fine-tune's default). Its packed weights cannot, and what would be left
        # of it (embeddings and norms) is nobody's choice: the base starts frozen, as any k-bit load does, and only
        # adapters keep training.
        base_trainable = [n for n in trainable if not is_adapter_param(n)]
        trainable -= set(base_trainable)
        if base_trainable:
            session.notes.append(f"{folder} was saved in full precision with {len(base_trainable)} base tensors "
                                 "trainable; reloaded quantized, the base starts frozen and only adapters train: "
                                 "unfreeze(...) what should train besides an adapter")
    for name, param in session.model.named_parameters():
        # a base reloaded with quantize=... keeps its packed weights frozen: they train through an adapter
        param.requires_grad_(name in trainable and not is_quantized_param(param))
    session.freeze_log = [(a, tuple(s)) for a, s in meta.get("freeze_log", [])]
    session.trained_params = set(meta.get("trained", []))
    session.adapter_settings = dict(meta.get("adapter_settings") or {})
