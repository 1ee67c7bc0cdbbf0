"""Server-rendered SVG charts for the managers' dashboard: no JavaScript build, print well.

Hand-written because the charts are three simple shapes (columns, horizontal bars, a
stacked share bar) and an SVG string needs no library; values are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2f6fb0", "#e07b39", "#4a9d5b", "#b94a48", "#8064a2", "#c9a227", "#3aa6a6")


def columns(
    values: Sequence[int | float],
    labels: Sequence[str],
    title: str,
    width: int = 640,
    height: int = 200,
) -> Markup:
    """Vertical columns (calls per hour)."""
    top = max(values) if values and max(values) > 0 else 1
    n = max(len(values), 1)
    pad_l, pad_b, pad_t = 30, 22, 18
    step = (width - pad_l) / n
    bar = max(step * 0.7, 1.0)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%"><title>{escape(title)}</title>',
        f'<text x="{pad_l}" y="12" class="axis">最大 {top:g}</text>',
    ]
    usable = height - pad_b - pad_t
    for i, (value, label) in enumerate(zip(values, labels, strict=False)):
        h = usable * value / top
        x = pad_l + i * step + (step - bar) / 2
        y = height - pad_b - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value:g}</title></rect>'
        )
        if value:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 2:.1f}" class="val" '
                f'text-anchor="middle">{value:g}</text>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - 6}" class="axis" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width}" y2="{height - pad_b}" '
        'stroke="#999"/></svg>'
    )
    return Markup("".join(parts))


def bars(items: Sequence[tuple[str, int | float]], title: str, width: int = 420) -> Markup:
    """Horizontal bars with labels (by type, topic, district)."""
    row, label_w = 22, 130
    height = max(row * len(items) + 8, 30)
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append('<text x="4" y="20" class="axis">（无数据）</text>')
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = (width - label_w - 50) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" class="axis">'
            f"{escape(str(label)[:12])}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(str(label))}: '
            f"{value:g}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" class="val">{value:g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def share(items: Sequence[tuple[str, int | float]], title: str, width: int = 420) -> Markup:
    """One stacked bar of shares with a legend (bot vs people vs abandoned)."""
    total = sum(v for _, v in items) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} 70"'
        f' width="100%"><title>{escape(title)}</title>'
    ]
    x = 0.0
    for i, (label, value) in enumerate(items):
        w = width * value / total
        parts.append(
            f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="26" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(label)}: {value:g}'
            f"</title></rect>"
        )
        x += w
    lx = 0
    for i, (label, value) in enumerate(items):
        pct = 100 * value / total
        parts.append(
            f'<rect x="{lx}" y="44" width="12" height="12" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{lx + 16}" y="55" '
            f'class="axis">{escape(label)} {value:g}（{pct:.0f}%）</text>'
        )
        lx += width // max(len(items), 1)
    parts.append("</svg>")
    return Markup("".join(parts))
