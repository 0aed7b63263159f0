"""Text and HTML for the learning-rate range test (the notebook layer adds its plot)."""

from __future__ import annotations

from nbtune.render.format import esc


def lr_find_headline(result) -> str:
    if result.suggestion is None:
        return f"lr_find: no suggestion ({result.stopped}; {len(result.lrs)} rates tried)"
    return (f"lr_find: suggested learning rate {result.suggestion:.2g} ({len(result.lrs)} rates tried from "
            f"{result.lrs[0]:.1g} to {result.lrs[-1]:.2g}; {result.stopped})")


def lr_find_text(result) -> str:
    return "\n".join([lr_find_headline(result), *result.notes])


def lr_find_html(result, figure: str = "") -> str:
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    return (f"<div class='nbtune-lr-find'><b>{esc(lr_find_headline(result))}</b>{figure}"
            f"<ul>{notes}</ul></div>")
