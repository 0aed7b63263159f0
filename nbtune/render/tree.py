"""Layer tree as aligned text and as one aligned HTML table (no JavaScript)."""

from __future__ import annotations

from nbtune.render.format import badge, esc, human_count, muted

_MARK = {"all": "yes", "none": "no", "partial": "part"}


def _label(row) -> str:
    """Short name; a folded row keeps its list name too (``layer.1-11``)."""
    if row.folded:
        return ".".join(row.name.rsplit(".", 2)[-2:])
    return row.short_name


def _shapes(row) -> str:
    return " ".join(f"{k}{list(v)}" for k, v in row.shapes.items())


def tree_text(tree) -> str:
    """Aligned text: indented names, class, params, trainable, own shapes, dtype, device."""
    headers = ["module", "type", "params", "trainable", "shapes", "dtype", "device"]
    rows = []
    base = min((r.depth for r in tree.rows), default=0)
    for r in tree.rows:
        name = "  " * (r.depth - base) + (_label(r) if r.name else tree.title)
        typ = f"{r.folded} x {r.type}" if r.folded else r.type
        train = human_count(r.trainable) if r.trainable_state == "partial" else _MARK[r.trainable_state]
        rows.append([name, typ, human_count(r.total_params), train, _shapes(r), r.dtype, r.device])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    widths[4] = min(widths[4], 48)  # long shape lists wrap the table; cut them instead

    def fmt(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            if i == 4 and len(c) > w:
                c = c[: w - 3] + "..."
            out.append(c.rjust(w) if i == 2 else c.ljust(w))
        return "  ".join(out).rstrip()

    return "\n".join([fmt(headers)] + [fmt(r) for r in rows])


def state_mark(state: str, text: str) -> str:
    """How a trainable state reads in HTML: a green badge (all trains), an amber one (part of it), muted (frozen)."""
    kind = {"all": "ok", "partial": "warn"}.get(state)
    return badge(text, kind) if kind else muted(text)


_CELL = "padding:1px 0.8em 1px 0;white-space:nowrap;vertical-align:top;text-align:left"


def _row_html(r, title: str, base: int) -> str:
    label = esc(_label(r) if r.name else title)
    typ = esc(f"{r.folded} x {r.type}" if r.folded else r.type)
    state = r.trainable_state
    train = human_count(r.trainable) if state == "partial" else _MARK[state]
    train = state_mark(state, train)
    indent = 1.2 * (r.depth - base)
    return (
        f'<tr title="{esc(r.name or title)}"><td style="{_CELL};padding-left:{indent:.1f}em">{label}</td>'
        f'<td style="{_CELL}">{typ}</td><td style="{_CELL};text-align:right">{human_count(r.total_params)}</td>'
        f'<td style="{_CELL}">{train}</td><td style="{_CELL}">{esc(_shapes(r))}</td></tr>'
    )


def tree_html(tree) -> str:
    """One table whose columns line up at every depth (depth is the module cell's indent), scrolling sideways
    instead of overlapping when names are long. Plain HTML: JupyterLab, Notebook, VS Code, Colab, nbconvert."""
    base = min((r.depth for r in tree.rows), default=0)
    head = "".join(f'<th style="{_CELL}{";text-align:right" if h == "params" else ""}">{h}</th>'
                   for h in ("module", "type", "params", "trainable", "own shapes"))
    body = "".join(_row_html(r, tree.title, base) for r in tree.rows)
    return (f'<div class="nbtune-tree" style="overflow-x:auto;max-width:100%">'
            f'<table style="border-collapse:collapse;font-family:monospace;font-size:12px;margin:0">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
