"""Layer tree as aligned text and as collapsible HTML (nested <details>, no JavaScript)."""

from __future__ import annotations

from .format import esc, human_count

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


_ROW_STYLE = "display:grid;grid-template-columns:minmax(14em,2fr) 12em 6em 6em 1.5fr;gap:0 1em;font-family:monospace;font-size:12px"


def _row_html(r, title: str) -> str:
    label = esc(_label(r) if r.name else title)
    typ = esc(f"{r.folded} x {r.type}" if r.folded else r.type)
    state = r.trainable_state
    colour = {"all": "#1a7f37", "none": "#888", "partial": "#b35900"}[state]
    train = human_count(r.trainable) if state == "partial" else _MARK[state]
    return (
        f'<span style="{_ROW_STYLE};display:inline-grid" title="{esc(r.name)}">'
        f"<span>{label}</span><span>{typ}</span><span style='text-align:right'>{human_count(r.total_params)}</span>"
        f"<span style='color:{colour}'>{train}</span><span>{esc(_shapes(r))}</span></span>"
    )


def tree_html(tree) -> str:
    """Nested <details> elements: works in JupyterLab, Notebook, VS Code and Colab without widgets."""
    rows = tree.rows
    parts = [f'<div class="nbtune-tree"><div style="{_ROW_STYLE};font-weight:bold">'
             "<span>module</span><span>type</span><span style='text-align:right'>params</span>"
             "<span>trainable</span><span>own shapes</span></div>"]
    open_depths: list[int] = []
    for i, r in enumerate(rows):
        while open_depths and open_depths[-1] >= r.depth:
            parts.append("</details>")
            open_depths.pop()
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        indent = "margin-left:1.2em" if r.depth > 0 else ""  # nested elements: the margin accumulates
        if nxt is not None and nxt.depth > r.depth:
            is_open = " open" if r.depth < 1 else ""
            parts.append(f'<details{is_open} style="{indent}"><summary>{_row_html(r, tree.title)}</summary>')
            open_depths.append(r.depth)
        else:
            parts.append(f'<div style="{indent};padding-left:1.1em">{_row_html(r, tree.title)}</div>')
    parts.extend("</details>" for _ in open_depths)
    parts.append("</div>")
    return "".join(parts)
