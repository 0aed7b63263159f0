"""``Session``: one model with its processor and task, and everything a notebook user does to it.

The magics and widgets call these public methods and nothing else, so a freeze clicked in a widget,
typed as ``%nbtune freeze`` or called from Python goes through the same code.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from torch import nn

from nbtune.core.adapters import AdapterInfo, LoraTargets, adapter_infos, get_method, is_peft_model, lora_targets
from nbtune.core.adapters import manager as adapter_manager
from nbtune.core.common.changes import Change, Listeners
from nbtune.core.common.errors import HeadError, MetaModelError, TrainingError
from nbtune.core.common.plugins import plugin_modules
from nbtune.core.common.seeding import DEFAULT_SEED, derived_seed, seeded
from nbtune.core.data.modality import Modality, get_modality
from nbtune.core.data.processor import describe, text_view, with_text_view
from nbtune.core.model import freeze as freeze_mod
from nbtune.core.model.architecture import unwrap
from nbtune.core.model.fit import fit_verdict
from nbtune.core.model.inspect import LayerTree
from nbtune.core.model.memory import estimate_memory
from nbtune.core.model.params import count_params
from nbtune.core.model.quantize import gradient_checkpointing_on, set_gradient_checkpointing
from nbtune.core.model.source import ModelSource
from nbtune.core.model.summary import Summary
from nbtune.core.objectives import get_objective, objective_for, resolve_objective, task_and_objective
from nbtune.core.session import persist
from nbtune.core.session.activations import measured_activations
from nbtune.core.session.diagnose import Confusion, TopLosses, confusion, top_losses
from nbtune.core.session.export import export_session
from nbtune.core.session.gguf_export import export_gguf
from nbtune.core.session.preview import preview_data
from nbtune.core.session.schedule import FineTuneResult, fine_tune
from nbtune.core.tasks import auto_class, get_task, label_settings, resolve_task
from nbtune.core.tasks.generation import before_after, generate
from nbtune.core.tasks.handlers import handler_for
from nbtune.core.tasks.heads import HeadChange
from nbtune.core.tasks.heads import reset_head as _reset_head
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.distributed import train_in_processes
from nbtune.core.training.evaluation import evaluate_features, prepare_data
from nbtune.core.training.loop import fit
from nbtune.core.training.lr_find import lr_find
from nbtune.core.training.progress import progress_views
from nbtune.core.training.runtime import eval_runtime
from nbtune.core.training.state import TrainingState


def _tracks_running_stats(module: nn.Module) -> bool:
    return bool(getattr(module, "track_running_stats", False)) and getattr(module, "running_mean", None) is not None


class Session:
    """A model being fine-tuned: its processor (``tokenizer`` is its text part), task, freeze state, adapters and
    history.

    Build one with :func:`nbtune.load`. Methods that change the model validate their input first, so an
    error leaves the session exactly as it was.
    """

    def __init__(self, model: nn.Module, processor: Any = None, task: str | None = None,
                 source: ModelSource | None = None, notes: list[str] | None = None, seed: int = DEFAULT_SEED):
        self.model = model
        # One seed for every random initialisation (heads, adapters) and, by default, for training.
        self.seed = seed
        self._initialisations = 1  # the load's head initialisation used the first derived seed
        # tokenizer, image processor, feature extractor, multimodal processor, or a transform (nn.Module sessions)
        self.processor = processor
        self.task = task
        # the objective named as the task (task="orpo"), used unless a run names another; None: the task's default
        self.objective: str | None = None
        self.source = source or ModelSource("module")
        self.notes: list[str] = list(notes or [])
        # Freeze calls in order, so they can be re-applied after an adapter is attached (peft resets
        # requires_grad when it wraps a model).
        self.freeze_log: list[tuple[str, tuple[str, ...]]] = []
        self.adapter_settings: dict[str, dict[str, Any]] = {}
        # Names of parameters a training run has updated; saved even if frozen afterwards.
        self.trained_params: set[str] = set()
        self._listeners = Listeners()
        self._training = None

    # -- identity ------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The text part of ``processor``: the processor itself when it is a tokenizer, a multimodal processor's
        tokenizer, else None. Setting it replaces the tokenizer (inside a multimodal processor, only that part)."""
        return text_view(self.processor)

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self.processor = with_text_view(self.processor, value)

    @property
    def name(self) -> str:
        loc = self.source.location
        if self.source.gguf_file:
            return self.source.gguf_file
        if loc and self.source.kind == "hub":
            return loc
        if loc:
            parts = loc.rstrip("/").split("/")
            # A folder called "model" says little; keep its parent's name too.
            return "/".join(parts[-2:]) if parts[-1] in ("model", "models", "checkpoint", "final") else parts[-1]
        return type(self.model).__name__

    @property
    def is_meta(self) -> bool:
        """True when the weights live on the meta device (``load(..., weights=False)``)."""
        return any(p.is_meta for p in self.model.parameters())

    def require_weights(self, action: str) -> None:
        """Raise a clear error if ``action`` needs real weights and the model has none."""
        if self.is_meta:
            raise MetaModelError(
                f"Cannot {action}: this model was built from its config without weights (weights=False). "
                "Load it again with nbtune.load(..., weights=True) to train or run it."
            )

    def __repr__(self) -> str:
        c = count_params(self.model)
        processor = describe(self.processor)
        return (f"<nbtune.Session {self.name} task={self.task} {type(self.model).__name__}"
                + (f" processor={processor}" if processor else "")
                + f": {c.trainable:,} of {c.total:,} params trainable>")

    # -- change notification (widgets stay in sync with code) ----------------------------------
    def add_listener(self, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` after every change (a ``Change``: FREEZE, HEAD, TRAIN, or MODEL for a new model
        object). Used by the widgets; a bound method is held weakly (a dropped widget is not kept alive)."""
        self._listeners.add(callback)

    def remove_listener(self, callback: Callable[[Change], None]) -> None:
        self._listeners.remove(callback)

    def _changed(self, change: Change) -> None:
        self._listeners.notify(change)

    # -- inspection ------------------------------------------------------------------------------
    def layers(self, filter: str | None = None, depth: int | None = None, fold: bool | None = None) -> LayerTree:
        """The module tree: names, classes, shapes, counts, trainable, dtype, device.

        Args:
            filter: substring or glob of module names; matching modules are shown with their ancestors.
            depth: deepest level to show (1 = top-level children).
            fold: fold runs of identical blocks (default: on unless filtering).
        """
        return LayerTree(self.model, filter=filter, depth=depth, fold=fold, title=type(self.model).__name__)

    def select(self, *selectors: str) -> freeze_mod.Selection:
        """Preview what selectors match (parameter names and matched modules) without changing anything."""
        return freeze_mod.select(self.model, *selectors)

    def summary(self, batch_size: int = 8, seq_len: int = 128, precision: str = "auto",
                device_memory: float | None = None, image_size: int | None = None,
                eval_batch_size: int | None = None) -> Summary:
        """Total and trainable parameters (overall and per top-level module), estimated training memory, and whether
        a step fits on the detected device (if not, the change that would make it fit).

        ``precision`` as in ``train``: ``"auto"`` estimates for what training would pick here (bf16 activations on
        an A100/H100-class GPU, fp16 on a T4, fp32 on a CPU). ``device_memory`` (GiB) judges the fit for a GPU of
        that size, e.g. ``s.summary(seq_len=512, precision="fp16", device_memory=15)`` for a Colab T4. Images:
        ``image_size`` (default: the processor's), activation memory measured for models no config describes.
        ``eval_batch_size``: the evaluation batch the run will use (default: as ``train`` picks it, ``batch_size``
        times the task's factor); the estimate and the fit cover the largest of training, evaluation and (for tasks
        whose evaluation generates, seq2seq) generation."""
        counts = count_params(self.model)
        generate_batch, chunked = None, False
        if self.task is not None:
            handler = handler_for(self)
            generate_batch, chunked = handler.eval_generation_batch(eval_batch_size), handler.chunked_logits
            eval_batch_size = handler.eval_batch(batch_size, eval_batch_size)
        size = image_size or self.modality.example_size(self, seq_len)
        positions = self.modality.positions(getattr(self.model, "config", None), size)
        memory = estimate_memory(self.model, batch_size=batch_size, seq_len=positions, precision=precision,
                                 measured=lambda: measured_activations(self, image_size),
                                 eval_batch_size=eval_batch_size, device="cuda" if device_memory else None,
                                 generate_batch=generate_batch, chunked_logits=chunked)
        capacity = int(device_memory * 2**30) if device_memory else None
        fit = fit_verdict(self.model, memory, precision=precision, capacity=capacity)
        return Summary(self.name, self.task, counts, memory, notes=list(self.notes), fit=fit,
                       processor=describe(self.processor))

    # -- freezing ------------------------------------------------------------------------------
    def freeze(self, *selectors: str) -> freeze_mod.FreezeReport:
        """Stop training the parameters the selectors cover (``"all"``, ``"embeddings"``, ``"encoder.layer.[0-3]"``...)."""
        report = freeze_mod.set_trainable(self.model, selectors, trainable=False)
        self.freeze_log.append(("freeze", tuple(selectors)))
        self._changed(Change.FREEZE)
        return report

    def unfreeze(self, *selectors: str) -> freeze_mod.FreezeReport:
        """Train the parameters the selectors cover (``"head"``, ``"qkv"``, ``"top:2"``, ``"bitfit"``...)."""
        report = freeze_mod.set_trainable(self.model, selectors, trainable=True)
        self.freeze_log.append(("unfreeze", tuple(selectors)))
        self._changed(Change.FREEZE)
        return report

    def trainable_parameters(self) -> list[str]:
        """Canonical names of the parameters that will be trained."""
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    # -- head ----------------------------------------------------------------------------------
    def reset_head(self, num_labels: int | None = None, labels: list[str] | None = None) -> HeadChange:
        """Replace the task head with a fresh one (``num_labels`` wide), or re-initialise it in place."""
        if is_peft_model(self.model):
            raise HeadError("Reset the head before attaching adapters: peft keeps its own copy of the head. "
                            "merge() or start from the base model, reset the head, then attach again.")
        with self._random_init():
            change = _reset_head(self.model, self.task, num_labels=num_labels, labels=labels)
        self._changed(Change.HEAD)
        return change

    def _random_init(self):
        """The seeded block for the session's next random initialisation (see ``nbtune.core.common.seeding``)."""
        self._initialisations += 1
        return seeded(derived_seed(self.seed, self._initialisations))

    # -- modes ---------------------------------------------------------------------------------
    def train_mode(self) -> nn.Module:
        """Put the model in training mode, keeping frozen normalisation layers in eval mode.

        A BatchNorm whose parameters are frozen must not keep updating its running statistics, or the
        "frozen" layer still drifts. The training loop uses this switch.
        """
        self.model.train()
        modules = dict(self.model.named_modules())
        for name, module in modules.items():
            if not _tracks_running_stats(module):
                continue
            params = list(module.parameters())
            if not params:  # affine=False: follow the enclosing module
                parent = modules.get(name.rpartition(".")[0], self.model)
                params = list(parent.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
        return self.model

    def eval_mode(self) -> nn.Module:
        """Put the whole model in eval mode (dropout off, normalisation statistics fixed)."""
        return self.model.eval()

    @property
    def modality(self) -> Modality:
        """What the task's inputs are (``nbtune.core.data.modality``): text for the transformers text tasks,
        tensors for a plain ``nn.Module`` without a task."""
        return get_task(self.task).inputs() if self.task is not None else get_modality("tensor")

    def plugin_modules(self, objective: str | None = None) -> list[str]:
        """Modules outside nbtune that define this session's task, modality, objective (``objective``, else the
        last run's, else the session's) or, for a transformers model registered from outside
        (``AutoModel.register``), its model class: saved folders, runs and recipes import them again."""
        task = get_task(self.task) if self.task is not None else None
        last = (self.training.position.config.get("objective") if self.training.position else None)
        named = objective or last or self.objective or (task.default_objective if task else None)
        base = unwrap(self.model)[0]
        model_class = type(base) if self.source.kind != "module" and getattr(base, "config", None) is not None else None
        if model_class is not None and model_class.__module__.split(".")[0] in ("transformers", "peft"):
            model_class = None
        return plugin_modules(model_class, task, self.modality if task else None,
                              get_objective(named) if named else None)

    # -- adapters (peft) -------------------------------------------------------------------------
    def lora_targets(self, include_head: bool = False) -> LoraTargets:
        """Modules LoRA can wrap, grouped by short name, with the parameters each adds per unit of rank."""
        return lora_targets(unwrap(self.model)[0], include_head=include_head)

    def add_adapter(self, method: str, name: str = "default", **settings: Any) -> AdapterInfo:
        """Attach a PEFT adapter of any registered method (``nbtune.core.adapters.method_names()``: lora, ia3,
        prompt, prefix, ptuning, vera, loha, lokr, ...) with its settings; the typed ``add_lora`` & co. call this.

        The settings are checked against the model first; a bad one raises and changes nothing. The task head of
        classification tasks stays trainable and is saved with the adapter.
        """
        spec = get_method(method)
        spec.check_settings(settings)
        plan = spec.plan(self.model, self.task, self.tokenizer, **settings)  # validates; the model is untouched
        was_training = self.model.training
        with self._random_init():
            model, notes = adapter_manager.attach(self.model, plan, name, self.freeze_log,
                                                  probe=self.modality.probe_batch)
        self.model = model
        if was_training:  # attaching keeps the session's mode (through its own switch: frozen BatchNorm stays in eval)
            self.train_mode()
        else:
            self.eval_mode()
        self.adapter_settings[name] = {"method": spec.name, **plan.settings}
        self.notes.extend(notes)
        self._changed(Change.MODEL)
        return next(a for a in self.adapters if a.name == name)

    def delete_adapter(self, name: str) -> list[str]:
        """Remove adapter ``name``; removing the last one leaves the plain base model (nothing merged)."""
        model, notes = adapter_manager.delete(self.model, name)
        self.model = model
        self.adapter_settings.pop(name, None)
        self.notes.extend(notes)
        self._changed(Change.MODEL)
        return notes

    def add_lora(self, r: int = 8, alpha: float | None = None, dropout: float = 0.05, targets: Any = "qkv",
                 dora: bool = False, rslora: bool = False, bias: str = "none", name: str = "default") -> AdapterInfo:
        """Attach LoRA: a trainable low-rank update beside each target Linear/Conv/Embedding.

        Args:
            r: rank. alpha: scaling numerator (default 2*r). dropout: on the LoRA input.
            targets: ``"qkv"``, ``"all-linear"``, short names (``["query", "value"]``) or freeze selectors.
            dora: weight-decomposed LoRA. rslora: rank-stabilised scaling alpha/sqrt(r).
            name: adapter name (several adapters can live on one session).
        The task head of classification tasks stays trainable and is saved with the adapter.
        """
        return self.add_adapter("lora", name, r=r, alpha=alpha, dropout=dropout, targets=targets, dora=dora,
                                rslora=rslora, bias=bias)

    def add_prompt_tuning(self, n_tokens: int = 20, init_text: str | None = None, name: str = "default") -> AdapterInfo:
        """Prepend ``n_tokens`` trainable virtual token embeddings, random or initialised from ``init_text``."""
        return self.add_adapter("prompt", name, n_tokens=n_tokens, init_text=init_text)

    def add_prefix_tuning(self, n_tokens: int = 10, projection: bool = False, hidden: int | None = None,
                          name: str = "default") -> AdapterInfo:
        """Train key/value prefixes of ``n_tokens`` positions in every attention layer."""
        return self.add_adapter("prefix", name, n_tokens=n_tokens, projection=projection, hidden=hidden)

    def add_ptuning(self, n_tokens: int = 10, encoder: str = "MLP", hidden: int | None = None,
                    name: str = "default") -> AdapterInfo:
        """P-tuning: virtual tokens produced by a small trainable prompt encoder (MLP or LSTM)."""
        return self.add_adapter("ptuning", name, n_tokens=n_tokens, encoder=encoder, hidden=hidden)

    def add_ia3(self, targets: Any = None, feedforward: Any = None, name: str = "default") -> AdapterInfo:
        """IA3: learned rescaling of attention keys/values and feed-forward activations."""
        return self.add_adapter("ia3", name, targets=targets, feedforward=feedforward)

    @property
    def adapters(self) -> list[AdapterInfo]:
        """The attached adapters (name, method, active, own parameter count, settings)."""
        return adapter_infos(self.model, self.adapter_settings)

    def set_adapter(self, name: str) -> None:
        """Make adapter ``name`` the active (and trained) one."""
        self.notes.extend(adapter_manager.set_active(self.model, name, self.freeze_log))
        self._changed(Change.MODEL)

    def disable_adapters(self) -> None:
        """Run the base model: LoRA/IA3 layers switched off in place until ``enable_adapters()``."""
        adapter_manager.set_enabled(self.model, False)
        self._changed(Change.MODEL)

    def enable_adapters(self) -> None:
        """Switch LoRA/IA3 layers back on."""
        adapter_manager.set_enabled(self.model, True)
        self._changed(Change.MODEL)

    @contextlib.contextmanager
    def adapters_disabled(self):
        """``with s.adapters_disabled(): ...`` runs the base model inside the block, for any method."""
        with adapter_manager.disabled(self.model):
            yield self

    def merge(self) -> list[str]:
        """Fold the active LoRA/IA3 adapter into the base weights; the session then holds a plain model."""
        self.require_weights("merge")
        merged, notes = adapter_manager.merge(self.model)
        self.model = merged
        self.adapter_settings = {}
        self.notes.extend(notes)
        self._changed(Change.MODEL)
        return notes

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether blocks recompute their activations in backward (set it: ``s.gradient_checkpointing = True``).
        Non-reentrant, so it works with frozen embeddings and with adapters; saves most activation memory for
        about a third more compute per step."""
        return gradient_checkpointing_on(self.model)

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, on: bool) -> None:
        self.require_weights("switch gradient checkpointing")
        set_gradient_checkpointing(self.model, bool(on))
        self._changed(Change.MODEL)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, folder: str, overwrite: bool = False, light: bool = False) -> persist.SaveReport:
        """Save adapters (or the model), the trained head, the processor and nbtune's metadata to ``folder``.

        ``nbtune.load(folder)`` gives back the same model: the same logits, the same trainable set. A previous
        nbtune save in ``folder`` is replaced only once the new one is complete; a folder holding anything else is
        refused unless ``overwrite=True``. ``light=True`` (a transformers model without adapters) keeps only what
        differs from the base model, which reloads from its source: what run folders keep.
        """
        return persist.save_session(self, folder, overwrite=overwrite, light=light)

    # -- training ----------------------------------------------------------------------------------
    @property
    def training(self):
        """Optimizer, schedule, run position and history kept between ``train`` calls."""
        if self._training is None:
            self._training = TrainingState()
        return self._training

    @property
    def history(self):
        """Every step and evaluation of every run of this session (``.to_pandas()`` for a table)."""
        return self.training.history

    def train(self, data: Any, eval: Any = None, *, task: str | None = None, callbacks: Any = (), resume: Any = None,
              progress: str = "auto", log: bool = True, processes: int | None = None, **settings: Any):
        """Fine-tune on ``data`` and return a RunResult (history, metrics, outcome).

        Args:
            data: a DataFrame, CSV/TSV/JSON/JSONL path, datasets.Dataset/DatasetDict, list of dicts or of strings.
            eval: evaluation data in the same forms (a DatasetDict's validation split is used by default).
            task: train for another task first (``switch_task``): e.g. ``task="masked-lm"`` on in-domain text, then
                the real task; the pretrained body carries over.
            callbacks: extra listeners ``f(event, control)`` (the notebook dashboard is one).
            resume: ``True`` continues an interrupted run of this session; a folder continues from its newest
                complete checkpoint (after a kernel restart: set the session up the same way first).
            progress: ``"auto"`` shows the live dashboard (loss curve, Stop button) in a notebook kernel and text
                lines elsewhere; ``"notebook"``, ``"text"`` or ``"none"`` choose.
            log: ``False`` silences all progress output (the same as ``progress="none"``).
            processes: train on this many processes (GPUs, or CPU cores) through accelerate's notebook_launcher;
                the global batch stays ``batch_size``. Must come before any single-process training in the kernel.
            **settings: any TrainConfig field: epochs, lr, batch_size, grad_accum, warmup, schedule, head_lr,
                layer_decay, max_length, seed, precision, eval_every, early_stopping, checkpoint_dir, save_every,
                auto_batch, columns={'text': ..., 'label': ...}...
        Calling train again continues from the current weights, keeping the optimizer state unless the
        trainable set changed.
        """
        settings.setdefault("seed", self.seed)

        if processes is not None and processes != 1:
            # the other processes are copies of this one: what they cannot share is refused, not silently dropped
            if list(callbacks) or resume is not None or progress not in ("auto", "text"):
                raise TrainingError(
                    "train(processes=N) cannot take callbacks, resume or a live view: the N processes are copies "
                    "that print text. Export a recipe and use `nbtune launch --resume`, or train in this process."
                )
            if task is not None:
                self._take_task(task)  # in this process, before the copies are made
            result = train_in_processes(self, data, eval, processes, settings, log=log)
            self._changed(Change.TRAIN)
            return result
        cfg = TrainConfig.from_kwargs(**settings)
        name, objective = task_and_objective(task) if task is not None else (self.task, None)
        if name is not None:  # the objective and its settings are checked before the task changes
            resolve_objective(get_task(name), cfg, objective or (self.objective if name == self.task else None))
        if task is not None:
            self._take_task(task)

        views, console = progress_views(progress if log else "none", f"training {self.name}")
        result = fit(self, data, eval, cfg, callbacks=[*views, *callbacks], resume=resume, log=console)
        self._changed(Change.TRAIN)
        return result

    def _take_task(self, task: str) -> None:
        """``train(task=...)``: switch to that task, or (the same task) to the objective the name gives."""
        name, objective = task_and_objective(task)
        if name != self.task:
            self.switch_task(task)
        elif objective is not None:
            self.objective = objective

    def fine_tune(self, data: Any, eval: Any = None, *, epochs: int = 1, freeze_epochs: int = 1,
                  lr: float | str = 2e-3, lr_mult: float = 100, **settings: Any) -> FineTuneResult:
        """fastai's schedule: the head alone for ``freeze_epochs`` at ``lr`` with the body frozen, then everything
        for ``epochs``, the head at ``lr / 2`` and the body at ``lr / 2 / lr_mult``. ``lr="find"`` runs
        ``lr_find`` before each phase. Other settings are ``train``'s. Returns both phases' runs."""
        return fine_tune(self, data, eval, epochs=epochs, freeze_epochs=freeze_epochs, lr=lr, lr_mult=lr_mult,
                         **settings)

    def confusion(self, data: Any, batch_size: int = 64, columns: dict[str, str] | None = None) -> Confusion:
        """The confusion matrix on labelled ``data`` (a heat map in a notebook) and its most confused pairs."""
        return confusion(self, data, batch_size=batch_size, columns=columns)

    def top_losses(self, data: Any, k: int = 9, batch_size: int = 64,
                   columns: dict[str, str] | None = None) -> TopLosses:
        """The ``k`` examples of labelled ``data`` the model is most wrong about (highest loss first), with true
        and predicted labels and probabilities; a gallery of thumbnails for images."""
        return top_losses(self, data, k=k, batch_size=batch_size, columns=columns)

    def lr_find(self, data: Any, **settings: Any):
        """Learning-rate range test for the current trainable set: a short run with an exponentially growing rate,
        the loss curve and a suggested rate (a heuristic). Weights, optimizer, history and random state are left
        exactly as they were. Settings: start_lr, end_lr, steps, batch_size, max_length, columns, seed."""
        return lr_find(self, data, **settings)

    def evaluate(self, data: Any, batch_size: int | None = None, max_length: int | None = 256,
                 columns: dict[str, str] | None = None) -> dict[str, float]:
        """Loss and the task's metrics on ``data`` (accuracy/F1, MSE/Pearson/Spearman, perplexity), also before training.

        Batches are length-sorted; ``batch_size`` defaults to 64 (32 for language-model tasks, whose logits span the
        vocabulary)."""
        self.require_weights("evaluate")
        cfg = TrainConfig(eval_batch_size=batch_size, max_length=max_length, columns=dict(columns or {}))
        handler = handler_for(self)
        objective = objective_for(self, handler, cfg)
        features = prepare_data(self, handler, data, cfg, None, "evaluation")
        return evaluate_features(self, handler, objective, features, cfg, eval_runtime(self))

    def predict(self, inputs: Any, batch_size: int = 64, max_length: int | None = 256) -> list[dict[str, Any]]:
        """The task's predictions, one dict per input: label and scores for classification (texts or
        (text, text_pair) tuples), a tag per word for token classification (a sentence or a list of words),
        generated text for language-model tasks."""
        self.require_weights("predict")
        handler = handler_for(self)
        items = [inputs] if handler.inputs().is_single(inputs) else list(inputs)
        if not items:
            return []
        self.eval_mode()
        return handler.predict(self, items, batch_size=batch_size, max_length=max_length)

    def export(self, path: str, data: dict[str, Any] | None = None, train: dict[str, Any] | None = None):
        """Write this session as a recipe file (model, task, freezing, adapter, training settings); in-memory data
        in ``data`` ({'train': df, 'eval': df}) is written beside it. Run it with ``nbtune run path``."""
        return export_session(self, path, data=data, train=train)

    def export_gguf(self, path: str, out_type: str = "f16"):
        """Write the (merged) model as a GGUF file with the source GGUF's metadata and tokenizer: f32, f16 or q8_0.
        Only for sessions loaded from a GGUF file; others: ``s.save(folder)`` and llama.cpp's converter."""
        self.require_weights("export to GGUF")
        return export_gguf(self, path, out_type=out_type)

    def preview(self, data: Any, n: int = 3, **settings: Any):
        """What training will see: the first ``n`` examples rendered by the chat template with the trained tokens
        highlighted and the masked ones dimmed, token-length statistics and how many examples ``max_length`` cuts.
        For images, a grid of the first ``n`` training images as evaluation sees them and in the augmented views
        of the first epochs, with their labels. ``settings`` as in ``train`` (``max_length``, ``loss_on``,
        ``chat_template``, ``columns``, ``augment``, ``seed``)."""
        return preview_data(self, data, n=n, **settings)

    def generate(self, prompts: Any, max_new_tokens: int = 64, chat: bool | None = None, **kwargs: Any) -> list[str]:
        """Generated text for each prompt (causal-lm and seq2seq), using the chat template when there is one."""
        return generate(self, prompts, max_new_tokens=max_new_tokens, chat=chat, **kwargs)

    def before_after(self, prompts: Any, max_new_tokens: int = 64, chat: bool | None = None, **kwargs: Any):
        """The base model's answers (adapters disabled) beside the tuned model's for the same prompts: a table that
        stays readable in a saved notebook (``.to_pandas()`` for the data)."""
        return before_after(self, prompts, max_new_tokens=max_new_tokens, chat=chat, **kwargs)

    def switch_task(self, task: str, num_labels: int | None = None, labels: list[str] | None = None) -> list[str]:
        """Give the model another task's head, keeping the pretrained body (multi-stage recipes).

        E.g. after ``train(domain_text, task="masked-lm")``, ``switch_task("text-classification", labels=[...])``
        builds the classifier on the adapted encoder. Returns notes on what is new.
        """
        import copy

        self.require_weights("switch task")
        task, objective = task_and_objective(task)  # task="orpo": the preference task, trained with ORPO
        target = get_task(task)
        if self.task and target.auto_class and target.auto_class == get_task(self.task).auto_class \
                and num_labels is None and labels is None:
            # the same kind of model (causal-lm -> dpo): the weights, adapters and trainable set stay as they are
            notes = [f"task is now {target.name}: the same model, trained with another objective"]
            self.task, self.objective = target.name, objective
            self.notes.extend(notes)
            self._changed(Change.MODEL)
            return notes
        if is_peft_model(self.model):
            raise HeadError("Merge the adapter (s.merge()) or save it before switching task: the new head would not "
                            "be part of the adapter.")
        config = getattr(self.model, "config", None)
        if config is None:
            raise HeadError("switch_task works on transformers models; for a plain nn.Module replace the head yourself.")
        spec = resolve_task(task, config, self.name, self.source.kind)
        new_config = copy.deepcopy(config)
        for key, value in label_settings(spec, num_labels, labels).items():
            setattr(new_config, key, value)
        first = next(self.model.parameters())
        new = auto_class(spec).from_config(new_config).to(device=first.device, dtype=first.dtype)
        missing, _ = new.base_model.load_state_dict(self.model.base_model.state_dict(), strict=False)
        notes = [f"switched to {spec.name}: the body's weights carried over; the head is new"]
        if missing:
            notes.append(f"also new (not in the previous model): {', '.join(sorted(missing)[:4])}")
        self.model, self.task, self.objective = new, spec.name, objective
        self.freeze_log, self.trained_params = [], set()
        history = self.training.history

        self._training = TrainingState(history=history, global_step=self.training.global_step)
        self.notes.extend(notes)
        self._changed(Change.MODEL)  # a new model object: widgets rebuild their tree
        return notes
