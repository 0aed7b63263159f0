"""Text and HTML for training results."""

from __future__ import annotations

from pathlib import Path

from nbtune.render.format import esc, html_table, rate_text, text_table


def _metric_rows(metrics: dict[str, float]) -> list[list[str]]:
    return [[k, f"{v:.4f}"] for k, v in metrics.items()]


def loss_trend(losses: list[float]) -> str:
    """How the loss moved, from means over the first and the last tenth of the steps (one batch is noise)."""
    if not losses:
        return ""
    n = min(50, max(1, len(losses) // 10))
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    return f", loss {first:.4f} -> {last:.4f}" + (f" (means of the first and last {n} steps)" if n > 1 else "")


def _headline(run) -> str:
    state = "cancelled" if run.cancelled else run.reason
    trend = loss_trend(run.losses)
    rate = rate_text(run.examples_per_s, run.tokens_per_s, run.seconds / run.steps if run.steps else 0.0)
    return f"run {state}: {run.steps} steps (global step {run.global_step}) in {run.seconds:.1f}s, {rate}{trend}"


def run_text(run) -> str:
    parts = [_headline(run)]
    if run.metrics:
        parts.append(text_table(["metric", "value"], _metric_rows(run.metrics), right={1}))
    parts += run.messages
    if run.run_folder:
        parts.append(_folder_line(run))
    elif run.checkpoint:
        parts.append(f"checkpoint: {run.checkpoint}")
    return "\n".join(parts)


def _folder_line(run) -> str:
    if run.outcome.finished or run.outcome.value == "error":
        return f"run folder: {run.run_folder}"
    return f"run folder: {run.run_folder} (nbtune.resume({Path(run.run_folder).name!r}) continues it)"


def run_html(run) -> str:
    table = html_table(["metric", "value"], _metric_rows(run.metrics), right={1}) if run.metrics else ""
    msgs = "".join(f"<li>{esc(m)}</li>" for m in [*run.messages, *([_folder_line(run)] if run.run_folder else [])])
    return f"<div class='nbtune-run'><b>{esc(_headline(run))}</b>{table}{'<ul>' + msgs + '</ul>' if msgs else ''}</div>"


def metrics_text(metrics: dict[str, float]) -> str:
    return text_table(["metric", "value"], _metric_rows(metrics), right={1})


def _before_after_rows(result) -> list[list[str]]:
    keys = list(dict.fromkeys([*result.before, *result.after]))
    fmt = lambda d, k: f"{d[k]:.4f}" if k in d else ""  # noqa: E731
    return [[k, fmt(result.before, k), fmt(result.after, k)] for k in keys]


def recipe_text(result) -> str:
    parts = [repr(result.session.summary()).splitlines()[0]]
    if result.run is not None:
        parts.append(run_text(result.run).splitlines()[0])
    if result.before or result.after:
        parts.append(text_table(["metric", "before", "after"], _before_after_rows(result), right={1, 2}))
    if result.saved is not None:
        parts.append(repr(result.saved))
    return "\n".join(parts)


def recipe_html(result) -> str:
    parts = [result.session.summary()._repr_html_()]
    if result.run is not None:
        parts.append(f"<p><b>{esc(run_text(result.run).splitlines()[0])}</b></p>")
    if result.before or result.after:
        parts.append(html_table(["metric", "before", "after"], _before_after_rows(result), right={1, 2}))
    if result.saved is not None:
        parts.append(f"<p>{esc(repr(result.saved))}</p>")
    return "<div class='nbtune-recipe'>" + "".join(parts) + "</div>"
