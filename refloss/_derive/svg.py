"""A tiny deterministic SVG line-plot writer (byte-stable output for the drift test).

Matplotlib's SVG output changes with its version and embeds ids and dates; the
derivation figures are simple line plots, so they are drawn here directly.
"""
from __future__ import annotations

import math

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 260, 48, 12, 28, 36


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


def _panel(x0: float, title: str, xs: list, series: list, xlabel: str) -> list:
    ys = [y for _, ysr in series for y in ysr if math.isfinite(y)] or [0.0]
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

    out = [f'<text x="{_fmt(x0 + W / 2)}" y="16" text-anchor="middle" font-size="13">{title}</text>']
    out.append(f'<rect x="{_fmt(px(xlo))}" y="{_fmt(py(yhi))}" width="{_fmt(px(xhi) - px(xlo))}" '
               f'height="{_fmt(py(ylo) - py(yhi))}" fill="none" stroke="#444"/>')
    for t in _ticks(xlo, xhi):
        out.append(f'<line x1="{_fmt(px(t))}" y1="{_fmt(py(ylo))}" x2="{_fmt(px(t))}" y2="{_fmt(py(yhi))}" stroke="#ddd"/>')
        out.append(f'<text x="{_fmt(px(t))}" y="{_fmt(py(ylo) + 14)}" text-anchor="middle" font-size="10">{t:g}</text>')
    for t in _ticks(ylo, yhi):
        out.append(f'<line x1="{_fmt(px(xlo))}" y1="{_fmt(py(t))}" x2="{_fmt(px(xhi))}" y2="{_fmt(py(t))}" stroke="#ddd"/>')
        out.append(f'<text x="{_fmt(px(xlo) - 4)}" y="{_fmt(py(t) + 3)}" text-anchor="end" font-size="10">{t:g}</text>')
    out.append(f'<text x="{_fmt(x0 + W / 2)}" y="{H - 4}" text-anchor="middle" font-size="11">{xlabel}</text>')
    for k, (label, ysr) in enumerate(series):
        pts = " ".join(f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in zip(xs, ysr) if math.isfinite(y))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS[k % len(COLORS)]}" stroke-width="1.6"/>')
    return out


def line_plots(title: str, xs: list, values: list, grads: list, labels: list,
               xlabel: str = "x = pred - target", grad_title: str = "gradient dL/dpred",
               value_title: str = "loss") -> str:
    """Two panels, loss and gradient against x, one curve per label; returns SVG text."""
    body = _panel(0, f"{title}: {value_title}", xs, list(zip(labels, values)), xlabel)
    body += _panel(W, grad_title, xs, list(zip(labels, grads)), xlabel)
    legend_y = H + 6
    for k, label in enumerate(labels):
        lx = 20 + k * (2 * W - 20) / max(len(labels), 1)
        body.append(f'<line x1="{_fmt(lx)}" y1="{legend_y + 8}" x2="{_fmt(lx + 18)}" y2="{legend_y + 8}" '
                    f'stroke="{COLORS[k % len(COLORS)]}" stroke-width="2"/>')
        body.append(f'<text x="{_fmt(lx + 22)}" y="{legend_y + 12}" font-size="11">{label}</text>')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 26}" '
            f'viewBox="0 0 {2 * W} {H + 26}" font-family="sans-serif">')
    return "\n".join([head, '<rect width="100%" height="100%" fill="white"/>', *body, "</svg>"]) + "\n"
