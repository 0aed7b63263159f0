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


# Colour that stays readable in light and dark themes (JupyterLab, Notebook, VS Code, Colab): a state or outcome is
# a small badge, white on a colour of >= 5:1 contrast, which carries its own background; other text keeps the
# theme's own font colours (MUTED adapts to the theme, with a fallback of 6:1 on white).
BADGES = {"ok": "#1a7f37", "error": "#b3261e", "warn": "#a04f00"}
MUTED = "var(--jp-content-font-color1, #424242)"  # color2 is 4.5:1 at best: too faint


def badge(text: str, kind: str) -> str:
    """``text`` (escaped here) as a badge of kind ok, error or warn."""
    return (f"<span style='background:{BADGES[kind]};color:#fff;padding:0 0.35em;border-radius:3px'>"
            f"{esc(text)}</span>")


def muted(text: str) -> str:
    """``text`` (escaped here) in the theme's secondary font colour."""
    return f"<span style='color:{MUTED}'>{esc(text)}</span>"


def message(text: str, kind: str) -> str:
    """A one-line outcome: a badge saying which (done, error) and the text in the theme's own colour."""
    return f"{badge('error' if kind == 'error' else 'done', kind)} {esc(text)}"


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


def rate_text(examples_per_s: float, tokens_per_s: float = 0.0, seconds_per_step: float = 0.0) -> str:
    """A training speed people can read: examples a second while there is at least one; below that (an LLM on a
    small GPU, a CPU) tokens a second and seconds a step, which "0.0 ex/s" would hide."""
    if examples_per_s >= 1:
        return f"{examples_per_s:.1f} ex/s"
    parts = ([f"{tokens_per_s:,.0f} tok/s"] if tokens_per_s else []) + (
        [f"{seconds_per_step:.1f} s/step"] if seconds_per_step else [])
    return ", ".join(parts) if parts else f"{examples_per_s:.2g} ex/s"
