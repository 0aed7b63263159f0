"""Static pictures of nbtune's results for notebooks: IPython HTML formatters that add a plot (a PNG inside the HTML,
so a saved notebook shows it once and everywhere) to the core's own text and HTML.

Registered by type name, so nothing here is imported until such a result is displayed.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    """A matplotlib figure (imported here, when a result is first displayed, not when the formatters register)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=96)
    FigureCanvasAgg(figure)
    return figure


def png_tag(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='{alt}' src='data:image/png;base64,{data}' style='max-width:100%'/>"


def lr_find_html(result) -> str:
    from nbtune.render.lr_find import lr_find_html as html

    figure = _figure(5.5, 3.0)
    ax = figure.add_subplot(1, 1, 1)
    if result.lrs:
        ax.plot(result.lrs, result.losses, color="#9ecae1", linewidth=1, label="loss")
        ax.plot(result.lrs, result.smoothed, color="#08519c", linewidth=2, label="smoothed")
        ax.set_xscale("log")
    if result.suggestion:
        ax.axvline(result.suggestion, color="#d62728", linestyle="--", label=f"suggested {result.suggestion:.2g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(loc="best", fontsize=8)
    return html(result, png_tag(figure, "loss against learning rate"))


def comparison_html(comparison) -> str:
    """The comparison's tables with the runs' smoothed training losses and evaluation curves overlaid."""
    from nbtune.render.runs import comparison_html as html
    from nbtune.ui.plot import smoothed

    metric = next((k for r in comparison.runs for row in r.rows for k in row
                   if k.startswith("eval_") and k != "eval_loss"), "eval_loss")
    figure = _figure(9.0, 3.0)
    loss_ax, eval_ax = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for run in comparison.runs:
        steps = [r["step"] for r in run.rows if r.get("loss") is not None]
        loss_ax.plot(steps, smoothed([r["loss"] for r in run.rows if r.get("loss") is not None]), label=run.name)
        evals = [(r["step"], r[metric]) for r in run.rows if r.get(metric) is not None]
        if evals:
            eval_ax.plot(*zip(*evals), marker="o", label=run.name)
    loss_ax.set_title("training loss (smoothed)", fontsize=10)
    eval_ax.set_title(metric.replace("eval_", "evaluation "), fontsize=10)
    for ax in (loss_ax, eval_ax):
        ax.set_xlabel("step")
    loss_ax.legend(loc="best", fontsize=7)
    return html(comparison, png_tag(figure, "runs compared"))


FORMATTERS: dict[tuple[str, str], Callable[[object], str]] = {
    ("nbtune.core.training.lr_find", "LRFindResult"): lr_find_html,
    ("nbtune.core.workflows.compare", "Comparison"): comparison_html,
}


def register(shell) -> None:
    """Add the formatters to ``shell``'s HTML formatter (by type name: the types are not imported here)."""
    html = shell.display_formatter.formatters["text/html"]
    for (module, name), formatter in FORMATTERS.items():
        html.for_type_by_name(module, name, formatter)
