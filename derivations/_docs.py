"""Derivation pages: ``docs/derivations/<loss>.md`` and ``docs/img/<loss>.svg``."""
from __future__ import annotations

import sympy as sp

from ._codegen import banner
from ._core import LossSpec
from ._svg import line_plots


def _tex(e) -> str:
    return e if isinstance(e, str) else sp.latex(e)


def markdown(spec: LossSpec, source: str) -> str:
    lines = [banner(source, "<!--").replace("\n<!--", "\n").rstrip("\n") + " -->", "", f"# {spec.title}", "",
             f"`refloss.{spec.name}`: {spec.formula}", ""]
    if spec.params:
        lines += ["| parameter | default | domain | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p.name}` | {p.default:g} | `{p.rule()}` | {p.doc} |" for p in spec.params]
        lines.append("")
    lines += ["## Derivation", ""]
    for step in spec.steps:
        if step.text:
            lines += [step.text, ""]
        if step.rhs is not None:
            lines += ["$$", f"{_tex(step.lhs)} = {sp.latex(step.rhs)}", "$$", ""]
        elif step.lhs is not None:
            lines += ["$$", _tex(step.lhs), "$$", ""]
    if spec.constants:
        lines += ["## Constants", "", "Computed once per call from the parameters with 40-digit decimal "
                  "arithmetic and rounded once to the kernel's precision:", ""]
        lines += [f"- ${sp.latex(c.symbol)} = {sp.latex(c.expr)}$ ({c.doc})" for c in spec.constants]
        lines.append("")
    lines += ["## Evaluation and accuracy", "", spec.accuracy, "",
              "Generated kernel branches (float64):", ""]
    for b in spec.kernels["f64"].branches:
        cond = "otherwise" if b.condition is None else f"${sp.latex(b.condition)}$"
        lines.append(f"- {cond}: {b.label}" if b.label else f"- {cond}")
    lines += ["", "## Conventions", "", spec.conventions, "", "## Claims checked when generating", "",
              "`python -m derivations` stops if any of these fails:", ""]
    lines += [f"- {claim} ({method})" for claim, method in spec.checks]
    if spec.plots:
        lines += ["", "## Figure", "", f"![{spec.title}: loss and gradient](../img/{spec.name}.svg)"]
    lines += ["", "## References", ""] + [f"- {r}" for r in spec.references]
    return "\n".join(lines) + "\n"


def figure(spec: LossSpec, scalar_source: str) -> str | None:
    """Loss and gradient curves, computed with the generated float64 scalar kernel."""
    if not spec.plots:
        return None
    ns: dict = {}
    exec(compile(scalar_source, f"<generated {spec.name}>", "exec"), ns)
    plot = spec.plots[0]
    n = 241
    lo, hi = plot.x_range
    xs = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    values, grads, labels = [], [], []
    for label, params in plot.curves:
        args = ns["constants"](**params)
        vg = [ns["value_and_grad_f64"](x, 0.0, *args) for x in xs]
        values.append([v for v, _, _ in vg])
        grads.append([g for _, g, _ in vg])
        labels.append(label)
    return line_plots(plot.title, xs, values, grads, labels)
