"""Text and HTML for Summary and FreezeReport."""

from __future__ import annotations

from nbtune.render.format import badge, esc, html_table, human_bytes, human_count, pct, text_table


def _module_rows(summary) -> list[list[str]]:
    return [
        [m.name, m.type, human_count(m.total), human_count(m.trainable), pct(m.trainable, m.total)]
        for m in summary.counts.by_module
    ]


def _memory_rows(summary) -> list[list[str]]:
    mem = summary.memory
    rows = [["weights", human_bytes(mem.weights)], ["gradients", human_bytes(mem.gradients)],
            ["AdamW state", human_bytes(mem.optimizer)], ["activations", human_bytes(mem.activations)]]
    if mem.runtime:
        rows.append(["runtime (CPU)", human_bytes(mem.runtime)])
    rows.append(["training", human_bytes(mem.training)])
    if mem.evaluation is not None:
        rows.append([f"evaluation (batch {mem.eval_batch_size})", human_bytes(mem.evaluation)])
    if mem.generation is not None:
        rows.append([f"generation (batch {mem.generate_batch})", human_bytes(mem.generation)])
    if len(mem.phases) > 1:
        rows.append([f"run peak ({mem.peak_phase})", human_bytes(mem.total)])
    return rows


def _headline(summary) -> str:
    c = summary.counts
    task = f" ({summary.task})" if summary.task else ""
    parts = f": {human_count(c.base)} base + {human_count(c.adapter)} adapter" if c.adapter else ""
    return (
        f"{summary.model_name}{task}: {human_count(c.trainable)} trainable of {human_count(c.total)} "
        f"parameters ({pct(c.trainable, c.total)}){parts}"
    )


def trains_line(counts) -> str:
    """What trains, by kind: ``trains: adapter 4.9M; Embedding 28.3M (1 module); LlamaRMSNorm 35.1K (61 modules)``."""
    if not counts.trains:
        return "trains: nothing (unfreeze something or attach an adapter)"
    groups = [f"adapter weights {human_count(g.params)}" if g.kind == "adapter" else
              f"{g.kind} {human_count(g.params)} ({g.modules} module{'s' if g.modules != 1 else ''})"
              for g in counts.trains]
    return "trains: " + "; ".join(groups)


def _fit_html(fit) -> str:
    if fit is None:
        return ""
    mark = badge("fits", "ok") if fit.fits else badge("does not fit", "error")
    return f"<div>{mark} {esc(fit.detail)}</div>"


def summary_text(summary) -> str:
    parts = [
        _headline(summary),
        "",
        text_table(["module", "type", "params", "trainable", "%"], _module_rows(summary), right={2, 3, 4}),
        "",
        f"Estimated training memory ({summary.memory.assumptions}):",
        text_table(["part", "size"], _memory_rows(summary), right={1}),
    ]
    parts.insert(1, trains_line(summary.counts))
    if summary.processor:
        parts.insert(1, f"processor: {summary.processor}")
    if summary.fit is not None:
        parts.append(f"Fit: {summary.fit.text}")
    parts += [f"note: {n}" for n in summary.notes]
    return "\n".join(parts)


def summary_html(summary) -> str:
    c = summary.counts
    bar = (
        f'<div style="background:#eee;width:20em;height:8px;border-radius:4px">'
        f'<div style="background:var(--jp-success-color1, #1a7f37);width:{max(c.pct_trainable, 0.5 if c.trainable else 0):.2f}%;'
        f'height:8px;border-radius:4px"></div></div>'
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in summary.notes)
    processor = f"<small>processor: {esc(summary.processor)}</small>" if summary.processor else ""
    return (
        f'<div class="nbtune-summary"><b>{esc(_headline(summary))}</b>{bar}'
        f'<small>{esc(trains_line(summary.counts))}</small><br>{processor}'
        f'<div style="display:flex;gap:2em;align-items:flex-start">'
        f"<div>{html_table(['module', 'type', 'params', 'trainable', '%'], _module_rows(summary), right={2, 3, 4})}</div>"
        f"<div><i>Estimated training memory</i>"
        f"{html_table(['part', 'size'], _memory_rows(summary), right={1})}"
        f"<small>{esc(summary.memory.assumptions)}</small>{_fit_html(summary.fit)}</div></div>"
        f"{'<ul>' + notes + '</ul>' if notes else ''}</div>"
    )


def _freeze_lines(report) -> list[str]:
    verb = "froze" if report.action == "freeze" else "unfroze"
    lines = [
        f"{report.action} {', '.join(map(repr, report.selectors))}: {verb} {len(report.changed)} tensors "
        f"({human_count(report.changed_numel)} params); trainable {human_count(report.trainable_before)} -> "
        f"{human_count(report.trainable_after)} of {human_count(report.total)} "
        f"({pct(report.trainable_after, report.total)})"
    ]
    for sel, names in report.matches.items():
        shown = ", ".join(names[:6]) + (f", ... (+{len(names) - 6})" if len(names) > 6 else "")
        lines.append(f"  {sel!r} matched {shown}")
    lines += [f"  note: {n}" for n in report.notes]
    return lines


def freeze_report_text(report) -> str:
    return "\n".join(_freeze_lines(report))


def freeze_report_html(report) -> str:
    head, *rest = _freeze_lines(report)
    items = "".join(f"<li>{esc(line.strip())}</li>" for line in rest)
    return f'<div class="nbtune-freeze"><b>{esc(head)}</b><ul>{items}</ul></div>'
