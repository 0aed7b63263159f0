"""``%nbtune`` and ``%%finetune``: parse, call the public API, display. No logic of their own."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Float, Int

from nbtune.core.common.errors import NbtuneError
from nbtune.core.training.config import TrainConfig
from nbtune.magics.parse import MagicUsageError, check_keys, resolve_ref, settings, split

if TYPE_CHECKING:
    from nbtune.core.session.session import Session

# The model side (torch, transformers, peft) is imported by the first command that needs it, so %load_ext is quick.

COMMANDS = ("load", "session", "sessions", "use", "layers", "freeze", "unfreeze", "head", "targets", "adapters",
            "summary", "train", "eval", "save", "export", "runs", "resume", "lr_find", "help")


def subcommands() -> tuple[str, ...]:
    """Every ``%nbtune`` subcommand: the fixed ones and one per registered adapter method (lora, vera, ...)."""
    from nbtune.core.adapters import method_names

    return COMMANDS + tuple(method_names())


def load_options() -> list[str]:
    """load()'s own keywords (read from its signature, so a new one is usable at once), plus the session's name."""
    from nbtune.core.session.loading import load

    return [p.name for p in inspect.signature(load).parameters.values()
            if p.name != "source" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)] + ["name"]


@magics_class
class NbtuneMagics(Magics):
    """The ``%nbtune`` line magic and the ``%%finetune`` cell magic (see ``%nbtune?`` and ``%%finetune?``)."""

    batch_size = Int(16, help="Default batch size for %nbtune train and %%finetune.").tag(config=True)
    lr = Float(None, allow_none=True, help="Default learning rate for %nbtune train and %%finetune (None: what trains "
               "for the trainable set: 5e-5 fine-tuning, 3e-3 head only, each adapter method its own).").tag(config=True)
    epochs = Float(1.0, help="Default number of epochs.").tag(config=True)
    summary_seq_len = Int(128, help="Sequence length assumed by %nbtune summary's memory estimate.").tag(config=True)
    widgets = Bool(True, help="Show live widgets (False: text progress only).").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self.sessions: dict[str, Session] = {}
        self.current: str | None = None

    # -- sessions -----------------------------------------------------------------------------------------
    def session(self, name: str | None = None) -> Session:
        name = name or self.current
        if name is None:
            raise MagicUsageError("No session yet: start with %nbtune load MODEL (a folder, hub id or .gguf file).")
        if name not in self.sessions:
            raise MagicUsageError(f"No session named {name!r}; sessions: {list(self.sessions) or 'none'}.")
        return self.sessions[name]

    def register(self, session: Session, name: str | None = None) -> str:
        name = name or f"s{len(self.sessions) + 1}"
        self.sessions[name] = session
        self.current = name
        return name

    def _train_defaults(self) -> dict[str, Any]:
        defaults = {"batch_size": self.batch_size, "epochs": self.epochs}
        return defaults if self.lr is None else {**defaults, "lr": self.lr}

    @property
    def _progress(self) -> str:
        """The live dashboard, or text lines with ``%config NbtuneMagics.widgets = False``."""
        return "notebook" if self.widgets else "text"

    # -- %nbtune ---------------------------------------------------------------------------------------
    @no_var_expand  # `$train_df` names a notebook variable; IPython would otherwise paste its text in
    @line_magic
    def nbtune(self, line: str) -> Any:
        """%nbtune: load a model, inspect, freeze, attach adapters, train, evaluate, save.

        Usage (one subcommand per line; ``-s NAME`` before it picks a session other than the current one)::

            %nbtune load ./minilm --task text-classification --num-labels 2   # becomes the current session
            %nbtune layers [FILTER] [--depth N] [--widget]     # tree (a checkbox widget with --widget)
            %nbtune freeze SELECTOR ...  /  %nbtune unfreeze SELECTOR ...
            %nbtune head num_labels=10 | labels=[neg,pos]       # fresh task head
            %nbtune targets                                     # LoRA targets and their cost per rank
            %nbtune lora r=8 alpha=16 targets=qkv   (any adapter method: prompt n_tokens=20, prefix, ptuning,
                                                     ia3, vera r=256, loha, lokr; see %nbtune help)
            %nbtune adapters                                    # the adapter panel widget
            %nbtune summary [batch_size=32 seq_len=128 image_size=224]
            %nbtune train $train_df eval=$dev_df epochs=1 lr=5e-5   # live dashboard with a Stop button
            %nbtune eval $dev_df
            %nbtune save out/
            %nbtune runs                                        # every run folder: method, steps, best metric, size
            %nbtune resume RUN                                  # after a restart: rebuild the session, continue
            %nbtune lr_find $train_df                           # learning-rate range test (a heuristic)
            %nbtune export recipe.yaml train=$train_df          # a recipe file for `nbtune run` / several GPUs
            %nbtune train $train_df processes=2                 # several processes via accelerate's notebook_launcher
            s = %nbtune session                                 # the Session object, for the Python API
            %nbtune sessions  /  %nbtune use NAME  /  %nbtune help

        Selectors: names, globs, re:regex, ranges (encoder.layer.[0-3]), type:Class, presets (all, head, qkv,
        top:N, bitfit, embeddings, adapters). Defaults can be set with %config NbtuneMagics.batch_size = 32, etc.
        """
        try:
            return self._dispatch(line)
        except NbtuneError as exc:  # a user error: one clear line, no traceback wall
            raise UsageError(str(exc)) from None

    def _dispatch(self, line: str) -> Any:
        words = split(line)
        target = None
        if len(words) >= 2 and words[0] == "-s":
            target, words = words[1], words[2:]
        if not words:
            print(inspect.cleandoc(NbtuneMagics.nbtune.__doc__ or ""))
            return None
        command, rest = words[0], words[1:]
        known = subcommands()
        if command not in known:
            from nbtune.core.common.errors import close_matches

            hint = close_matches(command, known, n=1)
            raise MagicUsageError(f"Unknown subcommand {command!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                  + f". Subcommands: {', '.join(known)}.")
        if command in COMMANDS:
            return getattr(self, f"_cmd_{command}")(target, rest)
        return self._adapter(command, target, rest)

    def _settings(self, words: list[str]) -> tuple[list[str], dict[str, Any]]:
        """Positional words and key=value settings, with ``$name`` values taken from the notebook."""
        positional, opts = settings(words)
        return positional, {k: resolve_ref(v, self.shell.user_ns) for k, v in opts.items()}

    def _cmd_help(self, target, rest):
        print(inspect.cleandoc(NbtuneMagics.nbtune.__doc__ or ""))

    def _cmd_load(self, target, rest):
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune load takes one model: a folder, a hub id, a .gguf file or $variable.")
        check_keys(opts, load_options(), "load")
        name = opts.pop("name", target)
        if isinstance(opts.get("labels"), str):
            opts["labels"] = [x.strip() for x in opts["labels"].split(",")]
        from nbtune.core.session.loading import load

        session = load(resolve_ref(positional[0], self.shell.user_ns), **opts)
        name = self.register(session, name)
        print(f"session {name!r}: {session.name} ({session.task}), now current")
        for note in session.notes:
            print(f"note: {note}")
        return None

    def _cmd_session(self, target, rest):
        """The Session object itself: ``s = %nbtune session``."""
        return self.session(target)

    def _cmd_sessions(self, target, rest):
        for name, s in self.sessions.items():
            print(("* " if name == self.current else "  ") + f"{name}: {s!r}")

    def _cmd_runs(self, target, rest):
        if rest:
            raise MagicUsageError("%nbtune runs (no arguments; nbtune.runs(folder) reads another folder)")
        from nbtune.core.workflows.compare import runs

        return runs()

    def _cmd_resume(self, target, rest):
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune resume RUN [setting=value ...]: RUN is a name from %nbtune runs or a folder.")
        from nbtune.core.workflows.resume import resume

        result = resume(positional[0], progress=self._progress, **opts)
        name = self.register(result.session, target)
        print(f"session {name!r}: run {positional[0]!r} rebuilt and continued, now current")
        return result

    def _cmd_lr_find(self, target, rest):
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune lr_find DATA [steps=100 batch_size=16 ...]: DATA is $variable or a path.")
        return self.session(target).lr_find(resolve_ref(positional[0], self.shell.user_ns), **opts)

    def _cmd_use(self, target, rest):
        if len(rest) != 1:
            raise MagicUsageError("%nbtune use NAME")
        self.session(rest[0])
        self.current = rest[0]

    def _cmd_layers(self, target, rest):
        positional, opts = self._settings(rest)
        check_keys(opts, ["depth", "widget", "fold", "no_fold"], "layers")
        s = self.session(target)
        if opts.get("widget"):
            from nbtune.ui.layer_widget import LayerFreezer

            return LayerFreezer(s)
        fold = False if opts.get("no_fold") else opts.get("fold")
        return s.layers(positional[0] if positional else None, depth=opts.get("depth"), fold=fold)

    def _cmd_freeze(self, target, rest):
        if not rest:
            raise MagicUsageError("%nbtune freeze SELECTOR ... (e.g. all, embeddings, encoder.layer.[0-3])")
        return self.session(target).freeze(*rest)

    def _cmd_unfreeze(self, target, rest):
        if not rest:
            raise MagicUsageError("%nbtune unfreeze SELECTOR ... (e.g. head, qkv, top:2, bitfit)")
        return self.session(target).unfreeze(*rest)

    def _cmd_head(self, target, rest):
        _, opts = self._settings(rest)
        check_keys(opts, ["num_labels", "labels"], "head")
        if isinstance(opts.get("labels"), str):
            opts["labels"] = [x.strip() for x in opts["labels"].split(",")]
        return self.session(target).reset_head(**opts)

    def _cmd_targets(self, target, rest):
        return self.session(target).lora_targets()

    def _adapter(self, method: str, target, rest):
        """``%nbtune METHOD key=value ...``: Session.add_adapter with the method's registered settings."""
        from nbtune.core.adapters import get_method

        s = self.session(target)
        _, opts = self._settings(rest)
        check_keys(opts, list(get_method(method).accepted_keys), method)
        info = s.add_adapter(method, **opts)
        print(f"attached {info.name}: {info.method}, {info.params:,} parameters")
        return s.summary(seq_len=self.summary_seq_len)

    def _cmd_adapters(self, target, rest):
        from nbtune.ui.adapter_panel import AdapterPanel

        return AdapterPanel(self.session(target))

    def _cmd_summary(self, target, rest):
        _, opts = self._settings(rest)
        check_keys(opts, ["batch_size", "seq_len", "image_size"], "summary")
        opts.setdefault("seq_len", self.summary_seq_len)
        return self.session(target).summary(**opts)

    def _cmd_train(self, target, rest):
        s = self.session(target)
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune train DATA [eval=DATA] [setting=value ...]: DATA is $variable or a path.")
        ns = self.shell.user_ns
        data = resolve_ref(positional[0], ns)
        eval_data = opts.pop("eval", None)
        resume = opts.pop("resume", None)
        processes = opts.pop("processes", None)
        TrainConfig.from_kwargs(**opts)  # unknown settings: a clear error before anything starts
        kwargs = {**self._train_defaults(), **opts}
        if processes and processes != 1:  # several processes cannot draw into this cell's widgets
            return s.train(data, eval=eval_data, processes=processes, log=True, **kwargs)
        return s.train(data, eval=eval_data, resume=resume, progress=self._progress, **kwargs)

    def _cmd_eval(self, target, rest):
        positional, opts = self._settings(rest)
        check_keys(opts, ["batch_size", "max_length", "columns"], "eval")
        if len(positional) != 1:
            raise MagicUsageError("%nbtune eval DATA: DATA is $variable or a path.")
        from nbtune.render.training import metrics_text

        metrics = self.session(target).evaluate(resolve_ref(positional[0], self.shell.user_ns), **opts)
        print(metrics_text(metrics))
        return metrics

    def _cmd_export(self, target, rest):
        """``%nbtune export recipe.yaml [train=$df] [eval=$df]``: the session as a recipe file, data beside it."""
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune export FILE.yaml [train=$train_df] [eval=$dev_df] [text=column ...]")
        path = self.session(target).export(resolve_ref(positional[0], self.shell.user_ns), data=opts or None)
        print(f"recipe written to {path}; run it with: nbtune run {path}")
        return None

    def _cmd_save(self, target, rest):
        positional, opts = self._settings(rest)
        if len(positional) != 1:
            raise MagicUsageError("%nbtune save FOLDER [overwrite=true]")
        check_keys(opts, ["overwrite"], "save")
        return self.session(target).save(positional[0], **opts)

    # -- %%finetune -------------------------------------------------------------------------------------
    @magic_arguments()
    @argument("-o", "--output", default=None, help="store the result (session, run, metrics) in this variable")
    @argument("--dry-run", action="store_true", help="load, freeze and attach, show the summary, do not train")
    @argument("-s", "--session", default=None, help="name of the new session for %%nbtune (default s1, s2...)")
    @cell_magic
    def finetune(self, line: str, cell: str) -> Any:
        """%%finetune [-o NAME] [--dry-run] [-s SESSION]: run a whole recipe written in YAML.

        Keys: model, task, num_labels, labels, gguf_file, data {train, eval, text, text_pair, label, prompt,
        response}, head {num_labels | labels}, freeze [...], unfreeze [...], one adapter (lora | prompt | prefix |
        ptuning | ia3) with its settings, train {epochs, lr, batch_size, ...}, evaluate (true/false), save: FOLDER.
        ``$name`` values come from the notebook. ``-o NAME`` stores the result (session, run, metrics before and
        after) in NAME; ``--dry-run`` loads, freezes and attaches, shows the summary and does not train. The
        session becomes the current one for %nbtune (named by -s, or s1, s2...).
        """
        try:
            return self._finetune(line, cell)
        except NbtuneError as exc:
            raise UsageError(str(exc)) from None

    def _finetune(self, line: str, cell: str) -> Any:
        args = parse_argstring(self.finetune, line)
        recipe = _with_defaults(cell, self._train_defaults())
        from nbtune.core.workflows.finetune import RecipeResult, run_recipe  # loads torch: not at %load_ext

        result = run_recipe(recipe, self.shell.user_ns, dry_run=args.dry_run, progress=self._progress)
        if not isinstance(result, RecipeResult):  # a race: its comparison, no single session to make current
            if args.output:
                self.shell.user_ns[args.output] = result
            return result
        # Registered only once the recipe has run: a recipe that fails leaves the sessions as they were.
        name = self.register(result.session, args.session)
        what = "built (dry run, not trained)" if args.dry_run else "trained"
        print(f"session {name!r}: {result.session.name} ({result.session.task}) {what}, now current for %nbtune")
        if args.output:
            self.shell.user_ns[args.output] = result
        if args.dry_run:
            display(result.summary())  # for the recipe's batch and length
            return None
        return result


def _with_defaults(cell: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The recipe with %config defaults filled in under its own train settings."""
    from nbtune.core.recipes.spec import load_yaml

    data = load_yaml(cell) or {}
    if isinstance(data, dict) and isinstance(data.get("train", {}), dict):
        data["train"] = {**defaults, **(data.get("train") or {})}
    return data
