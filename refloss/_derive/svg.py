"""A tiny deterministic SVG line-plot writer (byte-stable output for the drift test).

Matplotlib's SVG output changes with its version and embeds ids and dates; the
derivation figures are simple line plots, so they are drawn here directly.

A figure is a title over two panels, the value and its gradient against the same x; each
panel has its y-axis label, its x-axis label and its own legend below it.  A curve is solid
(one colour per curve, in order) or dashed grey (a reference drawn for comparison); it is
broken where its value is not finite, and a curve with no finite point at all says so in
the legend instead of silently missing from the panel.
"""
from __future__ import annotations

import math
from xml.sax.saxutils import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
REFERENCE_COLOR = "#7f7f7f"
DASH = "6,4"
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 270, 62, 12, 34, 40  # one panel; the plot area is inside the padding
LEGEND_X, LEGEND_ROW, LEGEND_CHAR = 16, 15, 6.0  # legend: left edge in a panel, row height, width of a character


def _ticks(lo: float, hi: float, n: int = 5) -> list:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def _stroke(k: int, style: str) -> str:
    if style == "dashed":
        return f'stroke="{REFERENCE_COLOR}" stroke-dasharray="{DASH}"'
    return f'stroke="{COLORS[k % len(COLORS)]}"'


def _runs(xs: list, ys: list) -> list:
    """The maximal runs of consecutive points with a finite y (a curve is not joined across a gap)."""
    runs, run = [], []
    for x, y in zip(xs, ys):
        if math.isfinite(y):
            run.append((x, y))
        elif run:
            runs.append(run)
            run = []
    return runs + [run] if run else runs


def _not_drawn(ys: list) -> str:
    """What the legend says of a curve without a finite point ("" if it has one)."""
    if any(math.isfinite(y) for y in ys):
        return ""
    if all(y == math.inf for y in ys):
        return " (+inf: not drawn)"
    if all(y == -math.inf for y in ys):
        return " (-inf: not drawn)"
    if all(math.isnan(y) for y in ys):
        return " (NaN: not drawn)"
    return " (not finite: not drawn)"


def _legend_rows(labels: list) -> list:
    """Legend entries laid out in rows that fit a panel: [[(k, x offset), ...], ...]."""
    rows, row, x = [], [], 0.0
    width = W - LEGEND_X - PAD_R
    for k, label in enumerate(labels):
        w = 26 + LEGEND_CHAR * len(label) + 10
        if row and x + w > width:
            rows.append(row)
            row, x = [], 0.0
        row.append((k, x))
        x += w
    return rows + [row] if row else rows


def _panel(x0: float, ylabel: str, xs: list, series: list, xlabel: str, legend_y: float) -> list:
    """One panel at horizontal offset x0; ``series`` is [(label, ys, style), ...]."""
    ys = [y for _, ysr, _ in series for y in ysr if math.isfinite(y)] or [0.0]
    ylo, yhi = min(ys), max(ys)
    if yhi - ylo < 1e-12:
        ylo, yhi = ylo - 1, yhi + 1
    pad = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad
    xlo, xhi = xs[0], xs[-1]

    def px(x):
        return x0 + PAD_L + (x - xlo) / (xhi - xlo) * (W - PAD_L - PAD_R)

    def py(y):
        return PAD_T + (yhi - y) / (yhi - ylo) * (H - PAD_T - PAD_B)

    out = [f'<rect x="{_fmt(px(xlo))}" y="{_fmt(py(yhi))}" width="{_fmt(px(xhi) - px(xlo))}" '
           f'height="{_fmt(py(ylo) - py(yhi))}" fill="none" stroke="#444"/>']
    for t in _ticks(xlo, xhi):
        out.append(f'<line x1="{_fmt(px(t))}" y1="{_fmt(py(ylo))}" x2="{_fmt(px(t))}" y2="{_fmt(py(yhi))}" stroke="#ddd"/>')
        out.append(f'<text x="{_fmt(px(t))}" y="{_fmt(py(ylo) + 14)}" text-anchor="middle" font-size="10">{t:g}</text>')
    for t in _ticks(ylo, yhi):
        out.append(f'<line x1="{_fmt(px(xlo))}" y1="{_fmt(py(t))}" x2="{_fmt(px(xhi))}" y2="{_fmt(py(t))}" stroke="#ddd"/>')
        out.append(f'<text x="{_fmt(px(xlo) - 4)}" y="{_fmt(py(t) + 3)}" text-anchor="end" font-size="10">{t:g}</text>')
    mid_x, mid_y = (px(xlo) + px(xhi)) / 2, (py(ylo) + py(yhi)) / 2
    out.append(f'<text x="{_fmt(mid_x)}" y="{_fmt(py(ylo) + 30)}" text-anchor="middle" font-size="11">'
               f'{escape(xlabel)}</text>')
    out.append(f'<text x="{_fmt(x0 + 14)}" y="{_fmt(mid_y)}" transform="rotate(-90 {_fmt(x0 + 14)} {_fmt(mid_y)})" '
               f'text-anchor="middle" font-size="11">{escape(ylabel)}</text>')
    for k, (_, ysr, style) in enumerate(series):
        for run in _runs(xs, ysr):
            pts = " ".join(f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in run)
            out.append(f'<polyline points="{pts}" fill="none" {_stroke(k, style)} stroke-width="1.6"/>')
    labels = [label + _not_drawn(ysr) for label, ysr, _ in series]
    for r, row in enumerate(_legend_rows(labels)):
        y = legend_y + r * LEGEND_ROW
        for k, dx in row:
            lx = x0 + LEGEND_X + dx
            out.append(f'<line x1="{_fmt(lx)}" y1="{_fmt(y - 4)}" x2="{_fmt(lx + 22)}" y2="{_fmt(y - 4)}" '
                       f'{_stroke(k, series[k][2])} stroke-width="2"/>')
            out.append(f'<text x="{_fmt(lx + 26)}" y="{_fmt(y)}" font-size="11">{escape(labels[k])}</text>')
    return out


def line_plots(title: str, xs: list, values: list, grads: list, labels: list,
               xlabel: str = "x = pred - target", grad_title: str = "gradient dL/dpred",
               value_title: str = "loss", styles: list | None = None) -> str:
    """Two panels, value and gradient against x, one curve per label, each panel with its
    y-axis label (``value_title``, ``grad_title``) and legend; ``styles`` gives each curve
    "solid" (default) or "dashed" (a grey reference curve); returns SVG text."""
    styles = list(styles or ["solid"] * len(labels))
    rows = max(len(_legend_rows([label + _not_drawn(ys) for label, ys in zip(labels, series)]))
               for series in (values, grads))
    legend_y = H + 8
    height = int(H + 8 + rows * LEGEND_ROW)
    body = [f'<text x="{W}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    body += _panel(0, value_title, xs, list(zip(labels, values, styles)), xlabel, legend_y)
    body += _panel(W, grad_title, xs, list(zip(labels, grads, styles)), xlabel, legend_y)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{height}" '
            f'viewBox="0 0 {2 * W} {height}" font-family="sans-serif">')
    return "\n".join([head, '<rect width="100%" height="100%" fill="white"/>', *body, "</svg>"]) + "\n"
