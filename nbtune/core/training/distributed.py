"""Training on several processes: from the notebook through accelerate's ``notebook_launcher``, and the
accelerate config files (DDP, FSDP, DeepSpeed) the ``nbtune`` command writes for ``accelerate launch``.

nbtune's loop already runs unchanged under several processes (accelerate prepares the model and splits every
batch over the processes, so the global batch is the recipe's ``batch_size``); this module starts them.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from typing import Any

import torch

from nbtune.core.model.params import copy_tensors
from nbtune.core.tasks.handlers import handler_for
from nbtune.core.training import checkpoint as ckpt_mod
from nbtune.core.training.callbacks import History
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.evaluation import prepare_data
from nbtune.core.training.loop import TrainingError
from nbtune.core.training.result import RunResult
from nbtune.core.training.runtime import current_accelerator

STRATEGIES = ("ddp",)
SHARDED = ("fsdp", "deepspeed-zero2", "deepspeed-zero3")  # refused for now: see NOT_YET


def available_processes() -> tuple[int, str]:
    """How many processes this machine can run, and on what (GPUs when there are any, else CPU cores)."""
    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPUs"
    return os.cpu_count() or 1, "CPU cores"


def check_process_count(processes: int) -> None:
    if not isinstance(processes, int) or processes < 1:
        raise TrainingError(f"processes must be a positive integer; got {processes!r}.")
    available, what = available_processes()
    if processes > available:
        raise TrainingError(f"processes={processes} but this machine has {available} {what}. Use at most {available}, "
                            "or several machines with `accelerate launch` (see the docs' scale-out page).")


def train_in_processes(session, data: Any, eval_data: Any, processes: int, settings: dict[str, Any],
                       log: bool = True) -> RunResult:
    """Train ``session`` on ``processes`` processes with accelerate's ``notebook_launcher``.

    Each process gets a copy of the session (fork), trains its share of every batch, and the first writes
    checkpoints; afterwards this process loads the final weights and history back into ``session``.
    """
    from accelerate import notebook_launcher
    from accelerate.utils import patch_environment

    check_process_count(processes)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        raise TrainingError(
            "CUDA is already initialised in this kernel (a model or tensor was moved to the GPU), so processes cannot "
            "be forked from it, as accelerate documents. Restart the kernel, load the session without touching the "
            "GPU, and call train(..., processes=N) first; or export a recipe and use `nbtune launch`."
        )
    if current_accelerator() is not None:
        raise TrainingError(
            "This kernel already trained in a single process, and accelerate fixes its process state once made. "
            "Restart the kernel and call train(..., processes=N) before any single-process training, or export a "
            "recipe (s.export(...)) and run `nbtune launch --processes N recipe.yaml`."
        )
    cfg = TrainConfig.from_kwargs(**settings)
    if cfg.batch_size % processes:
        raise TrainingError(f"batch_size={cfg.batch_size} does not split evenly over {processes} processes.")
    prepare_data(session, handler_for(session), data, cfg, None, "training")  # bad data fails here, not in N copies
    folder = cfg.checkpoint_dir or tempfile.mkdtemp(prefix="nbtune-processes-")
    settings = {**settings, "checkpoint_dir": folder}
    start_rows, start_step = len(session.history.rows), session.training.global_step

    stdout = sys.stdout

    def worker():
        sys.stdout = stdout  # this process's own output again (the launcher's line was silenced, not ours)
        # one progress view, from the first process, as text lines: a forked process cannot drive the kernel's
        # widgets (ipykernel refuses messages from forks), but its printed lines reach the cell
        session.train(data, eval=eval_data, log=log and os.environ.get("RANK", "0") == "0", progress="text",
                      **settings)

    on_gpus = torch.cuda.is_available()
    if log:
        where = f"{processes} GPUs" if on_gpus else f"{processes} CPU processes (gloo)"
        print(f"training on {where} through accelerate's notebook_launcher: each takes {cfg.batch_size // processes} "
              f"of every batch of {cfg.batch_size}; progress from the first process", flush=True)
    # accelerate prints "Launching training on N CUDAs." even on a CPU, and each process warns that it sets
    # OMP_NUM_THREADS when unset: the line above says what happens, and the threads are shared out here instead.
    threads = {} if on_gpus or "OMP_NUM_THREADS" in os.environ else {
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    started = time.monotonic()
    try:
        with patch_environment(**threads), contextlib.redirect_stdout(io.StringIO()):
            notebook_launcher(worker, num_processes=processes)
    except ValueError as exc:  # accelerate refuses to launch; say what to do
        raise TrainingError(f"accelerate could not launch {processes} processes: {exc}") from None
    seconds = time.monotonic() - started
    saved = ckpt_mod.load_checkpoint(ckpt_mod.find_checkpoint(folder))
    copy_tensors(dict(session.model.named_parameters()), saved["weights"])
    state = session.training
    state.history = History(saved["state"]["history"])
    state.global_step = saved["state"]["global_step"]
    state.optimizer = None  # the optimizer lived in the processes; the next in-kernel run starts a fresh one
    rows = state.history.rows[start_rows:]
    evals = [r for r in rows if any(k.startswith("eval_") for k in r)]
    metrics = {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")} if evals else {}
    steps = state.global_step - start_step
    return RunResult(history=History(rows), metrics=metrics, reason="completed",
                     steps=steps, global_step=state.global_step,
                     seconds=seconds, examples_per_s=steps * cfg.batch_size / max(seconds, 1e-9),
                     messages=[f"trained on {processes} processes; checkpoints in {folder}"], checkpoint=str(saved["path"]),
                     config=cfg.to_dict())


NOT_YET = (
    "nbtune's training loop does not drive {strategy} yet: its checkpoints and saves read the trainable weights by "
    "name from the unwrapped model, which sharded parameters are not, and it has never run sharded on GPUs. Use "
    "--strategy ddp (each GPU holds the model; with LoRA that is usually enough), or export the recipe and train a "
    "model this large with a trainer that shards."
)


def accelerate_config(strategy: str, processes: int, mixed_precision: str = "bf16", machines: int = 1) -> dict[str, Any]:
    """An ``accelerate launch --config_file`` config for DDP on this machine (or several). FSDP and DeepSpeed are
    refused with the reason until the loop drives them (see ``NOT_YET``)."""
    if strategy in SHARDED:
        raise TrainingError(NOT_YET.format(strategy=strategy))
    if strategy not in STRATEGIES:
        raise TrainingError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    base = {"compute_environment": "LOCAL_MACHINE", "num_processes": processes * machines, "num_machines": machines,
            "machine_rank": 0, "mixed_precision": mixed_precision, "use_cpu": False, "same_network": True,
            "rdzv_backend": "static", "main_training_function": "main", "downcast_bf16": "no"}
    if machines > 1:
        base.update(main_process_ip="FIRST-MACHINE-IP", main_process_port=29500)
    return {**base, "distributed_type": "MULTI_GPU"}
