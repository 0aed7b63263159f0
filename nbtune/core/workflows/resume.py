"""``nbtune.resume``: come back to a run after a kernel restart or a disconnect (the run folder's layout is in
``nbtune.core.training.run_folder``)."""

from __future__ import annotations

import os
from typing import Any

from nbtune.core.common.errors import TrainingError
from nbtune.core.session.loading import load
from nbtune.core.training.callbacks import History
from nbtune.core.training.events import Outcome
from nbtune.core.training.result import RunResult
from nbtune.core.training.run_folder import read_history, read_run, resumable, run_path


def resume(name_or_folder: str | os.PathLike, data: Any = None, eval: Any = None, *, model: Any = None,
           progress: str = "auto", log: bool = True, **settings: Any):
    """Come back to a run after a kernel restart or a disconnect: rebuild its session (model, freezes, adapters,
    task and labels) from the run folder, then continue from its newest checkpoint (or from its start, if it
    stopped before the first one) to the result an uninterrupted run reaches. Returns the run's result; its
    ``session`` attribute is the rebuilt session.

    ``data``/``eval`` default to the copies the run folder keeps; ``model`` is needed when the run trained a plain
    ``nn.Module`` (built again by your code); ``settings`` override the run's (not those that fix the data order).

    A run that had finished is not trained again: its final weights, history and metrics come back at once.
    """
    folder = run_path(name_or_folder)
    run = read_run(folder)
    if resumable(folder, run) == "finished":
        unused = sorted(settings) + [name for name, value in (("data", data), ("eval", eval)) if value is not None]
        return _finished_result(folder, run, model, unused)
    if run["source"].get("kind") == "module" and model is None:
        raise TrainingError(f"Run {folder.name!r} trained a Python nn.Module, which cannot be rebuilt from a file. "
                            f"Build the module again and pass it: nbtune.resume({folder.name!r}, model=MyModel()).")
    if data is None:
        if not (folder / "data" / "train.parquet").is_file():
            raise TrainingError(f"Run {folder.name!r} keeps no copy of its training data (it was not a table); pass "
                                f"it: nbtune.resume({folder.name!r}, data=...).")
        # as files, not tables: reading them, the task's modality finds the media stored beside them
        data = str(folder / "data" / "train.parquet")
        if eval is None and (folder / "data" / "eval.parquet").is_file():
            eval = str(folder / "data" / "eval.parquet")
    session = load(model, adapter=folder / "setup") if model is not None else load(folder / "setup")
    config = {k: v for k, v in run["config"].items() if k not in ("checkpoint_dir", "run_name")}
    config.update(settings)
    result = session.train(data, eval=eval, resume=folder, progress=progress, log=log, **config)
    result.session = session
    return result


def _finished_result(folder, run: dict[str, Any], model: Any, given: list[str]) -> RunResult:
    """A finished run's result as it ended: the session from ``final/`` with the run's history, no training."""
    session = load(model, adapter=folder / "final") if model is not None else load(folder / "final")
    rows = read_history(folder)
    session.training.history = History(rows)
    session.training.global_step = int(run.get("steps") or 0)
    message = (f"run {folder.name!r} had already finished ({run['status']}, {run.get('steps')} steps): this is its "
               "final state, nothing was trained. To train further, train the returned session "
               "(result.session.train(...)), which starts a new run")
    if given:
        message += f"; {', '.join(given)} were not used"
    result = RunResult(history=History(rows), metrics=dict(run.get("metrics") or {}), reason=f"already {run['status']}",
                       steps=0, global_step=session.training.global_step, seconds=0.0, examples_per_s=0.0,
                       messages=[message], config=dict(run.get("config") or {}), outcome=Outcome(run["status"]),
                       run_folder=str(folder))
    result.session = session
    return result
