"""Run folders: every training run has a home on disk, so it can be left and come back to.

``<runs folder>/<run name>/`` holds:

- ``run.json``: name, model, task, method, trainable parameters, settings, status, steps, metrics, time;
- ``setup/``: the session as the run started (a light save: adapters, head and what earlier runs trained; the base
  model is loaded from its source), so ``nbtune.resume`` can rebuild it after a restart;
- ``data/``: the training (and evaluation) table as Parquet, so resuming needs no notebook variables;
- ``checkpoints/``: trainable weights, optimizer, scheduler, random state and history, written atomically every
  ``save_minutes`` of wall clock, every ``save_every`` steps if asked, and whenever the run ends early (Stop,
  interrupt, out of memory, non-finite loss, error); the newest ``keep_checkpoints`` are kept;
- ``history.jsonl``: one row per step and evaluation;
- ``final/``: the session at the end (light save).

The runs folder is ``./nbtune-runs`` unless ``nbtune.set_runs_folder(path)`` (a mounted Drive folder, say) or the
``NBTUNE_RUNS_DIR`` environment variable says otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nbtune.core.common.errors import RecipeError, TrainingError
from nbtune.core.common.version import __version__
from nbtune.core.model.params import count_params
from nbtune.core.training.callbacks import Callback
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.events import CheckpointSaved, Control, FitEnded, FitStarted, Outcome, StepEnded
from nbtune.core.training.optim import what_trains

RUNS_ENV = "NBTUNE_RUNS_DIR"
FINISHED_STATUSES = {o.value for o in Outcome if o.finished}  # run.json statuses with nothing left to resume
RUN_FILE = "run.json"
_folder: Path | None = None


def set_runs_folder(path: str | os.PathLike) -> Path:
    """Where run folders go from now on (in this process)."""
    global _folder
    _folder = Path(path).expanduser()
    return _folder


def runs_folder() -> Path:
    """The folder that holds run folders: ``set_runs_folder``, else ``$NBTUNE_RUNS_DIR``, else ``./nbtune-runs``."""
    if _folder is not None:
        return _folder
    return Path(os.environ.get(RUNS_ENV) or "nbtune-runs").expanduser()


def run_path(name_or_folder: str | os.PathLike) -> Path:
    """A run's folder from its name (in the runs folder) or its path."""
    path = Path(name_or_folder).expanduser()
    if is_run_folder(path):
        return path
    inside = runs_folder() / str(name_or_folder)
    if is_run_folder(inside):
        return inside
    from nbtune.core.common.errors import close_matches

    known = [p.parent.name for p in runs_folder().glob(f"*/{RUN_FILE}")] if runs_folder().is_dir() else []
    hints = close_matches(str(name_or_folder), known)
    raise TrainingError(f"No run {str(name_or_folder)!r} in {runs_folder()}" + (f" (did you mean {hints[0]!r}?)"
                        if hints else "") + ". nbtune.runs() lists the runs; pass a run's folder path to use one "
                        "kept elsewhere.")


def new_run_name(session) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{session.name}-{what_trains(session.model)}").strip("-")[:60]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, n = f"{stamp}-{base}", 1
    while (runs_folder() / name).exists():
        n += 1
        name = f"{stamp}-{base}-{n}"
    return name


def checkpoints_of(folder: Path) -> Path:
    """Where a run folder keeps its checkpoints."""
    return Path(folder) / "checkpoints"


def keeps_own_checkpoints(folder: Path | None, checkpoint_dir: str | None) -> bool:
    """Whether a run writes its checkpoints into its run folder (not into a folder the user chose)."""
    return folder is not None and checkpoint_dir is not None and Path(checkpoint_dir) == checkpoints_of(folder)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def is_run_folder(path: Any) -> bool:
    """Whether ``path`` is a run folder (it holds run.json)."""
    try:
        return (Path(path).expanduser() / RUN_FILE).is_file()
    except TypeError:
        return False


def read_run(folder: Path) -> dict[str, Any]:
    return json.loads((folder / RUN_FILE).read_text())


def read_history(folder: Path) -> list[dict[str, Any]]:
    """The run's history rows (steps and evaluations), as its last checkpoint or end wrote them."""
    path = folder / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def resumable(folder: Path, run: dict[str, Any]) -> str:
    """What ``nbtune.resume`` does with a run: "finished" (returns its result at once), "yes" (continues it from
    its newest checkpoint, or its start) or "no" (its set-up was never written)."""
    if run.get("status") in FINISHED_STATUSES and (folder / "final").is_dir():
        return "finished"
    return "yes" if (folder / "setup").is_dir() else "no"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)  # never half a run.json


def _write_history(folder: Path, rows: list[dict[str, Any]]) -> None:
    tmp = folder / ".history.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))
    os.replace(tmp, folder / "history.jsonl")


class RunRecorder(Callback):
    """Keeps a run's folder up to date: settings at the start, history and status at every checkpoint and at the end,
    and asks the loop for a checkpoint every ``save_minutes`` of wall clock."""

    def __init__(self, session, folder: Path, config: dict[str, Any], save_minutes: float):
        self.session, self.folder, self.config, self.save_minutes = session, folder, config, save_minutes
        self._last_save = time.monotonic()
        self._seconds_before = 0.0  # training time of the run's earlier calls (it was resumed)
        self.notes: list[str] = []  # what the run's result should say about its folder

    # -- set-up (called by fit before the run starts) --------------------------------------------------------
    def create(self, train_table, eval_table) -> None:
        """A new run: its folder, the session as it starts, the data, and run.json."""
        self.folder.mkdir(parents=True, exist_ok=False)
        self.session.save(self.folder / "setup", light=True)
        if train_table is not None:
            self._copy_data(train_table, eval_table)
        self._write_recipe()
        s, counts = self.session, count_params(self.session.model)
        _write_json(self.folder / RUN_FILE, {
            "name": self.folder.name, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "nbtune_version": __version__,
            "model": s.name, "source": asdict(s.source), "task": s.task, "method": what_trains(s.model),
            "trainable": counts.trainable, "total": counts.total, "config": self.config,
            "status": "running", "steps": 0, "seconds": 0.0, "metrics": {}, "best": None,
        })

    def _copy_data(self, train_table, eval_table) -> None:
        """The data as Parquet, so resuming needs no notebook variables. A table Parquet cannot hold (columns of
        mixed Python objects) is not copied: the run trains all the same, and resuming then asks for the data."""
        data = self.folder / "data"
        data.mkdir()
        modality = self.session.modality  # media (images, audio) are written beside the tables it stores
        try:
            modality.store(train_table, data).to_parquet(data / "train.parquet")
            if eval_table is not None:
                modality.store(eval_table, data).to_parquet(data / "eval.parquet")
        except Exception as exc:
            shutil.rmtree(data, ignore_errors=True)
            self.notes.append(f"the run folder keeps no copy of the data ({type(exc).__name__}: {exc}); "
                              f"nbtune.resume({self.folder.name!r}, data=...) will need it")

    def _write_recipe(self) -> None:
        """The run as a recipe file (``nbtune run recipe.yaml`` repeats it), where the session can be one."""
        data = {name: self.folder / "data" / f"{name}.parquet" for name in ("train", "eval")
                if (self.folder / "data" / f"{name}.parquet").is_file()}
        defaults = TrainConfig().to_dict()
        train = {k: v for k, v in self.config.items()
                 if v != defaults.get(k) and k not in ("checkpoint_dir", "run_name", "save_run")}
        try:
            self.session.export(self.folder / "recipe.yaml", data={**data, **self.config["columns"]},
                           train={k: v for k, v in train.items() if k != "columns"})
        except RecipeError:
            pass  # a Python nn.Module or several adapters: setup/ and run.json still hold the run

    # -- events ----------------------------------------------------------------------------------------------
    def on_fit_started(self, event: FitStarted, control: Control) -> None:
        self._last_save = time.monotonic()
        self._seconds_before = float(self._update(status="running").get("seconds") or 0.0)

    def on_step_ended(self, event: StepEnded, control: Control) -> None:
        if time.monotonic() - self._last_save >= self.save_minutes * 60:
            control.should_save = True

    def on_checkpoint_saved(self, event: CheckpointSaved, control: Control) -> None:
        self._last_save = time.monotonic()
        _write_history(self.folder, self.session.history.rows)
        self._update(steps=event.step)

    def on_fit_ended(self, event: FitEnded, control: Control) -> None:
        _write_history(self.folder, self.session.history.rows)
        if event.outcome.finished and keeps_own_checkpoints(self.folder, self.config.get("checkpoint_dir")):
            # nothing left to resume: final/ holds the weights, the optimizer state would only take disk space
            shutil.rmtree(self.folder / "checkpoints", ignore_errors=True)
        if event.outcome is not Outcome.ERROR:
            try:
                self.session.save(self.folder / "final", light=True)
            except Exception as exc:  # the run's result stands; say what could not be written
                control.messages.append(f"the run's final weights could not be written to {self.folder}: {exc}")
        self._update(status=event.outcome.value, steps=event.step, metrics=dict(event.metrics),
                     seconds=self._seconds_before + event.elapsed, best=_best(self.session.history.rows),
                     size=folder_size(self.folder))

    def _update(self, **changes: Any) -> dict[str, Any]:
        run = read_run(self.folder)
        run.update(changes)
        _write_json(self.folder / RUN_FILE, run)
        return run


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best evaluation of the history by its main metric (the first eval_ key that is not the loss)."""
    evals = [r for r in rows if any(k.startswith("eval_") for k in r)]
    if not evals:
        return None
    keys = [k for k in evals[-1] if k.startswith("eval_") and k != "eval_loss"] or ["eval_loss"]
    key = keys[0]
    pick = min if key == "eval_loss" else max
    row = pick((r for r in evals if r.get(key) is not None), key=lambda r: r[key], default=None)
    return {"metric": key[5:], "value": row[key], "step": row["step"]} if row else None


def remove_run(name_or_folder: str | os.PathLike) -> None:
    """Delete a run folder (checkpoints, data, weights)."""
    shutil.rmtree(run_path(name_or_folder))
