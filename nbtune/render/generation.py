"""Text and HTML for ``BeforeAfter``: prompts with the base and the tuned model's answers side by side."""

from __future__ import annotations

import textwrap

from nbtune.render.format import esc

CELL = "text-align:left;vertical-align:top;white-space:pre-wrap;padding:0.3em 0.6em;border:1px solid rgba(128,128,128,0.4)"


def before_after_text(result) -> str:
    lines = [f"Base (adapters disabled) and tuned answers, {len(result.prompts)} prompts"]
    for k, (prompt, base, tuned) in enumerate(zip(result.prompts, result.base, result.tuned)):
        lines += [f"-- {k}: {prompt}", textwrap.indent(f"base:  {base or '(nothing)'}", "   "),
                  textwrap.indent(f"tuned: {tuned or '(nothing)'}", "   ")]
    return "\n".join(lines)


def before_after_html(result) -> str:
    head = "".join(f"<th style='{CELL}'>{h}</th>" for h in ("prompt", "base (adapters disabled)", "tuned"))
    rows = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{esc(text) if text else '<i>(nothing)</i>'}</td>"
                         for text in (prompt, base, tuned)) + "</tr>"
        for prompt, base, tuned in zip(result.prompts, result.base, result.tuned))
    return (f"<div class='nbtune-before-after'><table style='border-collapse:collapse;table-layout:fixed;width:100%'>"
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
