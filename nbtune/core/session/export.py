"""A session's current state as a recipe document (``Recipe``: parsed from text in ``recipes/spec.py``) (``Session.export`` and ``%nbtune export``).

Model source, task, labels, freeze history, adapter and training settings go into YAML; data held in memory
(DataFrames, datasets, lists) is written beside it as JSON Lines and referenced by relative path, so the
recipe runs anywhere with ``nbtune run`` or ``accelerate launch -m nbtune run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtune.core.common.errors import RecipeError
from nbtune.core.tasks import is_labelled
from nbtune.core.training.config import TrainConfig, custom_augment


@dataclass
class Recipe:
    """A parsed, validated recipe. ``$name`` references are resolved by ``resolve``."""

    model: Any
    task: str | None = None
    load: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] | None = None
    freeze: list[str] = field(default_factory=list)
    unfreeze: list[str] = field(default_factory=list)
    steps: list[tuple[str, list[str]]] = field(default_factory=list)  # ordered freeze/unfreeze calls, after those
    adapter: tuple[str, dict[str, Any]] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: bool = True
    save: str | None = None
    race: dict[str, dict[str, Any]] | None = None  # set-up name -> recipe keys: train each, compare (compare.race)
    plugins: list[str] = field(default_factory=list)  # modules imported first: they register a task, objective...

    def to_dict(self) -> dict[str, Any]:
        """The recipe as YAML-ready data (the inverse of ``parse_recipe``)."""
        out: dict[str, Any] = {"plugins": list(self.plugins)} if self.plugins else {}
        out["model"] = self.model
        if self.task:
            out["task"] = self.task
        out.update(self.load)
        for key in ("data", "head", "freeze", "unfreeze", "train", "save"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.steps:
            out["steps"] = [{action: list(selectors)} for action, selectors in self.steps]
        if self.adapter:
            out[self.adapter[0]] = self.adapter[1]
        if not self.evaluate:
            out["evaluate"] = False
        return out


def _model_reference(session) -> tuple[Any, dict[str, Any]]:
    src = session.source
    if src.kind == "module":
        raise RecipeError("A recipe needs a model it can load from a folder, a file or a hub id; this session's model "
                          "is a Python object. Save it with s.save(folder) and load that folder first.")
    load: dict[str, Any] = {}
    if src.kind == "gguf":
        load["gguf_file"] = src.gguf_file
    if src.trust_remote_code:
        load["trust_remote_code"] = True
    if src.revision:
        load["revision"] = src.revision
    if src.quantize:
        load["quantize"] = src.quantize
    from nbtune.core.model.quantize import gradient_checkpointing_on

    if gradient_checkpointing_on(session.model):
        load["gradient_checkpointing"] = True
    location = src.location if src.kind == "hub" else str(Path(src.location).resolve())
    return location, load


def _write_data(session, name: str, value: Any, folder: Path, stem: str) -> str:
    """Data as a path the recipe can hold: paths stay, in-memory tables are written as JSON Lines (media as the
    task's modality stores them, beside the file)."""
    if isinstance(value, (str, os.PathLike)):
        return str(Path(value).expanduser().resolve())
    from nbtune.core.data.features import load_table

    table = session.modality.store(load_table(value), folder)
    target = folder / f"{stem}.{name}.jsonl"
    table.to_json(target, orient="records", lines=True, force_ascii=False)
    return target.name


def export_session(session, path: str | os.PathLike, data: dict[str, Any] | None = None,
                   train: dict[str, Any] | None = None) -> Path:
    """Write ``session`` as a recipe to ``path``; ``data`` ({'train': df, 'eval': df, 'text': 'sentence'...}) is
    written beside it. ``train`` settings default to those of the session's last run."""
    import yaml

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    model, load = _model_reference(session)
    config = getattr(session.model, "config", None)
    if is_labelled(session.task) and config is not None:
        load["labels"] = [config.id2label[i] for i in range(config.num_labels)]
    adapters = session.adapters
    if len(adapters) > 1:
        raise RecipeError(f"A recipe holds one adapter and this session has {len(adapters)} "
                          f"({[a.name for a in adapters]}); keep one (merge or delete the others) before exporting.")
    adapter = None
    if adapters:
        settings = dict(session.adapter_settings.get(adapters[0].name, {}))
        method = settings.pop("method", adapters[0].method)
        from nbtune.core.adapters import get_method

        known = get_method(method).setting_names
        adapter = (method, {k: v for k, v in settings.items() if k in known and v is not None})
    if train is None:
        last = session.training.position.config if session.training.position else {}
        defaults = TrainConfig().to_dict()
        train = {k: v for k, v in last.items() if v != defaults.get(k) and k != "checkpoint_dir"}
    if custom_augment(train.get("augment")):
        raise RecipeError("A recipe holds settings, not Python code, and this run augments with its own pipeline; "
                          "export without it (train={'augment': True} or False) or keep the pipeline in your code.")
    TrainConfig.from_kwargs(**train)
    data_spec = {}
    for key, value in (data or {}).items():
        data_spec[key] = _write_data(session, key, value, path.parent, path.stem) if key in ("train", "eval") else value
    recipe = Recipe(plugins=session.plugin_modules(train.get("objective")), model=model, task=session.task,
                    load=load, data=data_spec,
                    steps=[(a, list(s)) for a, s in session.freeze_log], adapter=adapter, train=train)
    path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True))
    return path

