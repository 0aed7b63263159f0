"""The confusion matrix as a heat map and the top losses as a gallery: static HTML (colours by inline style, images
as inline PNG), so a saved notebook shows them as they were; plain text for consoles."""

from __future__ import annotations

from nbtune.render.format import esc, text_table


def confusion_text(c) -> str:
    rows = [[true] + [str(n) for n in row] for true, row in zip(c.labels, c.matrix)]
    confused = ", ".join(f"{t} as {p} ({n})" for t, p, n in c.most_confused()) or "none"
    return (f"confusion matrix (rows: true, columns: predicted), accuracy {c.accuracy:.4f}\n"
            + text_table(["true \\ predicted", *c.labels], rows, right=set(range(1, len(c.labels) + 1)))
            + f"\nmost confused: {confused}")


def confusion_html(c) -> str:
    top = max((n for row in c.matrix for n in row), default=1) or 1
    head = "".join(f'<th style="padding:2px 6px">{esc(name)}</th>' for name in c.labels)
    body = []
    for i, (true, row) in enumerate(zip(c.labels, c.matrix)):
        cells = []
        for j, n in enumerate(row):
            share = n / top
            # the diagonal in blue (right), the rest in red (wrong); darker is more. Translucent cells keep the
            # theme's text colour (readable over white and over a dark theme); the strongest are opaque, with white
            # text (over a translucent colour white text would be too faint in the light theme)
            strong = share > 0.55
            alpha = 1.0 if strong else share
            colour = f"rgba(31,119,180,{alpha:.2f})" if i == j else f"rgba(214,39,40,{alpha:.2f})"
            ink = "#fff" if strong else "inherit"
            cells.append(f'<td style="text-align:right;padding:2px 6px;background:{colour};color:{ink}">{n}</td>')
        body.append(f'<tr><th style="text-align:left;padding:2px 6px">{esc(true)}</th>{"".join(cells)}</tr>')
    confused = ", ".join(f"<b>{esc(t)}</b> as <b>{esc(p)}</b> ({n})" for t, p, n in c.most_confused()) or "none"
    return (f'<div class="nbtune-confusion"><div>Confusion matrix (rows: true, columns: predicted), accuracy '
            f'{c.accuracy:.4f}</div><table style="border-collapse:collapse"><thead><tr><th>true \\ predicted</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table><div>Most confused: {confused}</div></div>')


def _caption(item) -> str:
    return (f"true {item.true}, predicted {item.predicted} ({item.probability:.2f}); "
            f"loss {item.loss:.2f}, p(true) {item.true_probability:.2f}")


def losses_text(t) -> str:
    rows = [[str(i.index), i.true, i.predicted, f"{i.probability:.2f}", f"{i.loss:.3f}",
             str(i.input)[:60] if isinstance(i.input, str) else f"({type(i.input).__name__} image)"]
            for i in t.items]
    return "top losses\n" + text_table(["row", "true", "predicted", "p", "loss", "input"], rows, right={0, 3, 4})


def losses_html(t) -> str:
    cards = []
    for item in t.items:
        if item.thumbnail is not None:
            body = f'<img src="data:image/png;base64,{item.thumbnail}" style="width:96px;height:96px;' \
                   f'image-rendering:pixelated" alt="row {item.index}">'
        else:
            body = f'<div style="max-width:220px;font-size:90%">{esc(str(item.input)[:200])}</div>'
        cards.append(f'<figure style="display:inline-block;margin:4px;vertical-align:top;width:{240 if item.thumbnail is None else 120}px">'
                     f'{body}<figcaption style="font-size:80%">row {item.index}: {esc(_caption(item))}'
                     f'</figcaption></figure>')
    return f'<div class="nbtune-top-losses"><div>Top losses (highest first)</div>{"".join(cards)}</div>'


def image_preview_text(p) -> str:
    lines = [f"{p.count} training images; augmentation: {p.augmentation}"]
    lines += [f"  image {i.index}: label {i.label}, {len(i.views) - 1} augmented views" for i in p.images]
    if p.unreadable:
        lines.append(f"left out {len(p.unreadable)} unreadable image(s): {'; '.join(p.unreadable[:3])}")
    return "\n".join(lines)


def image_preview_html(p) -> str:
    heads = ["evaluation"] + [f"epoch {e}" for e in range(len(p.images[0].views) - 1)] if p.images else []
    head = "".join(f'<th style="font-weight:normal;font-size:80%;padding:2px">{h}</th>' for h in ["label"] + heads)
    rows = []
    for image in p.images:
        cells = "".join(f'<td style="padding:2px"><img src="data:image/png;base64,{v}" alt="image {image.index}, '
                        f'{h}" style="width:96px;height:96px;object-fit:contain;image-rendering:pixelated"></td>'
                        for v, h in zip(image.views, heads))
        rows.append(f'<tr><th style="text-align:left;padding:2px 6px">{esc(str(image.label))}</th>{cells}</tr>')
    left_out = (f"<div>Left out {len(p.unreadable)} unreadable image(s): {esc('; '.join(p.unreadable[:3]))}</div>"
                if p.unreadable else "")
    return (f'<div class="nbtune-image-preview"><div>{p.count} training images; augmentation: '
            f'{esc(p.augmentation)}</div><table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{left_out}</div>')
