"""Small formatting helpers shared by the text and HTML renderers."""

from __future__ import annotations

import html


def human_count(n: int | float) -> str:
    """1234567 -> '1.23M'. Exact below ten thousand."""
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size and (unit != "K" or abs(n) >= 1e4):
            return f"{n / size:.3g}{unit}"
    return f"{int(n):,}"


def human_bytes(n: int | float | None) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'."""
    if n is None:
        return "n/a"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def pct(part: int | float, whole: int | float) -> str:
    """Percentage with two decimals, or three significant digits when tiny (a head is 0.0034% of a model)."""
    if not whole or not part:
        return "0%" if whole else "n/a"
    value = 100.0 * part / whole
    return f"{value:.2f}%" if value >= 0.01 else f"{value:.2g}%"


# Message colours through JupyterLab's theme variables (so a dark theme keeps its contrast), with fallbacks of at
# least 4.5:1 on white for nbconvert output, VS Code and Colab.
COLOURS = {"error": "var(--jp-error-color1, #c62828)", "ok": "var(--jp-success-color1, #1a7f37)",
           "muted": "var(--jp-ui-font-color2, #616161)"}


def coloured(text: str, kind: str) -> str:
    """``text`` (escaped here) in a span of message colour ``kind``: error, ok or muted."""
    return f"<span style='color:{COLOURS[kind]}'>{esc(text)}</span>"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def text_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """An aligned plain-text table; columns in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def html_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """A compact HTML table (cells are escaped)."""
    th = "".join(f'<th style="text-align:{"right" if i in right else "left"}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(
            f'<td style="text-align:{"right" if i in right else "left"}">{esc(c)}</td>' for i, c in enumerate(r)
        ) + "</tr>"
        for r in rows
    )
    return f'<table class="nbtune-table"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'
