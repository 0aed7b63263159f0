"""Recipes: the whole fine-tuning job as one YAML document (the body of ``%%finetune``).

Text in, ``Recipe`` out (``parse_recipe``), then ``recipes.build.build_session`` loads, re-heads, freezes and
attaches adapters in that order, and ``workflows.finetune.run_recipe`` trains and evaluates. The magic, the Python
call ``nbtune.finetune`` and the command line all go through these functions.

    model: ./minilm
    task: text-classification
    data: {train: $train_df, eval: $dev_df, text: sentence, label: label}
    freeze: [all]
    unfreeze: [head]
    lora: {r: 8, alpha: 16, targets: qkv}
    train: {epochs: 1, lr: 5e-4, batch_size: 32}

``$name`` values are looked up in the notebook's namespace (DataFrames, datasets, paths, modules).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from nbtune.core.common.errors import RecipeError, close_matches
from nbtune.core.common.plugins import import_plugins
from nbtune.core.session.export import Recipe


def load_keys() -> tuple[str, ...]:
    """Recipe keys passed to ``nbtune.load``: its keyword arguments, read from its signature (``model`` and
    ``task`` have keys of their own; an ``adapter`` folder is not a recipe's business)."""
    import inspect

    from nbtune.core.session.loading import load

    return tuple(p.name for p in inspect.signature(load).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("source", "task", "adapter"))


BASE_KEYS = ("plugins", "model", "task", "data", "head", "freeze", "unfreeze", "steps", "train", "evaluate", "eval", "save",
             "race")


def adapter_keys() -> list[str]:
    """Recipe keys that attach an adapter: one per registered method (``lora: {r: 8}``, ``vera: {r: 256}``...)."""
    from nbtune.core.adapters import method_names

    return method_names()


def valid_keys() -> tuple[str, ...]:
    return (*BASE_KEYS, *load_keys(), *adapter_keys())


def _unknown(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    valid = list(valid)
    bad = [k for k in keys if k not in valid]
    if bad:
        hints = {k: close_matches(str(k), valid, n=1) for k in bad}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise RecipeError(f"Unknown key {said} in {where}. Valid keys: {', '.join(valid)}.")


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise RecipeError(f"{key} takes a selector or a list of selectors, e.g. {key}: [all]; got {value!r}.")


def _method_params(method: str) -> list[str]:
    from nbtune.core.adapters import get_method

    return list(get_method(method).accepted_keys)


def _loader():
    """A safe YAML loader that reads 5e-5 as a number (plain YAML 1.1 reads it as a string)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$|^[-+]?\d+\.\d*$|^[-+]?\.\d+$"),
        list("-+0123456789."),
    )
    return Loader


def load_yaml(text: str) -> Any:
    """Recipe text as YAML data (numbers such as 5e-5 read as numbers); invalid YAML is a RecipeError."""
    import yaml

    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        raise RecipeError(yaml_error_message(text, exc)) from None


def yaml_error_message(text: str, exc: Exception) -> str:
    """The recipe line YAML stumbled on, what it expected, and the usual cause (an unquoted ``#``, a tab)."""
    lines = text.splitlines()
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    marks = [m for m in (getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)) if m is not None]
    # a construct left open (a '{' whose '}' is missing) is reported at the end of the text: point at its start
    inside = [m for m in marks if m.line < len(lines) and lines[m.line].strip()]
    mark = inside[0] if inside else None
    where = f" at line {mark.line + 1}: {lines[mark.line].strip()!r}" if mark is not None else ""
    context = getattr(exc, "context", None)
    said = f"{context}, {problem}" if context else problem
    hints = []
    suspects = [line for line in (lines[m.line] for m in inside) if " #" in line or line.lstrip().startswith("#")]
    if suspects or (mark is None and any(" #" in line for line in lines)):
        hints.append("'#' starts a comment in YAML, so the rest of that line was ignored; put the value in quotes "
                     "('a#b') if the '#' belongs to it")
    if any("\t" in line[: len(line) - len(line.lstrip())] for line in lines):
        hints.append("indent with spaces, not tabs")
    hint = (" Likely cause: " + "; ".join(hints) + ".") if hints else ""
    return f"The recipe is not valid YAML{where} ({said}).{hint}"


def parse_recipe(source: str | dict[str, Any]) -> Recipe:
    """Parse YAML text (or an already-loaded dict) into a Recipe, checking every key."""
    data = load_yaml(source) if isinstance(source, str) else dict(source)
    if not isinstance(data, dict):
        raise RecipeError("A recipe is a YAML mapping such as 'model: ./minilm' on its own line, one key per line.")
    plugins = _as_list(data.get("plugins"), "plugins")
    import_plugins(plugins, RecipeError, "This recipe")  # first: they register the tasks and settings read below
    _unknown(data, valid_keys(), "the recipe")
    if "model" not in data:
        raise RecipeError("The recipe needs a model: a folder, a hub id, a .gguf file or $variable.")
    adapters = [k for k in adapter_keys() if k in data]
    if len(adapters) > 1:
        raise RecipeError(f"One adapter per recipe; this one has {adapters}. Keep one (or use the Python API for more).")
    adapter = None
    if adapters:
        name = adapters[0]
        settings = data[name] or {}
        if not isinstance(settings, dict):
            raise RecipeError(f"{name} takes a mapping of settings, e.g. {name}: {{r: 8}}; got {settings!r}.")
        _unknown(settings, _method_params(name), f"{name}")
        adapter = (name, settings)
    dataspec = data.get("data") or {}
    if not isinstance(dataspec, dict):
        raise RecipeError("data takes a mapping: data: {train: $train_df, eval: $dev_df, text: sentence, label: label}.")
    from nbtune.core.tasks import data_roles

    # data names the splits and, per column role of the task (every task's roles when the task is inferred at load),
    # the column that plays it: text/label, tokens/tags, question/context/answers, source/target, prompt/response...
    _unknown(dataspec, ("train", "eval", *data_roles(data.get("task"))), "data")
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise RecipeError("train takes a mapping of settings, e.g. train: {epochs: 1, lr: 5e-5}.")
    from nbtune.core.training.config import TrainConfig

    TrainConfig.from_kwargs(**train)  # unknown or bad settings fail here, before anything loads
    head = data.get("head")
    if head is not None and head != "reset":
        if not isinstance(head, dict):
            raise RecipeError("head takes {num_labels: N}, {labels: [...]} or 'reset'.")
        _unknown(head, ("num_labels", "labels"), "head")
        _check_head_width(data, head)
    evaluate = data.get("evaluate", data.get("eval", True))
    steps = []
    for step in data.get("steps") or []:
        if not (isinstance(step, dict) and len(step) == 1 and next(iter(step)) in ("freeze", "unfreeze")):
            raise RecipeError(f"Each entry of steps is {{freeze: [...]}} or {{unfreeze: [...]}}; got {step!r}.")
        action, selectors = next(iter(step.items()))
        steps.append((action, _as_list(selectors, action)))
    race = data.get("race")
    if race is not None and (not isinstance(race, dict) or not all(isinstance(v, (dict, type(None)))
                                                                  for v in race.values())):
        raise RecipeError("race maps a name to each set-up's recipe keys, e.g. race: {head: {freeze: [all], "
                          "unfreeze: [head]}, lora: {lora: {r: 8}}, full: {}}.")
    return Recipe(
        plugins=plugins, race={k: dict(v or {}) for k, v in race.items()} if race else None,
        model=data["model"], task=data.get("task"), load={k: data[k] for k in load_keys() if k in data},
        data=dataspec, head={} if head == "reset" else head, freeze=_as_list(data.get("freeze"), "freeze"),
        unfreeze=_as_list(data.get("unfreeze"), "unfreeze"), steps=steps, adapter=adapter, train=train,
        evaluate=bool(evaluate), save=data.get("save"),
    )


def resolve(value: Any, namespace: dict[str, Any] | None, where: str = "the recipe") -> Any:
    """Replace ``$name`` strings (at any depth) by the namespace's objects."""
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if namespace is None or name not in namespace:
            raise RecipeError(f"{value} in {where} is not defined in the notebook. Define {name} first, or give a "
                              "file path instead.")
        return namespace[name]
    if isinstance(value, dict):
        return {k: resolve(v, namespace, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, namespace, where) for v in value]
    return value


def _width(keys: dict[str, Any]) -> int | None:
    """How many classes ``labels`` / ``num_labels`` in ``keys`` name (None: neither is given)."""
    labels, num_labels = keys.get("labels"), keys.get("num_labels")
    if isinstance(labels, (list, tuple)) and isinstance(num_labels, int) and len(labels) != num_labels:
        raise RecipeError(f"labels names {len(labels)} classes but num_labels is {num_labels}; give one of them.")
    return len(labels) if isinstance(labels, (list, tuple)) else num_labels if isinstance(num_labels, int) else None


def _check_head_width(data: dict[str, Any], head: dict[str, Any]) -> None:
    """A recipe that loads with N classes and then asks for a head of M != N classes is a mistake, not a wish:
    the data's labels would not fit one of them."""
    loaded, fresh = _width(data), _width(head)
    if loaded is not None and fresh is not None and loaded != fresh:
        raise RecipeError(f"The model is loaded with {loaded} classes (labels/num_labels) but head asks for {fresh}; "
                          f"give head the same classes (head: {{labels: [...]}}) or leave one of them out.")


def references(value: Any) -> list[str]:
    """Every ``$name`` in a recipe value (at any depth)."""
    if isinstance(value, str):
        return [value] if value.startswith("$") else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def read_recipe(path: str | os.PathLike) -> Recipe:
    """A recipe file, with relative data and model paths taken relative to the file's folder.

    A recipe run from a file has no notebook to take ``$name`` values from, so those are an error here.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecipeError(f"No recipe file at {path}.")
    recipe = parse_recipe(path.read_text())
    refs = references(recipe.to_dict())
    if refs:
        raise RecipeError(
            f"{path} still uses {', '.join(sorted(set(refs)))}, which only exist in a notebook. Export the session "
            "with its data (s.export(path, data={'train': df, ...}) or %nbtune export) so the data is written to files."
        )
    base = path.parent

    def local(value):
        if isinstance(value, str) and not value.startswith("$") and not Path(value).is_absolute():
            candidate = base / value
            if candidate.exists():
                return str(candidate)
        return value

    recipe.model = local(recipe.model)
    recipe.data = {k: local(v) if k in ("train", "eval") else v for k, v in recipe.data.items()}
    return recipe
