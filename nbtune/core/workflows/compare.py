"""Runs side by side: ``nbtune.runs()`` lists the run folders, ``nbtune.compare(...)`` puts runs' curves and
settings together, ``nbtune.race(...)`` trains several set-ups on the same data and budget and compares them.

The core builds the tables; the notebook layer adds the overlaid curves to the HTML (``nbtune.ui.figures``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtune.core.common.errors import RecipeError, TrainingError
from nbtune.core.training.run_folder import (
    RUN_FILE,
    folder_size,
    read_history,
    read_run,
    resumable,
    run_path,
    runs_folder,
)


@dataclass
class RunInfo:
    """One run folder's summary and history."""

    name: str
    folder: Path
    info: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, folder: Path) -> "RunInfo":
        return cls(folder.name, folder, read_run(folder), read_history(folder))

    def row(self) -> dict[str, Any]:
        best = self.info.get("best") or {}
        return {
            "name": self.name, "model": self.info.get("model"), "method": self.info.get("method"),
            "trainable": self.info.get("trainable"), "steps": self.info.get("steps"),
            "best": f"{best['metric']} {best['value']:.4f}" if best else "",
            "status": self.info.get("status"), "resume": resumable(self.folder, self.info),
            "seconds": round(float(self.info.get("seconds") or 0.0), 1),
            "size_mb": round(folder_size(self.folder) / 2**20, 2), "created": self.info.get("created"),
        }


@dataclass
class RunTable:
    """``nbtune.runs()``: one row per run folder, newest first."""

    folder: Path
    runs: list[RunInfo]

    def rows(self) -> list[dict[str, Any]]:
        return [r.row() for r in self.runs]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        from nbtune.render.runs import run_table_text

        return run_table_text(self)

    def _repr_html_(self) -> str:
        from nbtune.render.runs import run_table_html

        return run_table_html(self)


def runs(folder: str | os.PathLike | None = None) -> RunTable:
    """The runs in ``folder`` (default: the runs folder), newest first."""
    root = Path(folder).expanduser() if folder is not None else runs_folder()
    found = [RunInfo.read(p.parent) for p in root.glob(f"*/{RUN_FILE}")] if root.is_dir() else []
    found.sort(key=lambda r: str(r.info.get("created") or ""), reverse=True)
    return RunTable(root, found)


# settings that say nothing about what differs between runs
_INCIDENTAL = {"checkpoint_dir", "run_name", "log_every", "save_minutes", "save_run", "keep_checkpoints"}


@dataclass
class Comparison:
    """Runs side by side: their summary rows, curves (histories) and the settings that differ."""

    runs: list[RunInfo]
    differing: dict[str, list[Any]]

    def __repr__(self) -> str:
        from nbtune.render.runs import comparison_text

        return comparison_text(self)

    def _repr_html_(self) -> str:
        from nbtune.render.runs import comparison_html

        return comparison_html(self)


def compare(*names: str | os.PathLike) -> Comparison:
    """Compare runs by name or folder: summary table, overlaid curves (in a notebook), differing settings."""
    if not names:
        raise TrainingError("compare needs runs: nbtune.compare('run-a', 'run-b') (nbtune.runs() lists them).")
    infos = [RunInfo.read(run_path(n)) for n in names]
    settings = [{**{k: v for k, v in r.info.get("config", {}).items() if k not in _INCIDENTAL},
                 "model": r.info.get("model"), "method": r.info.get("method"), "trainable": r.info.get("trainable")}
                for r in infos]
    keys = sorted({k for s in settings for k in s})
    differing = {k: [s.get(k) for s in settings] for k in keys
                 if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in settings}) > 1}
    return Comparison(infos, differing)


DEFAULT_SETUPS: dict[str, dict[str, Any]] = {
    "full fine-tuning": {},
    "head only": {"freeze": ["all"], "unfreeze": ["head"]},
    "LoRA": {"lora": {"r": 8}},
}


def race(model: Any, data: Any, eval: Any = None, setups: dict[str, dict[str, Any]] | None = None, *,
         task: str | None = None, name: str | None = None, progress: str = "auto", log: bool = True,
         **train: Any) -> Comparison:
    """Train the same data with several set-ups on the same budget and compare them.

    ``setups`` maps a name to recipe keys (``freeze``, ``unfreeze``, ``head``, an adapter such as
    ``lora: {r: 8}``, load keys such as ``num_labels``); default: full fine-tuning, head only and LoRA. Each set-up
    starts from a fresh load of ``model`` with the same seed, each is a run folder of its own (``<name>-<setup>``),
    and each trains with the same settings (``train``; load keys such as ``num_labels`` go to the load), its
    learning rate the set-up's default unless given.
    Every set-up is checked before the first one trains.
    """
    import time

    from nbtune.core.recipes.build import build_session
    from nbtune.core.recipes.spec import load_keys, parse_recipe

    loading = {k: train.pop(k) for k in list(train) if k in load_keys()}  # num_labels, labels, seed...
    setups = dict(setups or DEFAULT_SETUPS)
    if not setups:
        raise RecipeError("race needs at least one set-up, e.g. {'head only': {'freeze': ['all'], "
                          "'unfreeze': ['head']}}.")
    recipes = {}
    for label, setup in setups.items():
        if not isinstance(setup, dict):
            raise RecipeError(f"Set-up {label!r} must be a mapping of recipe keys, e.g. {{'lora': {{'r': 8}}}}.")
        recipes[label] = parse_recipe({"model": model, "task": task, **loading, **setup, "train": dict(train)})
    stem = name or time.strftime("race-%Y%m%d-%H%M%S")
    names = []
    for label, recipe in recipes.items():
        session = build_session(recipe, None)
        run_name = f"{stem}-{label}".replace(" ", "-")
        session.train(data, eval=eval, run_name=run_name, progress=progress, log=log, **recipe.train)
        names.append(run_name)
    return compare(*names)
