"""The loss plot: one matplotlib Figure (no pyplot, no global state) rendered to PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_STEP_KEYS = {"step", "epoch", "loss", "lr", "grad_norm", "examples_per_s", "seconds"}


def step_metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """The task's per-step metrics in the history (anything a training row holds beyond the loop's own keys)."""
    names: dict[str, None] = {}
    for r in rows:
        if r.get("loss") is not None:
            names.update(dict.fromkeys(k for k in r if k not in _STEP_KEYS and not k.startswith("eval_")))
    return list(names)


def smoothed(values: list[float], weight: float = 0.9) -> list[float]:
    """An exponential moving average of ``values`` (the curve a noisy per-batch loss is read by)."""
    out, ema = [], None
    for value in values:
        ema = value if ema is None else weight * ema + (1 - weight) * value
        out.append(ema)
    return out


class LossPlot:
    """Train loss (raw and smoothed) and eval loss against the step; the task's per-step metrics (reward margin,
    accuracy...) in a second panel beside it when there are any. ``png()`` redraws the same figure."""

    def __init__(self, width: float = 6.5, height: float = 3.0):
        self.figure = Figure(figsize=(width, height), dpi=96)
        FigureCanvasAgg(self.figure)

    def png(self, rows: list[dict[str, Any]], title: str = "", fitted: bool = True) -> bytes:
        """The plot as PNG bytes. ``fitted=False`` (live redraws) sets fixed margins instead of fitting them to the
        labels, which halves the cost of a redraw; the final picture is fitted."""
        fig = self.figure
        fig.clear()
        extra = step_metric_names(rows)
        ax = fig.add_subplot(1, 2 if extra else 1, 1)
        steps = [r["step"] for r in rows if r.get("loss") is not None]
        losses = [r["loss"] for r in rows if r.get("loss") is not None]
        if steps:
            ax.plot(steps, losses, color="#9ecae1", linewidth=1, label="train loss")
            ax.plot(steps, smoothed(losses), color="#08519c", linewidth=2, label="train (smoothed)")
        evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
        if evals:
            ax.plot(*zip(*evals), "o-", color="#d94801", label="eval loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if steps or evals:
            # "best" keeps the legend off the curves and eval points; it costs a search, so live redraws keep a
            # fixed corner and the final picture gets the search
            ax.legend(loc="best" if fitted else "upper right", fontsize=8, framealpha=0.7)
        if extra:
            side = fig.add_subplot(1, 2, 2)
            for name in extra:
                points = [(r["step"], r[name]) for r in rows if r.get(name) is not None and r.get("loss") is not None]
                if points:
                    side.plot(*zip(*points), linewidth=1.5, label=name.replace("_", " "))
            side.set_xlabel("step")
            side.grid(alpha=0.3)
            side.legend(loc="best", fontsize=8)
        if fitted:
            fig.tight_layout()
        else:
            fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.92 if title else 0.96, wspace=0.25)
        buffer = io.BytesIO()
        fig.canvas.print_png(buffer)
        return buffer.getvalue()
