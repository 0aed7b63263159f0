"""The ``nbtune`` command: run a recipe headless, launch it on several processes, write accelerate configs.

    nbtune run recipe.yaml [--output DIR] [--resume [CHECKPOINT]]
    nbtune launch recipe.yaml --processes N [--config accelerate.yaml] [--resume]
    nbtune accelerate-config recipe.yaml --strategy ddp|fsdp|deepspeed-zero2|deepspeed-zero3 --processes N -o FILE

``accelerate launch -m nbtune run recipe.yaml`` works too: the loop is the notebook's, under accelerate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from nbtune.core.common.errors import NbtuneError


def _output(recipe_path: Path, output: str | None) -> Path:
    return Path(output) if output else recipe_path.with_name(recipe_path.stem + "-run")


def run(recipe_path: str, output: str | None = None, resume: str | bool | None = None, log: bool = True) -> int:
    """Run a recipe file to the end: checkpoints, history.jsonl, metrics.json and the model in the output folder.

    SIGINT and SIGTERM stop it cleanly after the step under way, with a checkpoint, whether it runs in the
    foreground, in the background or under CI; the exit status is then 128 + the signal's number."""
    from nbtune.core.common.interrupts import install_stop_signals, stop_signals
    from nbtune.core.recipes.spec import read_recipe
    from nbtune.core.training.checkpoint import complete_checkpoints
    from nbtune.core.workflows.finetune import is_main_process, run_recipe

    path = Path(recipe_path)
    recipe = read_recipe(path)  # every recipe error comes here, before anything loads
    out = _output(path, output)
    checkpoints = Path(recipe.train.get("checkpoint_dir") or out / "checkpoints")
    overrides = {"checkpoint_dir": str(checkpoints)}
    if not recipe.train.get("save_every"):
        overrides["save_every"] = 50
    if resume is True:
        if not complete_checkpoints(checkpoints):
            raise NbtuneError(f"--resume: no complete checkpoint in {checkpoints}; run without --resume first.")
        resume = str(checkpoints)
    install_stop_signals()
    result = run_recipe(recipe, None, log=log, resume=resume or None, train_overrides=overrides)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        result.session.history.to_pandas().to_json(out / "history.jsonl", orient="records", lines=True)
        before = result.before or _earlier(out / "metrics.json").get("before") or {}  # a resumed run's first
        (out / "metrics.json").write_text(json.dumps({"before": before, "after": result.after,
                                                       "reason": result.run.reason, "steps": result.run.steps,
                                                       "global_step": result.run.global_step},
                                                      indent=2))
        if not recipe.save:
            result.session.save(out / "model")
        print(f"nbtune: {result.run.reason} after {result.run.global_step} steps; results in {out}", flush=True)
        if result.run.cancelled:
            print(f"nbtune: continue it with: nbtune run {recipe_path} --resume"
                  + (f" --output {output}" if output else ""), flush=True)
    if stop_signals.received is not None and result.run.cancelled:
        return 128 + stop_signals.received
    return 0


def _earlier(path: Path) -> dict:
    """What an earlier (interrupted) run of the recipe wrote, if anything."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def launch(recipe_path: str, processes: int, config: str | None = None, output: str | None = None,
           resume: str | bool | None = None) -> int:
    """Start ``processes`` copies of ``nbtune run`` with accelerate (GPUs) or torchrun (CPU, gloo)."""
    import torch
    import yaml

    from nbtune.core.recipes.spec import read_recipe
    from nbtune.core.training.distributed import check_process_count

    read_recipe(recipe_path)  # fail before any process starts
    check_process_count(processes)
    if config:
        settings = yaml.safe_load(Path(config).read_text()) or {}
        kind = str(settings.get("distributed_type", "")).upper()
        if kind in ("FSDP", "DEEPSPEED"):
            from nbtune.core.training.distributed import NOT_YET

            raise NbtuneError(f"{config} asks for {kind}. " + NOT_YET.format(strategy=kind))
    tail = ["-m", "nbtune", "run", str(recipe_path)] + (["--output", output] if output else [])
    if resume:
        tail += ["--resume"] + ([str(resume)] if resume is not True else [])
    if torch.cuda.is_available() or config:
        head = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
        head += ["--config_file", config] if config else ["--multi_gpu"]
    else:  # accelerate launch runs one process on a CPU-only machine; torchrun starts them with gloo
        head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command = head + tail
    print("nbtune: " + " ".join(command), flush=True)
    return _run_forwarding_signals(command)


def _run_forwarding_signals(command: list[str]) -> int:
    """Run the launcher in a session of its own and pass SIGINT / SIGTERM on to it, once each time one arrives:
    the launcher hands it to every worker, and each worker's ``nbtune run`` stops after the same step with a
    checkpoint. (Ctrl-C in a terminal would otherwise reach launcher and workers at once, and the launcher's own
    signal to the workers would count as a second one: an immediate stop with no common checkpoint.)"""
    import signal

    child = subprocess.Popen(command, start_new_session=True)

    def forward(signum, frame):
        child.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def write_accelerate_config(recipe_path: str, strategy: str, processes: int, out: str, machines: int = 1) -> Path:
    """Write an accelerate config (DDP) for the recipe."""
    import yaml

    from nbtune.core.recipes.spec import read_recipe
    from nbtune.core.training.distributed import accelerate_config

    read_recipe(recipe_path)  # a broken recipe fails here, not on the cluster
    config = accelerate_config(strategy, processes, machines=machines)
    target = Path(out)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"nbtune: wrote {strategy} config for {processes} processes x {machines} machines to {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbtune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run a recipe file headless")
    p_run.add_argument("recipe")
    p_run.add_argument("--output", help="results folder (default: RECIPE-run beside the recipe)")
    p_run.add_argument("--resume", nargs="?", const=True, default=None,
                       help="continue from the newest checkpoint (or from the checkpoint folder given)")
    p_run.add_argument("--quiet", action="store_true")
    p_launch = sub.add_parser("launch", help="run a recipe on several processes")
    p_launch.add_argument("recipe")
    p_launch.add_argument("--processes", type=int, required=True)
    p_launch.add_argument("--config", help="an accelerate config file (nbtune accelerate-config writes one)")
    p_launch.add_argument("--output")
    p_launch.add_argument("--resume", nargs="?", const=True, default=None,
                          help="continue from the newest checkpoint (or from the checkpoint folder given)")
    p_cfg = sub.add_parser("accelerate-config", help="write an accelerate config (DDP, FSDP, DeepSpeed)")
    p_cfg.add_argument("recipe")
    p_cfg.add_argument("--strategy", default="ddp", help="ddp (fsdp and deepspeed-zero2/3 are refused with the reason)")
    p_cfg.add_argument("--processes", type=int, required=True, help="processes (GPUs) per machine")
    p_cfg.add_argument("--machines", type=int, default=1)
    p_cfg.add_argument("-o", "--out", default="accelerate.yaml")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run(args.recipe, args.output, args.resume, log=not args.quiet)
        if args.command == "launch":
            return launch(args.recipe, args.processes, args.config, args.output, args.resume)
        write_accelerate_config(args.recipe, args.strategy, args.processes, args.out, args.machines)
        return 0
    except NbtuneError as exc:
        print(f"nbtune: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
