"""The loss plot: one matplotlib Figure (no pyplot, no global state) rendered to PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class LossPlot:
    """Train loss (raw and smoothed) and eval loss against the step; ``png()`` redraws the same figure."""

    def __init__(self, width: float = 6.5, height: float = 3.0):
        self.figure = Figure(figsize=(width, height), dpi=96)
        FigureCanvasAgg(self.figure)

    def png(self, rows: list[dict[str, Any]], title: str = "") -> bytes:
        fig = self.figure
        fig.clear()
        ax = fig.add_subplot(1, 1, 1)
        steps = [r["step"] for r in rows if r.get("loss") is not None]
        losses = [r["loss"] for r in rows if r.get("loss") is not None]
        if steps:
            ax.plot(steps, losses, color="#9ecae1", linewidth=1, label="train loss")
            smooth, ema = [], None
            for value in losses:
                ema = value if ema is None else 0.9 * ema + 0.1 * value
                smooth.append(ema)
            ax.plot(steps, smooth, color="#08519c", linewidth=2, label="train (smoothed)")
        evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
        if evals:
            ax.plot(*zip(*evals), "o-", color="#d94801", label="eval loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if steps or evals:
            ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.canvas.print_png(buffer)
        return buffer.getvalue()
