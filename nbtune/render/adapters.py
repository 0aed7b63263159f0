"""Text and HTML for LoRA target listings."""

from __future__ import annotations

from nbtune.render.format import html_table, text_table

_HEADERS = ["target", "type", "count", "shape", "params per rank", "at r=8"]


def _rows(targets) -> list[list[str]]:
    return [[g.short_name, g.type, str(g.count), g.shape, f"{g.params_per_rank:,}", f"{8 * g.params_per_rank:,}"]
            for g in targets.groups]


def targets_text(targets) -> str:
    return text_table(_HEADERS, _rows(targets), right={2, 4, 5})


def targets_html(targets) -> str:
    return html_table(_HEADERS, _rows(targets), right={2, 4, 5})
