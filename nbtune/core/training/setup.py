"""Setting a run up: the checks ``fit`` makes before it changes anything, then the changes themselves.

Everything that can refuse a run (another ordering of the data, a changed trainable set, a checkpoint made for
another model) is checked first and raises with the session untouched; ``apply_run`` then makes every change a run
needs, as one unit for interrupts (``fit`` calls it inside ``deferred_interrupts``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from nbtune.core.common.errors import TrainingError
from nbtune.core.data.batching import make_loader
from nbtune.core.model.architecture import canonical_name
from nbtune.core.model.params import copy_tensors
from nbtune.core.training import checkpoint as ckpt_mod
from nbtune.core.training.callbacks import ConsoleLogger, EarlyStopping, EveryNSteps
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.fingerprint import difference, fingerprint
from nbtune.core.training.optim import build_optimizer, build_scheduler, param_groups, signature
from nbtune.core.training.state import RunPosition, TrainingState


def apply_run(session, handler, cfg, accelerator, train_features, eval_features, saved, resume, callbacks, log):
    """Put the validated run onto the session: every change ``fit`` makes before the first step."""
    state: TrainingState = session.training
    handler.apply(session, train_features)
    state.accelerator = accelerator
    model = session.model.to(accelerator.device)
    if saved is not None:
        restore_weights(model, saved)
    groups = param_groups(model, cfg)
    if not groups:  # a checkpoint's trainable set can be empty too
        raise nothing_to_train()
    names = [n for g in groups for n in g["names"]]
    session.trained_params.update(canonical_name(n) for n in names)  # kept valid when adapters wrap or merge
    if saved is not None or state.optimizer is None or state.optimizer_signature != signature(groups):
        state.optimizer = build_optimizer(groups)
        state.optimizer_signature = signature(groups)
    loader = make_loader(train_features, handler.collator(session, cfg), cfg.batch_size, cfg.seed, shuffle=True,
                         group_by_length=cfg.group_by_length, max_tokens=cfg.max_tokens_per_batch)
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    if saved is not None:
        position = restore_checkpoint_state(state, cfg, saved)
    elif resume is True:
        position = state.position
    else:
        total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        position = RunPosition(cfg.to_dict(), total, steps_per_epoch, trainable=names)
        state.scheduler = build_scheduler(state.optimizer, cfg, total)
        state.best = None  # a new run: early stopping's best is this run's
        from accelerate.utils import set_seed

        set_seed(cfg.seed)
        position.rng = ckpt_mod.rng_state()  # an interrupt inside the first step goes back to exactly this
    position.trainable = names
    state.position = position
    state.runs += 1

    listeners: list[Callable] = [state.history]
    if cfg.early_stopping and eval_features is not None:
        metric = cfg.early_stopping_metric or handler.main_metric
        listeners.append(EarlyStopping(metric, cfg.early_stopping, metric_mode(metric, handler)))
    if cfg.save_every and cfg.checkpoint_dir:
        listeners.append(EveryNSteps(cfg.save_every, "should_save"))
    if cfg.eval_every and eval_features is not None:
        listeners.append(EveryNSteps(cfg.eval_every, "should_evaluate"))
    if log and accelerator.is_main_process:
        listeners.append(ConsoleLogger(cfg.log_every))
    listeners.extend(callbacks)
    for listener in listeners:  # resuming: callbacks pick up where they were (early stopping's patience)
        if hasattr(listener, "load_state_dict") and type(listener).__name__ in position.callbacks:
            listener.load_state_dict(position.callbacks[type(listener).__name__])
    return loader, eval_features, listeners, names


LOWER_IS_BETTER = ("loss", "perplexity", "wer", "cer")


def metric_mode(metric: str, handler) -> str:
    """"max" or "min": the task's main metric goes its own way; losses and error rates go down; others up."""
    if metric == handler.main_metric:
        return "max" if handler.greater_is_better else "min"
    return "min" if metric in LOWER_IS_BETTER or metric.endswith("_loss") else "max"


def load_checkpoint_state(state: TrainingState, position: RunPosition, saved: dict[str, Any]) -> None:
    """Optimizer, scheduler, history, step counter and position from a loaded checkpoint, onto the run's own
    objects (the weights are ``restore_weights``'s). Used to resume, and to go back after a non-finite loss."""
    for key, value in saved["state"]["position"].items():
        if key in RunPosition.__dataclass_fields__:
            setattr(position, key, value)
    position.rng = saved["rng"]
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.history.rows[:] = saved["state"]["history"]
    state.global_step = saved["state"]["global_step"]


def restore_checkpoint_state(state: TrainingState, cfg: TrainConfig, saved: dict[str, Any]) -> RunPosition:
    """A resumed run's position, scheduler and state from a loaded checkpoint (weights are separate)."""
    fields = saved["state"]["position"]
    position = RunPosition(fields["config"], fields["total_steps"], fields["steps_per_epoch"])
    state.scheduler = build_scheduler(state.optimizer, cfg, position.total_steps)
    load_checkpoint_state(state, position, saved)
    best = saved["state"].get("best")
    state.best = {**best, "weights": saved["best"]} if best and saved.get("best") is not None else None
    return position


def nothing_to_train() -> TrainingError:
    return TrainingError("Nothing to train: every parameter is frozen. Unfreeze something (s.unfreeze('head')) "
                         "or attach an adapter (s.add_lora()).")


def check_same_order(saved_config: dict[str, Any], cfg: TrainConfig, where: str) -> None:
    differ = {k: (saved_config.get(k), getattr(cfg, k)) for k in TrainConfig.ORDER_KEYS
              if saved_config.get(k) != getattr(cfg, k)}
    if differ:
        said = ", ".join(f"{k}={a!r} there, {b!r} now" for k, (a, b) in differ.items())
        raise TrainingError(f"Cannot resume {where} with different settings ({said}): the data order and step count "
                            "depend on them. Pass the same values, or start a new run without resume.")


def check_same_trainable(model, trainable: list[str]) -> None:
    now = [n for n, p in model.named_parameters() if p.requires_grad]
    if trainable and set(now) != set(trainable):
        added, removed = sorted(set(now) - set(trainable)), sorted(set(trainable) - set(now))
        said = "; ".join(([f"now trainable: {added[:3]}"] if added else []) + ([f"now frozen: {removed[:3]}"] if removed
                                                                                 else []))
        raise TrainingError(f"The trainable set changed since the run was interrupted ({said}), so its optimizer "
                            "state no longer fits. Freeze and unfreeze back to how it was, or start a new run "
                            "without resume.")


def check_checkpoint_fits(session, saved) -> None:
    """Refuse, before anything changes, a checkpoint made for another model, task or adapter set."""
    own = dict(session.model.named_parameters())
    recorded = saved["state"].get("fingerprint")
    problem = difference(recorded, fingerprint(session, [])) if recorded else None
    if problem is None:
        wrong = [n for n, t in saved["weights"].items() if n not in own or tuple(own[n].shape) != tuple(t.shape)]
        if wrong:
            problem = f"it holds weights this model lacks or shapes differently: {wrong[:3]}"
    if problem:
        raise TrainingError(
            f"Cannot resume from checkpoint {saved['path']}: {problem}. Nothing was changed. Set the session up as "
            "the run was (same model, task and adapters, e.g. s.add_lora(...) first), then resume."
        )


def restore_weights(model, saved) -> None:
    own = dict(model.named_parameters())
    for name, param in own.items():
        param.requires_grad_(name in saved["weights"])
    copy_tensors(own, saved["weights"])
