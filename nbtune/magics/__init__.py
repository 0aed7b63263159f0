"""IPython magics: ``%nbtune`` and ``%%finetune`` (registered by ``%load_ext nbtune``)."""

from __future__ import annotations


def _complete(magics):
    """Tab completion: subcommands first, then presets and the current model's module names."""
    from nbtune.magics.magic import subcommands

    presets = ["all", "head", "qkv", "top:1", "top:2", "bitfit", "embeddings", "adapters"]

    def complete(shell, event):
        words = event.line.split()
        if len(words) <= 1 or (len(words) == 2 and not event.line.endswith(" ")):
            return list(subcommands())
        if words[1] in ("freeze", "unfreeze", "layers") and magics.current:
            names = [n for n, _ in magics.sessions[magics.current].model.named_modules() if n and n.count(".") < 4]
            return presets + names
        from nbtune.core.adapters import get_method, method_names

        if words[1] in method_names():  # each method's own settings, from the registry
            spec = get_method(words[1])
            targets = [f.name for f in spec.fields if f.kind == "targets"]
            out = [f"{key}=" for key in spec.accepted_keys if key not in targets]
            return out + (["targets=qkv", "targets=all-linear"] if targets else [])
        if words[1] == "train":  # every training setting, from TrainConfig itself and the objectives' registry
            from dataclasses import fields

            from nbtune.core.objectives import objective_names, objective_settings_names
            from nbtune.core.training.config import TrainConfig

            own = [f"{f.name}=" for f in fields(TrainConfig) if f.name not in ("columns", "objective_settings")]
            objectives = sorted({f"{n}=" for names in objective_settings_names().values() for n in names})
            return ["eval=", "resume="] + own + objectives + [f"objective={name}" for name in objective_names()]
        return []

    return complete


def load_ipython_extension(ipython) -> None:
    """Register %nbtune and %%finetune in this IPython session."""
    from nbtune.magics.magic import NbtuneMagics

    magics = NbtuneMagics(ipython)
    ipython.register_magics(magics)
    ipython.set_hook("complete_command", _complete(magics), str_key="%nbtune")
