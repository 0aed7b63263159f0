"""A parsed recipe -> a session: load, then head, freeze, unfreeze and adapter, in that order."""

from __future__ import annotations

from typing import Any

from nbtune.core.recipes.spec import resolve
from nbtune.core.session.export import Recipe
from nbtune.core.session.loading import load


def build_session(recipe: Recipe, namespace: dict[str, Any] | None = None):
    """Load the model, then head, freeze, unfreeze and adapter, in that order."""
    model = resolve(recipe.model, namespace, "model")
    session = load(model, recipe.task, **resolve(recipe.load, namespace, "the load settings"))
    if recipe.head is not None:
        session.reset_head(**recipe.head)
    if recipe.freeze:
        session.freeze(*recipe.freeze)
    if recipe.unfreeze:
        session.unfreeze(*recipe.unfreeze)
    for action, selectors in recipe.steps:
        getattr(session, action)(*selectors)
    if recipe.adapter:
        method, settings = recipe.adapter
        session.add_adapter(method, **settings)
    return session
