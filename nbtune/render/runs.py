"""Text and HTML for run tables and comparisons (the notebook layer adds the overlaid curves)."""

from __future__ import annotations

from nbtune.render.format import esc, html_table, text_table

_COLUMNS = ["name", "model", "method", "trainable", "steps", "best", "status", "resume", "seconds", "size_mb"]
_HEADERS = ["run", "model", "method", "trainable", "steps", "best", "status", "resumable", "time (s)", "size (MB)"]
_RIGHT = {3, 4, 8, 9}


def _cells(rows):
    return [[f"{r[c]:,}" if c == "trainable" and isinstance(r[c], int) else str(r[c] if r[c] is not None else "")
             for c in _COLUMNS] for r in rows]


def run_table_text(table) -> str:
    if not table.runs:
        return f"no runs in {table.folder}"
    return f"{len(table.runs)} runs in {table.folder}\n" + text_table(_HEADERS, _cells(table.rows()), right=_RIGHT)


def run_table_html(table) -> str:
    if not table.runs:
        return f"<div class='nbtune-runs'>no runs in {esc(table.folder)}</div>"
    return (f"<div class='nbtune-runs'><b>{len(table.runs)} runs in {esc(table.folder)}</b>"
            f"{html_table(_HEADERS, _cells(table.rows()), right=_RIGHT)}</div>")


def _differing_rows(comparison):
    return [[key, *[str(v) for v in values]] for key, values in comparison.differing.items()]


def comparison_text(comparison) -> str:
    rows = [r.row() for r in comparison.runs]
    parts = [text_table(_HEADERS, _cells(rows), right=_RIGHT)]
    if comparison.differing:
        parts.append("settings that differ:\n" + text_table(["setting", *[r.name for r in comparison.runs]],
                                                            _differing_rows(comparison)))
    return "\n".join(parts)


def comparison_html(comparison, figure: str = "") -> str:
    rows = [r.row() for r in comparison.runs]
    differing = (f"<b>settings that differ</b>{html_table(['setting', *[r.name for r in comparison.runs]], _differing_rows(comparison))}"
                 if comparison.differing else "")
    return (f"<div class='nbtune-compare'>{html_table(_HEADERS, _cells(rows), right=_RIGHT)}{figure}"
            f"{differing}</div>")
