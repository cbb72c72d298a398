"""Derivation pages: ``docs/derivations/<loss>.md`` and ``docs/img/<loss>.svg``."""
from __future__ import annotations

import numpy as np
import sympy as sp

from .codegen import banner
from .core import LossSpec
from .functions import plain
from .svg import line_plots


def _tex(e) -> str:
    return e if isinstance(e, str) else sp.latex(e)


def markdown(spec: LossSpec, source: str, *, image_dir: str = "../img", qualified: str | None = None,
             generator: str = "`python -m derivations`") -> str:
    """The derivation page.  ``image_dir``: where the page links its figures (relative to the
    page); ``qualified``: how the page names the loss (default ``refloss.<name>``);
    ``generator``: what stops when a claim fails."""
    lines = [banner(source, "<!--").replace("\n<!--", "\n").rstrip("\n") + " -->", "", f"# {spec.title}", "",
             f"`{qualified or 'refloss.' + spec.name}`: {spec.formula}", ""]
    if spec.params:
        lines += ["| parameter | default | domain | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p.name}` | {p.default if p.kind != 'real' else format(p.default, 'g')} | `{p.rule()}` | {p.doc} |"
                  for p in spec.params]
        lines.append("")
    lines += ["## Derivation", ""]
    for step in spec.steps:
        if step.text:
            lines += [step.text, ""]
        if step.rhs is not None:
            lines += ["$$", f"{_tex(step.lhs)} = {_tex(step.rhs)}", "$$", ""]
        elif step.lhs is not None:
            lines += ["$$", _tex(step.lhs), "$$", ""]
    if spec.constants:
        lines += ["## Constants", "", "Computed once per call from the parameters in decimal arithmetic (40 digits, "
                  "more until two precisions agree) and rounded once to the kernel's precision:", ""]
        lines += [f"- ${sp.latex(c.symbol)} = {sp.latex(c.expr)}$ ({c.doc})" for c in spec.constants]
        lines.append("")
    lines += ["## Evaluation and accuracy", "", spec.accuracy, ""]
    if len(spec.kernels["f64"].branches) > 1:
        lines += ["Generated kernel branches (float64):", ""]
        for b in spec.kernels["f64"].branches:
            cond = "otherwise" if b.condition is None else f"${sp.latex(plain(b.condition))}$"
            lines.append(f"- {cond}: {b.label}" if b.label else f"- {cond}")
    lines += ["", "## Conventions", "", spec.conventions, "", "## Claims checked when generating", "",
              f"{generator} stops if any of these fails:", ""]
    lines += [f"- {claim} ({method})" for claim, method in spec.checks]
    if spec.plots:
        lines += ["", "## Figures"]
        for k, plot in enumerate(spec.plots):
            lines += ["", f"![{plot.title}: {plot.value_title} and {plot.grad_title}]({image_dir}/{figure_name(spec, k)})"]
            if plot.caption:
                lines += ["", plot.caption]
    lines += ["", "## References", ""] + [f"- {r}" for r in spec.references]
    return "\n".join(lines) + "\n"


def _kernel_defaults(spec: LossSpec) -> dict:
    """Parameter defaults as the kernels' floats (bool -> 0/1, None -> its stand-in)."""
    out = {}
    for p in spec.params:
        if p.kind in ("optional", "size") and p.default is None:
            out[p.name] = float(p.none_value)
        elif p.kind == "choice":
            out[p.name] = float(p.choices.index(p.default))
        else:
            out[p.name] = float(p.default)
    return out


def figures(spec: LossSpec, scalar_source: str) -> list:
    """SVG texts of the loss-and-gradient figures, computed with the generated float64
    kernel (curves given as parameter dicts) or with a callable x -> (value, gradient); a
    curve given as ``(label, curve, "dashed")`` is drawn as a grey reference."""
    ns: dict = {}
    exec(compile(scalar_source, f"<generated {spec.name}>", "exec"), ns)
    out = []
    for plot in spec.plots:
        n = 241
        lo, hi = plot.x_range
        xs = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
        values, grads, labels, styles = [], [], [], []
        for label, curve, *style in plot.curves:
            if callable(curve):
                vg = [curve(x) for x in xs]
            elif "path" in curve:  # boxes: evaluate along a path, derivative along its tangent
                args = ns["constants"](**{**_kernel_defaults(spec), **curve["params"]})
                vg = []
                for x in xs:
                    point, tangent = curve["path"](x)
                    with np.errstate(all="ignore"):  # numpy scalars: x/0 -> inf as in the compiled kernels
                        out_ = ns["value_and_grad_f64"](*map(np.float64, point), *args)
                    width = len(spec.kernels["f64"].value_names)  # a vector function plots its first output
                    v, g = float(out_[0]), [float(gi) for gi in out_[width:]]
                    vg.append((v, sum(gi * ti for gi, ti in zip(g, tangent))))
            else:
                args = ns["constants"](**curve)
                vg = [ns["value_and_grad_f64"](x, 0.0, *args)[:2] for x in xs]
            values.append([v for v, _ in vg])
            grads.append([g for _, g in vg])
            labels.append(label)
            styles.append(style[0] if style else "solid")
        out.append(line_plots(plot.title, xs, values, grads, labels, plot.xlabel, plot.grad_title, plot.value_title,
                              styles))
    return out


def figure_name(spec: LossSpec, k: int) -> str:
    return f"{spec.name}.svg" if k == 0 else f"{spec.name}_{k + 1}.svg"
