"""Text and HTML for training results."""

from __future__ import annotations

from .format import esc, html_table, text_table


def _metric_rows(metrics: dict[str, float]) -> list[list[str]]:
    return [[k, f"{v:.4f}"] for k, v in metrics.items()]


def _headline(run) -> str:
    state = "cancelled" if run.cancelled else run.reason
    losses = run.losses
    trend = f", loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    return (f"run {state}: {run.steps} steps (global step {run.global_step}) in {run.seconds:.1f}s, "
            f"{run.examples_per_s:.1f} examples/s{trend}")


def run_text(run) -> str:
    parts = [_headline(run)]
    if run.metrics:
        parts.append(text_table(["metric", "value"], _metric_rows(run.metrics), right={1}))
    parts += run.messages
    if run.checkpoint:
        parts.append(f"checkpoint: {run.checkpoint}")
    return "\n".join(parts)


def run_html(run) -> str:
    table = html_table(["metric", "value"], _metric_rows(run.metrics), right={1}) if run.metrics else ""
    msgs = "".join(f"<li>{esc(m)}</li>" for m in run.messages)
    return f"<div class='nbtune-run'><b>{esc(_headline(run))}</b>{table}{'<ul>' + msgs + '</ul>' if msgs else ''}</div>"


def metrics_text(metrics: dict[str, float]) -> str:
    return text_table(["metric", "value"], _metric_rows(metrics), right={1})
