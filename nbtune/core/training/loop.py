"""The training loop on accelerate. Read it top to bottom: ``fit`` prepares, ``_Run.go`` trains.

A notebook user trains, looks, changes the freeze or the adapter and trains on, so the optimizer, the run's
position and the history live on the session between calls (``TrainingState``), and every fault (interrupt,
non-finite loss, out of memory) returns control with the last good weights.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from nbtune.core.common.errors import OutOfMemoryError, TrainingError
from nbtune.core.common.interrupts import deferred_interrupts, stop_signals
from nbtune.core.data.batching import split_batch, to_device
from nbtune.core.model.architecture import unwrap
from nbtune.core.model.params import copy_tensors, count_params
from nbtune.core.model.precision import autocast, describe_precision
from nbtune.core.objectives import objective_for
from nbtune.core.tasks.handlers import handler_for
from nbtune.core.tasks.labels import require_evaluation_classes
from nbtune.core.training import checkpoint as ckpt_mod
from nbtune.core.training import run_folder as runs_mod
from nbtune.core.training.callbacks import EarlyStopping, History, check_callback, is_finite
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.evaluation import eval_data_from, evaluate_features, prepare_data, table_of
from nbtune.core.training.events import CheckpointSaved, Control, EvalEnded, FitEnded, FitStarted, Outcome, StepEnded
from nbtune.core.training.fingerprint import fingerprint
from nbtune.core.training.host_allocator import limit_heap_growth
from nbtune.core.training.optim import default_lr
from nbtune.core.training.result import RunResult
from nbtune.core.training.runtime import get_accelerator
from nbtune.core.training.setup import (
    apply_run,
    check_checkpoint_fits,
    check_same_order,
    check_same_trainable,
    load_checkpoint_state,
    nothing_to_train,
    restore_weights,
)
from nbtune.core.training.state import RunPosition, TrainingState
from nbtune.core.training.transaction import StepGuard, non_finite_message

# fp16 loss scaling halves the scale at each overflow; this many skipped steps in a row (scale / 2**20) means the
# gradients overflow at any scale, i.e. a real fault rather than the scaler calibrating.
MAX_SKIPPED_FP16_STEPS = 20


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def fit(session, train_data, eval_data=None, cfg: TrainConfig | None = None,
        callbacks: Iterable[Callable] = (), resume: Any = None, log: bool = True) -> RunResult:
    """Train ``session.model`` on ``train_data``; see ``Session.train`` for the user-facing description."""
    cfg = cfg or TrainConfig()
    session.require_weights("train")
    handler = handler_for(session)
    objective = objective_for(session, handler, cfg)  # its settings are checked here, before anything changes
    state: TrainingState = session.training

    # 1. Check everything that depends on the input before changing anything.
    eval_source, eval_split = eval_data_from(train_data, eval_data, handler)
    # each file is read once: the tables go to tokenization and, for a new run folder, into its data copy
    train_table = table_of(handler, train_data, "train" if eval_split else None)
    eval_table = table_of(handler, eval_source, eval_split) if eval_source is not None else None
    train_features = prepare_data(session, handler, train_table, cfg, None, "training")
    require_evaluation_classes(handler, train_table, eval_table, cfg)  # one label map for the run
    if cfg.packing:
        train_features = handler.pack(train_features, cfg)
    eval_features = (prepare_data(session, handler, eval_table, cfg, None, "evaluation")
                     if eval_table is not None else None)
    if eval_features is not None:  # label names learned from the data: the evaluation ids follow the training's
        model_names = getattr(getattr(unwrap(session.model)[0], "config", None), "id2label", None)
        eval_features = eval_features.follow_labels(train_features.label_names or model_names)
    saved = None
    continuing = None  # the run folder this call continues
    if resume is not None and resume is not True and resume is not False and runs_mod.is_run_folder(resume):
        continuing = Path(resume)  # nbtune.resume: the run's newest checkpoint, or its start if it has none
        found = ckpt_mod.complete_checkpoints(runs_mod.checkpoints_of(continuing))
        resume = found[-1] if found else None
        cfg = dataclasses.replace(cfg, run_name=continuing.name,
                                  checkpoint_dir=str(runs_mod.checkpoints_of(continuing)))
    if resume is True:
        if state.position is None or state.position.finished:
            raise TrainingError("resume=True continues an interrupted run, and this session has none; "
                                "call train() without resume to start a new run.")
        check_same_order(state.position.config, cfg, "the interrupted run")
        check_same_trainable(session.model, state.position.trainable)
    elif resume:
        saved = ckpt_mod.load_checkpoint(ckpt_mod.find_checkpoint(resume))
        check_same_order(saved["state"]["config"], cfg, f"checkpoint {saved['path']}")
        check_checkpoint_fits(session, saved)

    callbacks = list(callbacks)
    for callback in callbacks:
        check_callback(callback)
    notes: list[str] = []  # said in the run's messages
    if cfg.lr is None:  # resolved once, here: the run's config, checkpoints and header carry the rate in use
        rate, why = default_lr(session.model)
        cfg = dataclasses.replace(cfg, lr=rate)
        notes.append(f"learning rate {rate:g} ({why}; pass lr=... to choose)")
    # a precision this process cannot switch to fails here
    accelerator, precision = get_accelerator(cfg.precision, session.model)
    if saved is None and not any(p.requires_grad for p in session.model.parameters()):
        raise nothing_to_train()
    if accelerator.num_processes > 1 and cfg.max_tokens_per_batch:
        raise TrainingError("max_tokens_per_batch makes batches of varying size, which accelerate cannot split evenly "
                            "over processes; use batch_size with group_by_length=True for multi-process runs.")
    if accelerator.num_processes > 1 and cfg.batch_size % accelerator.num_processes:
        raise TrainingError(f"batch_size={cfg.batch_size} does not split evenly over {accelerator.num_processes} "
                            "processes; use a multiple of the process count.")
    recorder, new_run = None, False
    if cfg.save_run and accelerator.is_main_process:
        folder, new_run = _run_folder(session, cfg, resume, continuing)
        cfg = dataclasses.replace(cfg, checkpoint_dir=cfg.checkpoint_dir or str(runs_mod.checkpoints_of(folder)))
        recorder = runs_mod.RunRecorder(session, folder, cfg.to_dict(), cfg.save_minutes)


    # 2. Apply: label names, the checkpoint, optimizer and scheduler; an interrupt waits until all of it is done.
    with deferred_interrupts():
        notes.extend(objective.start(session))  # before the run folder records the session it starts from
        if recorder is not None:
            if new_run:  # data only Python can hold (raw_data tasks) is not copied
                recorder.create(*((None, None) if handler.raw_data else (train_table, eval_table)))
                notes.extend(recorder.notes)
            state.run_folder = recorder.folder
            callbacks = [recorder, *callbacks]
        state.precision = precision
        loader, eval_features, listeners, names = apply_run(session, handler, cfg, accelerator, train_features,
                                                         eval_features, saved, resume, callbacks, log)
        if cfg.low_host_memory:  # process-wide and for good: only once everything before the first step is set up
            notes.append(limit_heap_growth())
    run = _Run(session, handler, objective, cfg, accelerator, loader, eval_features, listeners, names)
    if saved is not None:  # what it resumed from is this run's newest checkpoint until it writes another
        run.last_checkpoint = str(saved["path"])
    run.messages.extend(notes)
    return run.go()


def _run_folder(session, cfg: TrainConfig, resume, continuing) -> tuple[Path, bool]:
    """The run folder this call writes to, and whether it is new."""
    state = session.training
    if continuing is not None:
        return continuing, False
    if resume is True and state.run_folder is not None:
        return Path(state.run_folder), False
    if resume and cfg.run_name and (runs_mod.runs_folder() / cfg.run_name).is_dir():
        return runs_mod.runs_folder() / cfg.run_name, False
    if cfg.run_name:
        folder = runs_mod.runs_folder() / cfg.run_name
        if folder.exists():
            raise TrainingError(f"A run named {cfg.run_name!r} exists in {runs_mod.runs_folder()}. Continue it with "
                                f"nbtune.resume({cfg.run_name!r}), or choose another run_name.")
        return folder, True
    return runs_mod.runs_folder() / runs_mod.new_run_name(session), True


class _Run:
    """One call of ``fit`` from its first step to its result."""

    def __init__(self, session, handler, objective, cfg, accelerator, loader, eval_features, listeners, names):
        self.session, self.handler, self.objective, self.cfg = session, handler, objective, cfg
        self.accelerator, self.loader, self.eval_features = accelerator, loader, eval_features
        self.listeners, self.names = listeners, names
        self.state: TrainingState = session.training
        self.position: RunPosition = self.state.position
        self.control = Control()
        self.sampler = loader.batch_sampler  # ours: set_epoch / skip act on it, also under accelerate's shard
        if accelerator.num_processes > 1:
            # One prepare call for what several processes share: the model (DDP), the optimizer, and the loader,
            # whose batches accelerate splits so each process trains on its part of every global batch.
            self.model, self.optimizer, self.loader = accelerator.prepare(session.model, self.state.optimizer, loader)
        else:
            # One process: nothing to wrap or split. Preparing the model here would patch the user's model.forward
            # with autocast for as long as the session lives; the loop enters accelerator.autocast() itself instead.
            self.model, self.optimizer = session.model, accelerator.prepare(self.state.optimizer)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.metrics: dict[str, float] = {}
        self.last_eval_step = -1
        self.last_checkpoint: str | None = None
        self._adopt_last_evaluation()
        self.messages: list[str] = []
        self.skipped_steps = 0  # consecutive fp16 steps the loss scaler skipped
        self.step_metrics: dict[str, torch.Tensor] = {}
        self.step_metric_values: dict[str, float] = {}
        self.start_step = self.state.global_step
        self.examples_done = 0
        self.tokens_done = 0
        self.views = [cb for cb in listeners if cb is not self.state.history]  # the history is written in the commit
        self.guard = StepGuard(
            {n: p for n, p in session.model.named_parameters() if p.requires_grad}, self.state.optimizer,
            self.state.scheduler, accelerator.scaler, self._committed, self._go_back)

    def emit(self, event, listeners=None) -> None:
        for listener in self.listeners if listeners is None else listeners:
            listener(event, self.control)
        self.messages.extend(m for m in self.control.messages if m not in self.messages)

    # -- one optimizer step ----------------------------------------------------------------------
    def _forward_backward(self, batches, n_examples) -> torch.Tensor:
        """The step's weighted mean loss as a device tensor: no host sync here (a sync per micro-batch stalls a GPU
        that could already queue the next kernels); ``measure_step`` reads loss and norm in one transfer."""
        total = torch.zeros((), device=self.accelerator.device)
        self.step_metrics: dict[str, torch.Tensor] = {}
        for batch in batches:
            for chunk in split_batch(batch, self.position.splits):
                chunk = to_device(chunk, self.accelerator.device)
                with autocast(self.accelerator, self.state.precision):
                    out = self.objective(self.model, chunk, self.handler)
                loss = out.loss
                weight = self.handler.batch_size_of(chunk) / n_examples
                # backward on a non-finite loss only makes non-finite gradients, which are never applied below
                self.accelerator.backward(loss if weight == 1 else loss * weight)
                total += loss.detach().float() * weight
                for key, value in out.metrics.items():  # example-weighted means
                    self.step_metrics[key] = self.step_metrics.get(key, 0.0) + value.detach().float() * weight
                del out
        return total

    def _gradients(self, batches, n_examples) -> tuple[float, float | None]:
        loss_t = self._forward_backward(batches, n_examples)
        norm_t = self.accelerator.clip_grad_norm_(self.params, self.cfg.max_grad_norm or float("inf"))
        keys = list(self.step_metrics)
        extra = [self.step_metrics[k] for k in keys]
        if norm_t is None:  # some accelerate back-ends (DeepSpeed) clip inside their own step
            loss, *values = torch.stack([loss_t, *extra]).tolist()
            norm = None
        else:  # one transfer for everything the step reports
            loss, norm, *values = torch.stack([loss_t, norm_t.detach().float().to(loss_t.device), *extra]).tolist()
        self.step_metric_values = dict(zip(keys, values))
        return loss, norm

    def measure_step(self, batches) -> tuple[float, float | None]:
        """Forward/backward over the step's batches and clip: the gradients are ready, the weights untouched."""
        n_examples = sum(self.handler.batch_size_of(b) for b in batches)
        self.step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (reported, not the next one)
        while True:
            try:
                return self._gradients(batches, n_examples)
            except Exception as exc:
                if not _is_oom(exc):
                    raise
            # Out of memory. Handled here, after the except block: while the exception lives, its traceback keeps
            # the failed step's activations alive, so memory could not be freed inside the block.
            self.optimizer.zero_grad(set_to_none=True)
            _free_memory()
            micro = math.ceil(max(self.handler.batch_size_of(b) for b in batches) / self.position.splits)
            if not self.objective.splittable:
                raise OutOfMemoryError(
                    f"Out of memory at step {self.state.global_step + 1} with batches of {micro} examples. Memory was "
                    f"freed and the weights are those of the last completed step. The {self.objective.name} objective "
                    "compares the examples of a batch with each other, so its batches are not split into micro-batches: "
                    "lower batch_size (or max_length), freeze more or use LoRA."
                )
            if not self.cfg.auto_batch or micro <= 1:
                raise OutOfMemoryError(
                    f"Out of memory at step {self.state.global_step + 1} with micro-batches of {micro} examples. "
                    "Memory was freed and the weights are those of the last completed step. Lower batch_size "
                    "and raise grad_accum (same effective batch), lower max_length, freeze more or use LoRA, "
                    "or pass auto_batch=True to halve the micro-batch automatically."
                )
            self.position.splits *= 2
            self.messages.append(
                f"out of memory at step {self.state.global_step + 1}: micro-batch halved to "
                f"{math.ceil(micro / 2)} examples, accumulating {self.position.splits}x per batch "
                "(same effective batch)"
            )

    def _fault(self, loss: float, norm: float | None) -> str | None:
        """What is non-finite about the measured step, if anything. fp16 overflows are the scaler's to handle until
        they keep coming (``MAX_SKIPPED_FP16_STEPS``)."""
        if not math.isfinite(loss):
            return "loss"
        if is_finite(norm):
            return None
        if self.accelerator.scaler is not None and self.skipped_steps + 1 < MAX_SKIPPED_FP16_STEPS:
            return None
        return "gradient norm"

    def update_and_commit(self, loss: float, norm: float | None, batches, t0: float, t_start: float) -> StepEnded:
        """Apply the update and record the step as one unit: an interrupt waits for its end, an exception inside
        restores the snapshot, so weights, optimizer, scheduler, position, RNG and history always agree."""
        pos, state = self.position, self.state
        with deferred_interrupts():
            try:
                self.guard.before_update(time.perf_counter() - t0)
                overflow = not is_finite(norm)  # fp16: the scaler skips this update and lowers its scale
                self.optimizer.step()
                if overflow:
                    self.skipped_steps += 1
                else:
                    self.skipped_steps = 0
                    state.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                processes = self.accelerator.num_processes
                n = sum(self.handler.batch_size_of(b) for b in batches) * processes  # all processes
                tokens = sum(self.handler.tokens_of(b) for b in batches) * processes
                seconds = time.perf_counter() - t0
                pos.batch_in_epoch += len(batches)
                pos.run_step += 1
                state.global_step += 1
                pos.rng = ckpt_mod.rng_state()
                event = StepEnded(state.global_step, pos.run_step, pos.total_steps, self._epoch(), loss, self.step_lr,
                                  None if overflow else norm, n / seconds, tokens / seconds,
                                  time.perf_counter() - t_start, dict(self.step_metric_values))
                state.history.on_step_ended(event, self.control)
                self.examples_done += n
                self.tokens_done += tokens
            except BaseException:
                self.optimizer.zero_grad(set_to_none=True)
                back = self.guard.restore()
                self.messages.append(f"the step was cut short by an error; the session went back to step {back}"
                                     if back is not None else "the step was cut short by an error and no snapshot "
                                     "could be restored: reload the session or resume from a checkpoint")
                raise
        return event

    def stop_on_fault(self, what: str, loss: float, norm: float | None) -> None:
        """A non-finite loss or gradient: nothing was applied. A non-finite loss means the weights themselves may be
        the cause (a too-large update just before), so the session goes back to the snapshot taken before it."""
        self.optimizer.zero_grad(set_to_none=True)
        step = self.state.global_step + 1
        if what != "loss":
            kept, how = self.state.global_step, "they gave a finite loss; only the gradient overflowed"
        elif self.state.global_step == self.start_step:
            kept, how = self.state.global_step, "no update was applied in this run"
        else:
            kept, how = self.guard.restore(), "an in-memory snapshot"
            if kept is None and self.last_checkpoint:
                kept, how = self._back_to_checkpoint(), f"the run's checkpoint {self.last_checkpoint}"
            elif kept is None:
                how = self._no_snapshot() + " and the run wrote no checkpoint (checkpoint_dir=..., save_every=N)"
        value = loss if what == "loss" else norm
        self.control.stop("non-finite loss", Outcome.NON_FINITE)
        self.messages.append(non_finite_message(what, value, step, kept, self.step_lr, how))

    def _back_to_checkpoint(self) -> int:
        """Weights, optimizer, scheduler, history and position of the run's newest checkpoint."""
        saved = ckpt_mod.load_checkpoint(Path(self.last_checkpoint))
        restore_weights(self.session.model, saved)
        load_checkpoint_state(self.state, self.position, saved)
        return self.state.global_step

    def _no_snapshot(self) -> str:
        return (f"the trainable set and its optimizer state ({self.guard.size / 2**30:.1f} GB) are too large to copy "
                "each step")

    # -- evaluation and checkpoints -----------------------------------------------------------------
    def _adopt_last_evaluation(self) -> None:
        """A run resumed where its history already holds an evaluation of this very step (a checkpoint written
        after an epoch's evaluation, or at the end of a finished run) keeps that evaluation instead of redoing it:
        the same metrics, one history row, no extra minutes."""
        rows = self.state.history.rows
        last = rows[-1] if rows else {}
        if last.get("step") == self.state.global_step and any(k.startswith("eval_") for k in last):
            self.metrics = {k[5:]: v for k, v in last.items() if k.startswith("eval_")}
            self.last_eval_step = self.state.global_step

    def _has_current_checkpoint(self) -> bool:
        """Whether the newest checkpoint this run wrote (or resumed from) is of this step, in its checkpoint folder."""
        here = ckpt_mod.checkpoint_path(self.cfg.checkpoint_dir, self.state.global_step) if self.cfg.checkpoint_dir else None
        return bool(here and self.last_checkpoint and Path(self.last_checkpoint).resolve() == here.resolve())

    def evaluate(self) -> None:
        if self.eval_features is None or self.last_eval_step == self.state.global_step:
            return
        self.metrics = evaluate_features(self.session, self.handler, self.objective, self.eval_features, self.cfg,
                                         self.accelerator)
        self.last_eval_step = self.state.global_step
        self.emit(EvalEnded(self.state.global_step, self._epoch(), self.metrics))
        early = self._early_stopping()
        if early is not None and early.best_step == self.state.global_step:  # a new best: keep its weights
            self.state.best = {"step": self.state.global_step, "metrics": dict(self.metrics),
                               "weights": {n: p.detach().to("cpu", copy=True) for n, p in self.guard.params.items()}}

    def _early_stopping(self) -> EarlyStopping | None:
        return next((cb for cb in self.listeners if isinstance(cb, EarlyStopping)), None)

    def restore_best(self) -> None:
        """At the end of a run with early stopping: the weights of the best evaluation, if later ones were worse."""
        best = self.state.best
        if best is None or self._early_stopping() is None or best["step"] == self.state.global_step:
            return
        own = dict(self.session.model.named_parameters())
        if any(n not in own or own[n].shape != t.shape for n, t in best["weights"].items()):
            return  # the trainable set changed since (another run): those weights no longer fit
        copy_tensors(own, best["weights"])
        metric = self._early_stopping().metric
        self.messages.append(
            f"restored the weights of step {best['step']}, the best evaluation ({metric} "
            f"{best['metrics'].get(metric, float('nan')):.4f}); the run went on to step {self.state.global_step}. "
            "The result's metrics are the best evaluation's.")
        self.metrics = dict(best["metrics"])

    def save(self) -> None:
        if not self.cfg.checkpoint_dir:
            return
        if not self.accelerator.is_main_process:  # one writer; the others wait for it below
            self.accelerator.wait_for_everyone()
            # what the writer names it: every process must decide alike whether a checkpoint is current
            self.last_checkpoint = str(ckpt_mod.checkpoint_path(self.cfg.checkpoint_dir, self.state.global_step))
            return
        pos = self.position
        pos.callbacks = self._callback_state()
        state = {
            "global_step": self.state.global_step,
            "position": {k: v for k, v in vars(pos).items() if k != "rng"},
            "history": self.state.history.rows,
            "trainable": self.names,
            "config": self.cfg.to_dict(),
            "fingerprint": fingerprint(self.session, self.names),
            "best": {k: v for k, v in self.state.best.items() if k != "weights"} if self.state.best else None,
        }
        path = ckpt_mod.save_checkpoint(self.cfg.checkpoint_dir, self.state.global_step, model=self.session.model,
                                        optimizer=self.state.optimizer, scheduler=self.state.scheduler, state=state,
                                        keep=self.cfg.keep_checkpoints,
                                        best=self.state.best["weights"] if self.state.best else None)
        self.last_checkpoint = str(path)
        self.accelerator.wait_for_everyone()

        self.emit(CheckpointSaved(self.state.global_step, str(path)))

    def _stop_on_signal(self) -> None:
        """SIGINT / SIGTERM to a headless run (``nbtune.core.common.interrupts.stop_signals``): every process stops
        after the same step, and a checkpoint of it is written with all of them taking part."""
        received = stop_signals.received is not None
        if self.accelerator.num_processes > 1:  # a signal may reach one process only (kill -TERM PID)
            flag = torch.tensor(float(received), device=self.accelerator.device)
            received = float(self.accelerator.reduce(flag, "max")) > 0
        if not received:
            return
        self.control.stop(f"stopped by {stop_signals.name or 'a signal to another process'}", Outcome.INTERRUPTED)
        self.messages.append(f"stopped by a signal after step {self.state.global_step}: weights and history are kept; "
                             "a checkpoint of this step is written for resuming")
        self.save()

    def _save_on_early_end(self) -> None:
        """A run cut short (Stop, interrupt, out of memory, non-finite loss, error) leaves a checkpoint of where it
        is, so a disconnect right after loses nothing. One process only: others may be gone already."""
        if not self.cfg.checkpoint_dir or self.accelerator.num_processes > 1:
            return
        if self._has_current_checkpoint():
            return
        if self.state.global_step == self.start_step:
            return
        try:
            self.save()
        except Exception as exc:  # the run's own outcome stands; say what could not be written
            self.messages.append(f"no checkpoint could be written as the run ended: {exc!r}")

    def _epoch(self) -> float:
        return self.position.epoch + self.position.batch_in_epoch / max(len(self.loader), 1)

    def _callback_state(self) -> dict[str, Any]:
        states = {type(cb).__name__: cb.state_dict() for cb in self.listeners if hasattr(cb, "state_dict")}
        return {name: state for name, state in states.items() if state}

    def _finish(self, outcome: Outcome, reason: str, error: BaseException | None, t_start: float) -> None:
        """The final event, to every listener, whatever happened. While an error is already on its way out, a listener
        that fails here is reported in the messages instead of hiding that error."""
        event = FitEnded(self.state.global_step, outcome, reason, self.metrics, time.perf_counter() - t_start, error)
        for listener in self.listeners:
            try:
                listener(event, self.control)
            except Exception as exc:
                if error is None:
                    raise
                self.messages.append(f"{type(listener).__name__} failed while the run ended: {exc!r}")

    # -- the run ---------------------------------------------------------------------------------------
    def _committed(self) -> tuple[int, dict[str, Any], int, dict[str, Any]]:
        return self.state.global_step, dict(vars(self.position)), len(self.state.history.rows), self._callback_state()

    def _go_back(self, snap) -> None:
        self.state.global_step = snap.step
        for key, value in snap.position.items():
            setattr(self.position, key, value)
        del self.state.history.rows[snap.history_rows:]
        for listener in self.listeners:
            if hasattr(listener, "load_state_dict") and type(listener).__name__ in snap.callbacks:
                listener.load_state_dict(snap.callbacks[type(listener).__name__])

    # -- the run ---------------------------------------------------------------------------------------
    def go(self) -> RunResult:
        pos, cfg = self.position, self.cfg
        start_rows = len(self.state.history.rows)
        t_start = self.t_start = time.perf_counter()
        outcome, reason, error = Outcome.COMPLETED, "completed", None
        try:
            ckpt_mod.set_rng_state(pos.rng)  # resuming: the same dropout masks as an uninterrupted run
            counts = count_params(self.model)  # the session's and the summary's count (4-bit weights unpacked)
            self.emit(FitStarted(self.state.runs, pos.total_steps, pos.steps_per_epoch, cfg.epochs, pos.run_step,
                                 len(self.loader.dataset), counts.trainable, counts.total, str(self.accelerator.device),
                                 describe_precision(self.state.precision), cfg.to_dict(), tuple(self.state.history.rows)))
            self.session.train_mode()
            self._steps()
            if self.control.should_stop:
                outcome, reason = self.control.stop_outcome, self.control.stop_reason
            if outcome is not Outcome.NON_FINITE and not self.guard.weights_finite():
                self.stop_on_fault("loss", float("nan"), None)  # the last update made the weights non-finite
                outcome, reason = Outcome.NON_FINITE, self.control.stop_reason
            if outcome not in (Outcome.NON_FINITE, Outcome.INTERRUPTED):  # a signal's stop ends without delay
                self.evaluate()
            if outcome.finished:
                self.restore_best()
            pos.finished = outcome.finished
            if pos.finished and cfg.checkpoint_dir and not self._has_current_checkpoint() and not \
                    runs_mod.keeps_own_checkpoints(self.state.run_folder, cfg.checkpoint_dir):
                self.save()  # a run folder's checkpoints are for resuming: a finished run keeps final/ instead
        except KeyboardInterrupt:
            self.optimizer.zero_grad(set_to_none=True)
            outcome, reason = Outcome.INTERRUPTED, "interrupted"
            self.messages.append(f"interrupted after step {self.state.global_step}: weights and history are kept; "
                                 "train(..., resume=True) continues this run where it stopped")
        except BaseException as exc:  # reported to every view below, then raised to the caller
            outcome = Outcome.OUT_OF_MEMORY if isinstance(exc, OutOfMemoryError) else Outcome.ERROR
            reason, error = f"{outcome.value}: {exc}", exc
            raise
        finally:
            if not outcome.finished:
                self._save_on_early_end()
            with deferred_interrupts():
                self.session.eval_mode()
                pos.callbacks = self._callback_state()
                # accelerate keeps every prepared optimizer (and model) in lists of its own: release them, or each
                # train() call would keep its optimizer state (and a replaced model) alive, and fp16 would unscale a
                # re-used optimizer twice in the next run. Our TrainingState holds what the next run needs.
                self.accelerator.free_memory()
            self._finish(outcome, reason, error, t_start)
        elapsed = time.perf_counter() - t_start
        return RunResult(
            history=History(self.state.history.rows[start_rows:]), metrics=dict(self.metrics), reason=reason,
            steps=self.state.global_step - self.start_step, global_step=self.state.global_step,
            seconds=elapsed, examples_per_s=self.examples_done / elapsed if elapsed else 0.0,
            tokens_per_s=self.tokens_done / elapsed if elapsed else 0.0,
            messages=list(self.messages), checkpoint=self.last_checkpoint, config=cfg.to_dict(), outcome=outcome,
            run_folder=str(self.state.run_folder) if self.state.run_folder else None,
        )

    def _steps(self) -> None:
        pos, cfg, sampler = self.position, self.cfg, self.sampler
        while pos.run_step < pos.total_steps and not self.control.should_stop:
            sampler.set_epoch(pos.epoch)
            sampler.skip = pos.batch_in_epoch  # resuming mid-epoch: skip batch indices, not collated batches
            batches = iter(self.loader)
            while pos.run_step < pos.total_steps and not self.control.should_stop:
                step_batches = list(islice(batches, cfg.grad_accum))
                if not step_batches:
                    break
                t0 = time.perf_counter()
                loss, norm = self.measure_step(step_batches)
                if self.accelerator.num_processes > 1:  # report the mean over processes, as one process would see it
                    loss = float(self.accelerator.reduce(torch.tensor(loss, device=self.accelerator.device), "mean"))
                fault = self._fault(loss, norm)
                if fault:
                    self.stop_on_fault(fault, loss, norm)
                    return
                event = self.update_and_commit(loss, norm, step_batches, t0, self.t_start)
                self.emit(event, self.views)
                if stop_signals.installed:
                    self._stop_on_signal()
                if self.control.should_evaluate:
                    self.control.should_evaluate = False
                    self.evaluate()
                if self.control.should_save:
                    self.control.should_save = False
                    self.save()
            if pos.batch_in_epoch >= len(self.loader):  # the epoch is over
                with deferred_interrupts():
                    pos.epoch += 1
                    pos.batch_in_epoch = 0
                if not cfg.eval_every and not self.control.should_stop:
                    self.evaluate()
