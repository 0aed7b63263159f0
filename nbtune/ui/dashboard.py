"""The live training dashboard: progress, loss plot, learning rate, metrics, and a Stop button that works.

It is only a listener of the training loop's events. Everything is core ipywidgets updated in place (no
custom widget manager, no ``clear_output``); the plot redraws at most twice a second and never takes more than
``DRAW_SHARE`` of the run's time; the progress text updates at most every ``STATUS_EVERY`` seconds. When the run ends,
the live widget is replaced through its display handle by a static PNG + HTML summary, so a saved or
executed notebook still shows the curves without a kernel. Outside a kernel it prints text lines.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from nbtune.core.training.callbacks import History
from nbtune.core.training.events import Control, EvalEnded, FitEnded, FitStarted, Outcome, StepEnded
from nbtune.render.format import esc, html_table, rate_text
from nbtune.ui.display import show_widget
from nbtune.ui.env import clicks_while_busy, kernel_shell
from nbtune.ui.plot import LossPlot

# The share of a run's wall time the live plot may take (bench/step_overhead.py measures the whole per-step cost),
# the cost assumed for the first redraw, and the least time between two updates of the progress text and bar.
DRAW_SHARE = 0.005
FIRST_DRAW_GUESS = 0.08
STATUS_EVERY = 1.0


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainingDashboard:
    """A training listener ``(event, control)`` that draws progress and answers the Stop button.

    It holds no reference into the session: the curve is rebuilt from the events (``FitStarted`` brings the rows of
    earlier runs, so a resumed run redraws the whole curve), through the same ``History`` the session keeps.

    Args:
        redraw_every: minimum seconds between plot redraws.
        poll_every: minimum seconds between processing widget messages (Stop clicks) during training.
    """

    def __init__(self, title: str = "training",
                 redraw_every: float = 0.5, poll_every: float = 0.5):
        self.history = History()
        self.title, self.redraw_every, self.poll_every = title, redraw_every, poll_every
        self.plot = LossPlot()
        self.widgets: dict[str, Any] = {}
        self.handle = None
        self.stop_requested = False
        self.status = ""
        self.metrics: dict[str, float] = {}
        self.redraws = 0
        self._last_draw = self._last_poll = 0.0
        self._draw_seconds = FIRST_DRAW_GUESS  # how long the last redraw took
        self._drawn_seconds = 0.0  # live redraws so far, in seconds
        self._last_status = 0.0
        self._run_step = 0
        self._pump_cm = None
        self._pump = lambda: None
        self._started = 0.0
        self._total = 0
        self._text_mode = kernel_shell() is None

    # -- construction --------------------------------------------------------------------------------
    def _build(self, event: FitStarted):
        import ipywidgets as w

        self.widgets = {
            "title": w.HTML(f"<b>{esc(self.title)}</b>: {event.trainable:,} of {event.total_params:,} parameters "
                            f"trainable, {event.examples} examples, {esc(event.device)} ({esc(event.precision)}), "
                            f"lr {event.config.get('lr') or 0:g}"),
            "bar": w.IntProgress(value=event.start_step, min=0, max=event.total_steps, bar_style="info",
                                 layout=w.Layout(width="50%")),
            "status": w.HTML("starting..."),
            # hidden until the first drawing: an empty Image shows a broken-image icon
            "plot": w.Image(format="png", layout=w.Layout(width="560px", max_width="100%", display="none")),
            "metrics": w.HTML(""),
            "stop": w.Button(description="Stop", button_style="warning", icon="stop",
                             tooltip="Stop at the next step; weights and history are kept"),
        }
        self.widgets["stop"].on_click(self._on_stop)
        box = w.VBox([self.widgets["title"], w.HBox([self.widgets["bar"], self.widgets["stop"]]),
                      self.widgets["status"],
                      # the metrics table goes under the plot where the output is narrower than both
                      w.HBox([self.widgets["plot"], self.widgets["metrics"]], layout=w.Layout(flex_flow="row wrap"))])
        self.widgets["box"] = box
        return box

    def _on_stop(self, _button=None) -> None:
        self.stop_requested = True
        if "stop" in self.widgets:
            self.widgets["stop"].description = "Stopping..."
            self.widgets["stop"].disabled = True

    # -- listener --------------------------------------------------------------------------------------
    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.history.rows

    def __call__(self, event: Any, control: Control) -> None:
        if isinstance(event, FitStarted):
            self.history = History(event.history)
            self._on_fit_started(event)
        elif isinstance(event, StepEnded):
            self.history(event, control)
            self._on_step(event, control)
        elif isinstance(event, EvalEnded):
            self.history(event, control)
            self.metrics = dict(event.metrics)
            self._draw(force=True)
        elif isinstance(event, FitEnded):
            self._on_end(event)

    def _on_fit_started(self, event: FitStarted) -> None:
        self._started, self._total = time.monotonic(), event.total_steps
        self._drawn_seconds = 0.0
        self.stop_requested = False
        if self._text_mode:
            print(f"{self.title}: {event.total_steps} steps, {event.examples} examples", flush=True)
            return
        box = self._build(event)
        live = f"{self.title}: training, {event.total_steps} steps (the final curves replace this when the run ends)"
        self.handle = show_widget(box, {"text/plain": live, "text/html": f"<div class='nbtune-dashboard'>{esc(live)}</div>"})
        self._pump_cm = clicks_while_busy([self.widgets["stop"]])
        self._pump = self._pump_cm.__enter__()

    def _on_step(self, e: StepEnded, control: Control) -> None:
        self._run_step = e.run_step
        elapsed = time.monotonic() - self._started
        per_step = elapsed / max(e.run_step, 1)
        self.status = (f"step {e.run_step}/{e.total_steps} (global {e.step}), epoch {e.epoch:.2f}, loss {e.loss:.4f}, "
                       f"lr {e.lr:.2e}, {rate_text(e.examples_per_s, e.tokens_per_s, per_step)}, ETA {_eta(per_step * (e.total_steps - e.run_step))}")
        now = time.monotonic()
        if self._text_mode:
            if now - self._last_draw >= 2 or e.run_step == e.total_steps:
                self._last_draw = now
                print(self.status, flush=True)
        else:
            if now - self._last_status >= STATUS_EVERY or e.run_step == e.total_steps:  # a message per update
                self._last_status = now
                self.widgets["bar"].value = e.run_step
                self.widgets["status"].value = esc(self.status)
            self._draw()
            if now - self._last_poll >= self.poll_every:
                self._last_poll = now
                self._pump()  # a Stop click is handled here, between two steps
        if self.stop_requested:
            control.stop("stopped by the Stop button")

    def _draw(self, force: bool = False) -> None:
        if self._text_mode or not self.widgets:
            return
        now = time.monotonic()
        # A redraw (matplotlib to PNG) costs 50-100 ms on a small CPU. Live redraws are spaced so that, at every
        # moment of the run, drawing has taken at most DRAW_SHARE of it (and at most one every redraw_every s).
        if not force and (now - self._last_draw < self.redraw_every
                          or self._drawn_seconds + self._draw_seconds > DRAW_SHARE * (now - self._started)):
            return
        self.widgets["plot"].value = self.plot.png(self.rows, fitted=False)
        self.widgets["plot"].layout.display = None
        self._last_draw = time.monotonic()
        self._draw_seconds = self._last_draw - now
        if not force:  # forced redraws (an evaluation's result) happen between steps, outside the budget
            self._drawn_seconds += self._draw_seconds
        self.redraws += 1
        if self.metrics:
            self.widgets["metrics"].value = html_table(["metric", "value"],
                                                       [[k, f"{v:.4f}"] for k, v in self.metrics.items()], right={1})

    def _on_end(self, event: FitEnded) -> None:
        reason = event.reason
        if self._pump_cm is not None:
            self._pump_cm.__exit__(None, None, None)
            self._pump_cm = None
        if self._text_mode:
            print(f"{self.title}: {reason} at step {event.step}", flush=True)
            return
        good = event.outcome in (Outcome.COMPLETED, Outcome.EARLY_STOPPED, Outcome.STOPPED)
        self.widgets["bar"].value = self._run_step  # the text and bar are throttled: show where the run ended
        self.status = self.status.split(", ETA ")[0]  # no time left to estimate once the run has ended
        self.widgets["status"].value = esc(self.status)
        self.widgets["bar"].bar_style = "success" if good else "danger"
        self.widgets["stop"].disabled = True
        self.final_bundle = self.static_bundle(f"{reason} at step {event.step}")
        import ipywidgets as w

        # The widget itself shows the final picture too: a page reloaded during the run has lost the output's
        # display id (the frontend never gets the replacement below) but redraws the live widget from the kernel.
        self.widgets["box"].children = (w.HTML(self.final_bundle["text/html"]),)
        if self.handle is not None:
            # Replace the live widget by a static picture: it survives saving and widget-less viewers.
            self.handle.update(self.final_bundle, raw=True)

    def static_bundle(self, outcome: str) -> dict[str, Any]:
        """PNG of the curves plus an HTML/text summary, for the notebook file."""
        png = self.plot.png(self.rows, title=f"{self.title}: {outcome}")
        table = (html_table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in self.metrics.items()], right={1})
                 if self.metrics else "")  # no empty table beside the curves of a run without evaluation
        b64 = base64.b64encode(png).decode()
        # One copy of the image: every notebook frontend and nbconvert prefer text/html over image/png, so the
        # PNG lives only inside the HTML (with alt text); text/plain is the picture for text-only viewers.
        text = f"{self.title}: {outcome}\n{self.status}\n" + "\n".join(f"{k}: {v:.4f}" for k, v in self.metrics.items())
        html = (f"<div class='nbtune-dashboard'><b>{esc(self.title)}</b>: {esc(outcome)}<br>{esc(self.status)}"
                f"<div style='display:flex;flex-wrap:wrap;gap:1em'>"
                f"<img alt='{esc(self.title)} loss curves' src='data:image/png;base64,{b64}' style='max-width:100%'/>"
                f"{table}</div></div>")
        return {"text/html": html, "text/plain": text}
