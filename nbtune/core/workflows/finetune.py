"""``nbtune.finetune`` and ``%%finetune``: a recipe end to end (build, evaluate, train, evaluate, save)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from nbtune.core.common.errors import RecipeError
from nbtune.core.recipes.build import build_session
from nbtune.core.recipes.spec import parse_recipe, resolve
from nbtune.core.session.export import Recipe
from nbtune.core.training.config import TrainConfig
from nbtune.core.training.runtime import current_accelerator
from nbtune.core.workflows.compare import race
from nbtune.render.training import recipe_html, recipe_text


@dataclass
class RecipeResult:
    """What ``run_recipe`` returns: the session, metrics before and after, and the training run."""

    session: Any
    run: Any = None  # RunResult, None for a dry run
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    saved: Any = None
    train: dict[str, Any] = field(default_factory=dict)  # the recipe's training settings

    def summary(self):
        """The session's summary for the run the recipe trains: its batch size, length and evaluation batch (the
        training defaults where the recipe names none), not the summary's generic 8 x 128."""
        defaults = TrainConfig()
        batch = self.train.get("batch_size") or defaults.batch_size
        return self.session.summary(batch_size=batch, seq_len=self.train.get("max_length") or defaults.max_length,
                                    eval_batch_size=self.train.get("eval_batch_size"),
                                    precision=self.train.get("precision") or defaults.precision)

    @property
    def history(self):
        return self.run.history if self.run is not None else None

    def __repr__(self) -> str:
        return recipe_text(self)

    def _repr_html_(self) -> str:
        return recipe_html(self)


def run_recipe(source: str | dict[str, Any] | Recipe, namespace: dict[str, Any] | None = None, *,
               dry_run: bool = False, callbacks: Iterable[Callable] = (), log: bool = True, progress: str = "auto",
               resume: Any = None,
               train_overrides: dict[str, Any] | None = None) -> RecipeResult:
    """Run a recipe end to end: build the session, evaluate, train, evaluate, save.

    ``dry_run`` stops after building the session (load, freeze, attach) so its summary can be checked. A recipe
    with ``race:`` trains each set-up and returns their comparison (``nbtune.core.workflows.compare.Comparison``) instead.
    """
    recipe = source if isinstance(source, Recipe) else parse_recipe(source)
    data = resolve(recipe.data, namespace, "data")
    if not dry_run and "train" not in data:
        raise RecipeError("The recipe has no training data: add data: {train: $train_df} (or use --dry-run).")
    if recipe.race:
        if dry_run:
            raise RecipeError("A race has no dry run: each set-up trains. Remove --dry-run, or race: to check one.")
        columns = {k: v for k, v in data.items() if k not in ("train", "eval")}
        settings = {**recipe.train, **(train_overrides or {})}
        settings.setdefault("columns", columns)
        return race(resolve(recipe.model, namespace, "model"), data["train"], eval=data.get("eval"),
                    setups=resolve(recipe.race, namespace, "race"), task=recipe.task, progress=progress, log=log,
                    **resolve(recipe.load, namespace, "the load settings"), **settings)
    session = build_session(recipe, namespace)
    settings = {**recipe.train, **(train_overrides or {})}
    result = RecipeResult(session, train=dict(settings))
    if dry_run:
        return result
    columns = {k: v for k, v in data.items() if k not in ("train", "eval")}
    eval_data = data.get("eval")
    if recipe.evaluate and eval_data is not None and resume is None:  # resuming: the first run measured it
        result.before = session.evaluate(eval_data, columns=columns)
    settings.setdefault("columns", columns)
    result.run = session.train(data["train"], eval=eval_data, callbacks=callbacks, log=log, progress=progress,
                               resume=resume, **settings)
    result.after = dict(result.run.metrics)
    if recipe.save and is_main_process():
        result.saved = session.save(recipe.save)
    return result


def is_main_process() -> bool:
    """False in the second and later processes of a multi-process run (only the first writes files)."""
    accelerator = current_accelerator()
    return accelerator is None or accelerator.is_main_process
