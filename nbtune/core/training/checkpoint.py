"""Checkpoints written atomically, found again after a crash, and loaded for ``resume=``.

A checkpoint is a folder ``step-00000120`` holding the trainable weights, optimizer, scheduler and RNG states
and a ``state.json`` (step, position in the data, history, settings). It is written under a temporary
name and renamed into place, so a process killed mid-write leaves only a temporary folder, which is ignored.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbtune.core.common.errors import CheckpointError

_NAME = re.compile(r"^step-(\d{8})$")
_FILES = ("state.json", "trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt")


def rng_state() -> dict[str, Any]:
    """Every generator's state, in types ``torch.load(weights_only=True)`` reads back (no arbitrary pickles)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` goes in ``folder``."""
    return Path(folder).expanduser() / f"step-{step:08d}"


def save_checkpoint(folder: str | os.PathLike, step: int, *, model, optimizer, scheduler, state: dict[str, Any],
                    keep: int = 2, best: dict[str, torch.Tensor] | None = None) -> Path:
    """Write checkpoint ``step`` into ``folder`` atomically; keep the newest ``keep`` complete ones. ``best``: the
    trainable weights of the best evaluation so far (early stopping restores them at the end)."""
    from safetensors.torch import save_file

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(folder, step)
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.tmp-", dir=folder))
    try:
        weights = {n: p.detach().to("cpu").clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(weights, str(tmp / "trainable.safetensors"))
        if best is not None:
            save_file({n: t.contiguous() for n, t in best.items()}, str(tmp / "best.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, default=float))  # last: marks the folder complete
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in complete_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first; half-written and foreign folders are skipped."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and all((child / f).is_file() for f in _FILES):
            try:
                json.loads((child / "state.json").read_text())
            except ValueError:
                continue
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def find_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a complete checkpoint, else the newest complete one inside it."""
    path = Path(path).expanduser()
    if _NAME.match(path.name) and all((path / f).is_file() for f in _FILES):
        return path
    found = complete_checkpoints(path)
    if not found:
        raise CheckpointError(f"No complete checkpoint in {path}. Checkpoints are written by "
                              "train(..., checkpoint_dir=..., save_every=N); half-written ones are ignored.")
    return found[-1]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Everything a checkpoint holds, on the CPU. Only tensors and plain values are read back (``weights_only``):
    a checkpoint folder may come from elsewhere, and a pickle could run code."""
    from safetensors.torch import load_file

    try:
        return {
            "path": path,
            "state": json.loads((path / "state.json").read_text()),
            "weights": load_file(str(path / "trainable.safetensors")),
            "optimizer": torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
            "scheduler": torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True),
            "rng": torch.load(path / "rng.pt", map_location="cpu", weights_only=True),
            "best": load_file(str(path / "best.safetensors")) if (path / "best.safetensors").is_file() else None,
        }
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint {path} could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). It may be "
            "damaged, written by an older nbtune, or hold objects other than tensors; resume from another checkpoint "
            "in the folder (pass its step-... folder) or start a new run."
        ) from None
