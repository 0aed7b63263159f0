"""Text and HTML for ``DataPreview``: rendered examples with trained tokens highlighted and masked ones dimmed."""

from __future__ import annotations

from nbtune.render.format import badge, esc, html_table, text_table

# trained text: a tint of the "ok" badge colour behind the theme's own font colour (readable on light and dark), and
# an underline so the difference survives printing and colour blindness; masked text: the theme's colour, faded
TRAINED_STYLE = "background:rgba(26,127,55,0.22);border-bottom:2px solid #1a7f37;font-weight:600"
MASKED_STYLE = "opacity:0.62"
CUT_STYLE = "opacity:0.45;text-decoration:line-through"


def _stats_rows(preview) -> list[list[str]]:
    stats = preview.length_stats
    share = 100 * preview.trained_tokens / preview.total_tokens if preview.total_tokens else 0
    limit = f"max_length={preview.max_length}" if preview.max_length else "no max_length"
    return [
        ["examples", f"{preview.count:,}"],
        ["tokens per example", " / ".join(f"{k} {v:,.0f}" for k, v in stats.items())],
        ["tokens trained", f"{preview.trained_tokens:,} of {preview.total_tokens:,} ({share:.1f}%)"],
        [f"cut by {limit}", f"{preview.truncated:,}"],
        ["with no trained token (skipped)", f"{preview.no_trained_tokens:,}"],
    ]


def _settings(preview) -> str:
    return f"loss on {preview.settings['loss_on']} turns, {preview.settings['chat_template']} chat template"


def preview_text(preview) -> str:
    lines = [f"Training data preview ({_settings(preview)}); [[...]] = trained tokens, {{cut: ...}} = cut by "
             "max_length", text_table(["", ""], _stats_rows(preview), right={1}), ""]
    for example in preview.examples:
        body = "".join(f"{{cut: {p.text}}}" if p.cut else f"[[{p.text}]]" if p.trained else p.text
                       for p in example.pieces)
        lines += [f"-- example {example.index}: {example.tokens} tokens, {example.trained} trained"
                  + (" (truncated)" if example.truncated else ""), body, ""]
    return "\n".join(lines).rstrip()


def preview_html(preview) -> str:
    legend = (f"<span style='{TRAINED_STYLE}'>trained</span> &nbsp; <span style='{MASKED_STYLE}'>masked (no loss)"
              f"</span> &nbsp; <span style='{CUT_STYLE}'>cut by max_length</span>")
    parts = [f"<div class='nbtune-preview'><b>Training data preview</b> <small>({esc(_settings(preview))})</small>",
             html_table(["", ""], _stats_rows(preview), right={1}), f"<div>{legend}</div>"]
    for example in preview.examples:
        spans = "".join(
            f"<span style='{CUT_STYLE if p.cut else TRAINED_STYLE if p.trained else MASKED_STYLE}'>{esc(p.text)}</span>"
            for p in example.pieces)
        flag = " " + badge("truncated", "warn") if example.truncated else ""
        parts.append(f"<div style='margin-top:0.6em'><small>example {example.index}: {example.tokens} tokens, "
                     f"{example.trained} trained</small>{flag}<pre style='white-space:pre-wrap;margin:0.2em 0;"
                     f"padding:0.4em;border:1px solid rgba(128,128,128,0.4)'>{spans}</pre></div>")
    parts.append("</div>")
    return "".join(parts)
