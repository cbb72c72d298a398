"""The generated derivation pages and figures read as written: well-formed LaTeX, the symbols of
the box pages' formulas defined on the page, figures with axis labels and a legend per panel,
and captions that describe what their figures draw (issue 12)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted((REPO / "docs/derivations").glob("*.md"))
FIGURES = sorted((REPO / "docs/img").glob("*.svg"))
BOX_PAGES = ["iou", "iou_loss", "log_iou_loss", "giou", "giou_loss", "diou", "diou_loss", "ciou", "ciou_loss",
             "eiou_loss", "focal_eiou_loss", "focal_l1_eiou_loss"]


def _prose_and_math(text: str) -> tuple:
    """(prose with the math cut out, [displayed formulas], [inline formulas]) of a page; code spans
    are not math."""
    displayed = re.findall(r"^\$\$\n(.*?)\n\$\$$", text, re.S | re.M)
    prose = re.sub(r"^\$\$\n.*?\n\$\$$", "", text, flags=re.S | re.M)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    inline = re.findall(r"\$([^$\n]+)\$", prose)
    return re.sub(r"\$[^$\n]+\$", "", prose), displayed, inline


def latex_problems(tex: str) -> list:
    """What is wrong with a LaTeX formula as SymPy garbles it: unbalanced braces or \\left/\\right,
    parentheses inside a subscript or superscript group (a symbol named "(w_p - i_w)" prints as
    "(w_{p - i w)}"), an empty group."""
    problems = []
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth:
        problems.append("unbalanced braces")
    if len(re.findall(r"\\left\b", tex)) != len(re.findall(r"\\right\b", tex)):
        problems.append("unbalanced \\left/\\right")
    for group in re.findall(r"[_^]\{([^{}]*)\}", tex):
        if "(" in group or ")" in group:
            problems.append(f"parenthesis in a subscript or superscript: {{{group}}}")
        if not group.strip():
            problems.append("empty subscript or superscript")
    return problems


def test_the_checker_catches_the_garbling_of_issue_12():
    sympy = pytest.importorskip("sympy")
    garbled = sympy.latex(sympy.Symbol("(w_p - i_w)") * sympy.Symbol("h_p"))
    assert latex_problems(garbled), garbled
    assert latex_problems("A_p - I = (h_{p - i h)} i_{w} + (w_{p - i w)} h_{p}")
    assert latex_problems("\\frac{a}{b")
    assert latex_problems("\\left( x")
    assert not latex_problems("A_p - I = (w_p - i_w)\\, h_p + i_w\\, (h_p - i_h)")
    assert not latex_problems("\\left.\\frac{dL}{da}\\right|_{a=\\beta^-} = \\{1\\}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_math_is_well_formed(page):
    text = page.read_text()
    prose, displayed, inline = _prose_and_math(text)
    assert text.count("$$") % 2 == 0
    assert "$" not in prose, f"{page.name}: a lone $ (unclosed inline math)"
    for tex in displayed + inline:
        assert not latex_problems(tex), f"{page.name}: {tex!r}: {latex_problems(tex)}"


# what may appear in a box page's formulas without a definition on the page: functions, operators,
# numbers' neighbours, and the derivative symbols
_KNOWN = {"max", "min", "arctan", "ln", "log", "frac", "left", "right", "mathrm", "qquad", "cdot", "partial",
          "nabla", "pi", "sum", "bar", "begin", "end", "cases", "text", "for", "otherwise", "leq", "le", "e",
          "operatorname", "log1p", "infty"}


def _symbols(tex: str) -> set:
    """The names in a formula: commands such as \\rho and \\alpha by their name, identifiers with
    their subscript (c_w, px_1, L_{\\mathrm{EIoU}} as L_EIoU)."""
    tex = re.sub(r"\\mathrm\{(\w+)\}", r"\1", tex)
    tex = re.sub(r"_\{(\w+)(?:,\w+)?\}", r"_\1", tex)
    names = set(re.findall(r"\\([A-Za-z]+)", tex))
    names |= set(re.findall(r"(?<![\\A-Za-z])([A-Za-z]+(?:_[A-Za-z0-9]+)?)", tex))
    return {n for n in names if n not in _KNOWN}


def _defined(text: str) -> set:
    """The names a page defines: the left sides of its equations (displayed, or inline in prose),
    its parameters, and the names its prose introduces as "$X$ is" / "... $X$ (...)" definitions."""
    _, displayed, inline = _prose_and_math(text)
    defined = set()
    for tex in displayed + inline:
        for part in re.split(r",\s*\\qquad|\\qquad", tex):
            if "=" in part:
                defined |= _symbols(part.split("=")[0])
    defined |= set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    # prose such as "width $i_w$", "$c$ is its diagonal", "the parameter `eps`" for epsilon
    defined |= {n for tex in re.findall(r"(?:box is|width|height|area|diagonal|distance|weight|argument|logit|"
                                        r"target|elements|term) \$([^$]+)\$", text) for n in _symbols(tex)}
    defined |= {n for tex in re.findall(r"\$([^$]+)\$ is ", text) for n in _symbols(tex)}
    return defined


@pytest.mark.parametrize("name", BOX_PAGES)
def test_box_page_formulas_use_only_defined_symbols(name):
    """Every name in a displayed formula of a box page is defined on the page (issue 12: the CIoU
    page used rho and c without defining them)."""
    text = (REPO / f"docs/derivations/{name}.md").read_text()
    _, displayed, _ = _prose_and_math(text)
    defined = _defined(text)
    used = set().union(*map(_symbols, displayed))
    # X_i: the element i of a defined X (a sum over the elements i)
    undefined = {n for n in used - defined if not (n.endswith("_i") and {n[:-2], "i"} <= defined)}
    assert undefined == set(), f"{name}.md uses {sorted(undefined)} without defining them"


@pytest.mark.parametrize("figure", FIGURES, ids=lambda p: p.name)
def test_figures_have_axis_labels_and_a_legend_per_panel(figure):
    svg = figure.read_text()
    assert svg.count('transform="rotate(-90') == 2, "a y-axis label on each of the two panels"
    curves = svg.count('stroke-width="1.6"')
    swatches = svg.count('stroke-width="2"')
    assert swatches % 2 == 0 and swatches >= 2, "the same legend under each panel"
    assert curves >= 2


def _figures_with_captions():
    out = []
    for page in PAGES:
        for svg, caption in re.findall(r"^!\[[^\]]*\]\(\.\./img/([\w.]+\.svg)\)\n\n(?!!\[|#)(.*)$", page.read_text(),
                                       re.M):
            out.append((page.name, svg, caption))
    return out


@pytest.mark.parametrize("page, svg, caption", _figures_with_captions(), ids=lambda v: str(v)[:30])
def test_captions_name_what_the_figure_draws(page, svg, caption):
    """A caption that mentions a dashed reference curve has one in its figure, and a figure with
    one says so in its caption; the offsets and heights a caption names are labels of the figure."""
    text = (REPO / "docs/img" / svg).read_text()
    assert ("Dashed:" in caption) == ("stroke-dasharray" in text), (page, svg, caption)
    labels = set(re.findall(r'font-size="11">([^<]+)</text>', text))
    for quantity in ("dy", "height"):
        for value in re.findall(rf"\b{quantity} = ([\d.]+)", caption):
            assert any(label.startswith(f"{quantity} = {value}") for label in labels), (svg, quantity, value)


def test_the_dashed_references_are_the_iou_kernels():
    """The dashed 1 - IoU and IoU curves of the box figures (written out in derivations/_boxes.py)
    are what refloss's iou_loss and iou kernels give along the same paths."""
    pytest.importorskip("sympy")
    import numpy as np

    from derivations import _boxes as B
    from refloss._generated import iou, iou_loss

    for module, reference in ((iou_loss, "1 - IoU"), (iou, "IoU")):
        args = module.constants(eps=0.0)
        for path, curve, xs in [(B.slide_path(d), B.slide_iou(d, reference), np.linspace(-4, 4, 241))
                                for d in B.SLIDE_OFFSETS] + \
                               [(B.aspect_path(h), B.aspect_iou(h, reference), np.linspace(0.05, 4, 241))
                                for h in B.ASPECT_HEIGHTS]:
            for x in map(float, xs):
                point, tangent = path(x)
                out = module.value_and_grad_f64(*map(np.float64, point), *args)
                want = (float(out[0]), sum(float(g) * t for g, t in zip(out[1:], tangent)))
                assert curve(x) == pytest.approx(want, abs=1e-12), (reference, x)
