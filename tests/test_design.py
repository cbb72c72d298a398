"""refloss.design.from_gradient: a user's loss derived from its gradient, checked against
independent formulas (hand integrals, mpmath at 50 digits, refloss's own Smooth L1 and
finite differences), never against values taken from its own output."""
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sp = pytest.importorskip("sympy")
mpmath = pytest.importorskip("mpmath")

import refloss  # noqa: E402
from refloss import _fd  # noqa: E402
from refloss.testing import check_loss  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
a = sp.Symbol("a", nonnegative=True)
beta = sp.Symbol("beta", positive=True)
k = sp.Symbol("k", positive=True)
w = sp.Symbol("w", positive=True)


@pytest.fixture(scope="module")
def design():
    from refloss import design

    return design


@pytest.fixture(scope="module")
def sl1(design):
    return design.from_gradient("sl1", [(a < beta, a / beta), (None, 1)], a, {beta: 1.0})


@pytest.fixture(scope="module")
def log_cosh(design):
    from sympy.codegen.cfunctions import log1p

    # log cosh a without overflow or cancellation: log1p(2 sinh^2(a/2)) below 1 (cosh a - 1 = 2 sinh^2(a/2)),
    # a + log1p(exp(-2a)) - log 2 above (no cosh a to overflow)
    form = sp.Piecewise((log1p(2 * sp.sinh(a / 2) ** 2), a < 1), (a + log1p(sp.exp(-2 * a)) - sp.log(2), True))
    return design.from_gradient("log_cosh", [(None, sp.tanh(a), form)], a, {})


@pytest.fixture(scope="module")
def ramp(design):
    """Three pieces, two breakpoints: g = a/k, then 1 up to k + w, then 1 + (a - k - w)/2."""
    return design.from_gradient("ramp3", [(a < k, a / k), (a <= k + w, 1), (None, 1 + (a - k - w) / 2)], a,
                                {k: 1.0, w: 2.0})


def _ramp_by_hand(x, k, w):
    """The integral of the ramp's gradient, worked out by hand."""
    x = np.abs(x)
    return np.where(x < k, x * x / (2 * k), np.where(x <= k + w, x - k / 2, x - k / 2 + (x - k - w) ** 2 / 4))


def _ramp_gradient_by_hand(x, k, w):
    s, x = np.sign(x), np.abs(x)
    return s * np.where(x < k, x / k, np.where(x <= k + w, 1.0, 1.0 + (x - k - w) / 2))


def _ulps(got, exact, dtype=np.float64):
    """|got - exact| in units in the last place of ``exact`` rounded to ``dtype`` (exact: mpmath)."""
    ref = dtype(float(exact))
    return float(abs(mpmath.mpf(float(got)) - exact) / mpmath.mpf(float(np.spacing(abs(ref)))))


# -- Smooth L1 from its gradient ---------------------------------------------------------------

def test_smooth_l1_expr_is_the_known_closed_form(sl1):
    want = sp.Piecewise((a**2 / (2 * beta), a < beta), (a - beta / 2, True))
    assert [c for _, c in sl1.expr.args] == [c for _, c in want.args]
    for (got, _), (exp, _) in zip(sl1.expr.args, want.args):
        assert sp.simplify(got - exp) == 0
    assert sl1.constants == {sp.Symbol("C_0"): 0, sp.Symbol("C_1"): -beta / 2}
    assert sl1.smooth == {beta: True}
    claims = [c for c, _ in sl1.checks]
    assert "L continuous at a = beta" in claims
    assert any(c.startswith("the gradient is continuous at a = beta") for c in claims)


@pytest.fixture(scope="module")
def sl1_form(design):
    from refloss._derive.functions import Group

    # refloss's own evaluation form of the quadratic piece, (a/2)*(a/beta) (a subnormal result rounded once)
    return design.from_gradient("sl1_form", [(a < beta, a / beta, a * Group(a / beta) / 2), (None, 1)], a, {beta: 1.0})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("b", [1.0, 0.5, 1 / 9, 2.5])
def test_smooth_l1_design_is_bitwise_refloss_smooth_l1(sl1_form, dtype, b):
    """Bit for bit (not merely within 1 ULP): the design, given refloss's evaluation form of the
    quadratic piece, computes the same pieces in the same order, its constant C_1 = -beta/2 is exact."""
    sl1 = sl1_form
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(scale=3 * b, size=500), [0.0, b, -b, np.nextafter(b, 0), 1e-300, 1e8]])
    pred, target = x.astype(dtype), np.zeros_like(x, dtype=dtype)
    v, (dp, dt) = sl1.loss.value_and_grad(pred, target, beta=b, dtype=dtype)
    w_, (wp, wt) = refloss.smooth_l1.value_and_grad(pred, target, beta=b, dtype=dtype)
    assert v.dtype == dtype and dp.dtype == dtype
    np.testing.assert_array_equal(v, w_)
    np.testing.assert_array_equal(dp, wp)
    np.testing.assert_array_equal(dt, wt)


def test_check_loss_passes_between_the_design_and_smooth_l1(sl1):
    assert check_loss(functools.partial(sl1.loss, beta=0.5), "smooth_l1", beta=0.5).ok
    # the other way round: the design is the reference, refloss.smooth_l1 the implementation checked
    assert check_loss(functools.partial(refloss.smooth_l1, beta=0.5), sl1.loss, beta=0.5).ok


def test_check_loss_of_a_numpy_formula_against_the_design(sl1):
    def mine(p, t):
        x = np.abs(p - t)
        return np.where(x < 0.5, x * x, x - 0.25)  # Smooth L1 at beta = 0.5, by hand

    def wrong(p, t):
        x = np.abs(p - t)
        return np.where(x < 0.5, x * x, x - 0.2)  # the constant of the linear piece is off

    assert check_loss(mine, sl1.loss, beta=0.5).ok
    report = check_loss(wrong, sl1.loss, beta=0.5)
    assert not report.ok and any(f.component == "value" for f in report.failures)


def test_value_and_grad_shapes_broadcasting_and_reductions(sl1):
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(3, 1)), rng.normal(size=(1, 4))
    v, (dp, dt) = sl1.loss.value_and_grad(pred, target, beta=0.7)
    assert v.shape == (3, 4) and dp.shape == (3, 1) and dt.shape == (1, 4)
    x = pred - target
    want = np.where(np.abs(x) < 0.7, 0.5 * x * x / 0.7, np.abs(x) - 0.35)
    np.testing.assert_allclose(v, want, rtol=1e-15)
    g = np.where(np.abs(x) < 0.7, x / 0.7, np.sign(x))
    np.testing.assert_allclose(dp, g.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(dt, -g.sum(axis=0, keepdims=True), rtol=1e-14)
    assert sl1.loss(pred, target, beta=0.7, reduction="sum") == pytest.approx(want.sum(), rel=1e-14)
    m, (dpm, _) = sl1.loss.value_and_grad(pred, target, beta=0.7, reduction="mean")
    assert m == pytest.approx(want.mean(), rel=1e-14)
    np.testing.assert_allclose(dpm, g.sum(axis=1, keepdims=True) / 12, rtol=1e-14)
    v32 = sl1.loss(pred.astype(np.float32), target, beta=0.7, dtype=np.float32)
    assert v32.dtype == np.float32
    np.testing.assert_allclose(v32, want, rtol=1e-6)


def test_errors_name_the_argument(sl1):
    ones = np.ones(3)
    with pytest.raises(ValueError, match=r"target\[1\]"):
        sl1.loss(ones, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="beta: must satisfy 0 < beta"):
        sl1.loss(ones, ones, beta=-1.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        sl1.loss(ones, ones, delta=1.0)
    with pytest.raises(ValueError, match="reduction"):
        sl1.loss(ones, ones, reduction="avg")
    with pytest.raises(ValueError, match="device: sl1 is a refloss.design loss and runs on the CPU only"):
        sl1.loss(ones, ones, device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        sl1.loss.value_and_grad(ones, ones, device="cuda")
    assert sl1.loss(ones, np.array([0.0, np.nan, 0.0]), validate=False).shape == (3,)


def test_signature_and_docstring(sl1):
    import inspect

    assert "beta" in inspect.signature(sl1.loss).parameters
    assert "sl1" in sl1.loss.__doc__ and "sl1.md" in sl1.loss.__doc__


# -- log-cosh: an evaluation form proved equal, accurate to a few ULP ---------------------------

def test_log_cosh_expr_is_log_cosh(log_cosh):
    piece = log_cosh.expr  # one piece: SymPy folds Piecewise((f, True)) into f
    assert not isinstance(piece, sp.Piecewise)
    for t in ("0.001", "0.5", "3", "40"):
        assert abs(sp.N((piece - sp.log(sp.cosh(a))).subs(a, sp.Rational(t)), 50)) < 1e-45
    claims = [c for c, _ in log_cosh.checks]
    assert "evaluation form of piece 0 (a < 1) equals the integrated piece" in claims
    assert "evaluation form of piece 0 (otherwise) equals the integrated piece" in claims


@pytest.mark.parametrize("dtype, bar", [(np.float64, 4), (np.float32, 4)])
def test_log_cosh_within_a_few_ulp_of_mpmath(log_cosh, dtype, bar):
    xs = np.concatenate([np.logspace(-8, 3, 150), [0.5, 0.999999, 1.0, 1.000001, 2.0]]).astype(dtype)
    xs = np.concatenate([xs, -xs])
    v, (g, _) = log_cosh.loss.value_and_grad(xs, np.zeros_like(xs), dtype=dtype)
    with mpmath.workdps(50):
        exact_v = [mpmath.log(mpmath.cosh(mpmath.mpf(float(x)))) for x in xs]
        exact_g = [mpmath.tanh(mpmath.mpf(float(x))) for x in xs]
        ulp_v = max(_ulps(got, e, dtype) for got, e in zip(v, exact_v))
        ulp_g = max(_ulps(got, e, dtype) for got, e in zip(g, exact_g))
    assert ulp_v <= bar, ulp_v
    assert ulp_g <= bar, ulp_g


def test_log_cosh_finite_for_large_residuals(log_cosh):
    v, (g, _) = log_cosh.loss.value_and_grad(np.array([1e4, -1e4, 700.0]), np.zeros(3))
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(v, [1e4 - np.log(2), 1e4 - np.log(2), 700 - np.log(2)], rtol=1e-15)
    v32 = log_cosh.loss(np.float32([1e4, 100.0]), np.float32([0, 0]), dtype=np.float32)
    assert np.all(np.isfinite(v32))


# -- a user-defined gradient with two breakpoints ----------------------------------------------

def test_ramp_pieces_are_the_hand_integral(ramp):
    (f0, c0), (f1, c1), (f2, c2) = ramp.expr.args
    assert (c0, c1, c2) == (a < k, a <= k + w, sp.true)
    assert sp.simplify(f0 - a**2 / (2 * k)) == 0
    assert sp.simplify(f1 - (a - k / 2)) == 0
    assert sp.simplify(f2 - (a - k / 2 + (a - k - w) ** 2 / 4)) == 0
    assert ramp.smooth == {k: True, k + w: True}
    assert ramp.loss.info.kink_points({"k": 1.0, "w": 2.0}) == (1.0, 3.0)


@pytest.mark.parametrize("kw", [(1.0, 2.0), (0.3, 0.05), (2.0, 5.0)])
def test_ramp_compiled_equals_the_hand_integral(ramp, kw):
    kk, ww = kw
    x = np.concatenate([np.linspace(-3 * (kk + ww), 3 * (kk + ww), 601), [kk, -kk, kk + ww, -(kk + ww)]])
    v, (dp, dt) = ramp.loss.value_and_grad(x, np.zeros_like(x), k=kk, w=ww)
    np.testing.assert_allclose(v, _ramp_by_hand(x, kk, ww), rtol=4e-16 * 4, atol=1e-300)
    np.testing.assert_allclose(dp, _ramp_gradient_by_hand(x, kk, ww), rtol=4e-16 * 4, atol=1e-300)
    np.testing.assert_array_equal(dt, -dp)


def test_ramp_finite_differences_away_from_kinks(ramp):
    rng = np.random.default_rng(7)
    x = rng.uniform(-8, 8, size=400)
    kinks = np.array([0.0, 1.0, 3.0])
    x = x[np.min(np.abs(np.abs(x)[:, None] - kinks[None, :]), axis=1) > 1e-2]
    t = rng.normal(size=x.shape)
    p = x + t
    h = np.full(x.shape, 1e-4)
    f = functools.partial(ramp.loss, k=1.0, w=2.0)
    _, (dp, dt) = ramp.loss.value_and_grad(p, t, k=1.0, w=2.0)
    for which, got in ((0, dp), (1, dt)):
        fd, est = _fd.gradient(f, (p, t), which, h)
        assert np.all(np.abs(fd - got) <= 1e-8 + 10 * est), np.max(np.abs(fd - got))


def test_log_cosh_finite_differences(log_cosh):
    x = np.linspace(-6, 6, 241)
    x = x[np.abs(x) > 1e-2]
    _, (dp, _) = log_cosh.loss.value_and_grad(x, np.zeros_like(x))
    fd, est = _fd.gradient(log_cosh.loss, (x, np.zeros_like(x)), 0, np.full(x.shape, 1e-4))
    assert np.all(np.abs(fd - dp) <= 1e-9 + 10 * est)


# -- claims that must fail ----------------------------------------------------------------------

def test_a_wrong_evaluation_form_raises(design):
    with pytest.raises(design.DerivationError, match="evaluation form of piece 0"):
        design.from_gradient("bad", [(a < 1, a, a**2 / 3), (None, 1)], a, {})


def test_a_wrong_form_in_one_part_of_a_piecewise_form_raises(design):
    form = sp.Piecewise((a**2 / 2, a < sp.Rational(1, 2)), (a**2 / 2 + sp.Rational(1, 10**6), True))
    with pytest.raises(design.DerivationError, match=r"evaluation form of piece 0 \(otherwise\)"):
        design.from_gradient("bad", [(a < 1, a, form), (None, 1)], a, {})


def test_decreasing_breakpoints_are_refused(design):
    with pytest.raises(design.DerivationError, match="breakpoints must increase"):
        design.from_gradient("bad", [(a < 2, a), (a < 1, 1), (None, 0)], a, {})
    b1, b2 = sp.symbols("b1 b2", positive=True)  # independent: b2 < b1 is admitted
    with pytest.raises(design.DerivationError, match="b1 < b2: not positive"):
        design.from_gradient("bad", [(a < b1, a), (a < b2, 1), (None, 0)], a, {b1: 1.0, b2: 2.0})


def test_a_discontinuous_gradient_is_reported_and_refused_only_if_c1_is_claimed(design):
    d = design.from_gradient("jump", [(a < 1, 2 * a), (None, 1)], a, {})
    assert d.smooth == {1: False}
    assert any(c.startswith("the gradient jumps at a = 1") for c, _ in d.checks)
    assert "gradient jumps" in d.page()
    # the kernel takes the outer piece at a = 1 (a < 1 fails there): its gradient, 1
    v, (g, _) = d.loss.value_and_grad(np.array([1.0, np.nextafter(1.0, 0)]), np.zeros(2))
    np.testing.assert_array_equal(g, [1.0, 2 * np.nextafter(1.0, 0)])
    np.testing.assert_array_equal(v, [1.0, np.nextafter(1.0, 0) ** 2])
    with pytest.raises(design.DerivationError, match="C\\^1 is claimed"):
        design.from_gradient("jump", [(a < 1, 2 * a), (None, 1)], a, {}, c1=True)


@pytest.mark.parametrize("pieces, params, match", [
    ([(a < 1, a), (a < 2, 1)], {}, "the last condition must be None"),
    ([(None, a), (None, 1)], {}, "only the last condition may be None"),
    ([(a > 1, a), (None, 1)], {}, "bound the variable from above"),
    ([(a < k, a)], {k: 1.0}, "the last condition must be None"),
    ([(a < k, a * w), (None, 1)], {k: 1.0}, "unknown symbols \\['w'\\]"),
    ([(a < 1, a), (None, 1)], {sp.Symbol("x", positive=True): 1.0}, "reserved"),
    ([(a < beta, a), (None, beta)], {beta: -1.0}, "outside its domain 0 < beta"),
])
def test_malformed_designs_are_refused(design, pieces, params, match):
    with pytest.raises(ValueError, match=match):
        design.from_gradient("bad", pieces, a, params)


@pytest.mark.parametrize("variable", [sp.Symbol("z"), sp.Symbol("z", real=True), sp.Symbol("z", negative=True)],
                         ids=repr)
def test_a_variable_not_declared_nonnegative_is_refused(design, variable):
    """A probe (2026-12-08): docs/design.md requires the variable nonnegative=True, and a Symbol("z") was taken
    (sp.Abs(z) then refused as a kink, where Abs(a) of a nonnegative a is a)."""
    with pytest.raises(ValueError, match=r"variable: the absolute residual must be declared nonnegative, e\.g\. "
                                         r"sympy\.Symbol\('z', nonnegative=True\)"):
        design.from_gradient("plain", [(None, variable)], variable, {})
    z = sp.Symbol("z", positive=True)
    assert design.from_gradient("plain", [(None, sp.Abs(z))], z, {}).expr == z**2 / 2


def test_bad_names_are_refused(design):
    for name in ("1x", "math", "_x", "class"):
        with pytest.raises(ValueError, match="name"):
            design.from_gradient(name, [(None, a)], a, {})


def test_explicit_domains(design):
    b = sp.Symbol("c", real=True)
    d = design.from_gradient("dom", [(a < b, a / b), (None, 1)], a, {b: 0.5}, domains={b: sp.Interval(sp.Rational(1, 4), 2)})
    assert d.loss.params[0].rule == "1/4 <= c <= 2"
    with pytest.raises(ValueError, match="c: must satisfy"):
        d.loss(np.ones(2), np.zeros(2), c=3.0)
    # without the domain a real c may be negative: the breakpoint 0 < c is not proved
    with pytest.raises(design.DerivationError, match="0 < c"):
        design.from_gradient("dom", [(a < b, a / b), (None, 1)], a, {b: 0.5})


def test_a_domain_bounded_by_another_parameter_is_refused_in_one_line(design):
    """A probe (2026-12-07): a bound that depends on another parameter, sp.Interval(0, alpha), raised SymPy's "Cannot
    convert expression to float" (before that, "cannot determine truth value of Relational"): neither said what to
    do."""
    c, alpha = sp.Symbol("c", positive=True), sp.Symbol("alpha", positive=True)
    with pytest.raises(ValueError, match=r"domains: the domain of c must have numeric bounds, got Interval\(0, alpha\) "
                                         r"\(its bound alpha depends on alpha\): a parameter's domain cannot depend"):
        design.from_gradient("dom", [(a < c, a / c), (None, 1)], a, {c: 1.0, alpha: 2.0},
                             domains={c: sp.Interval(0, alpha)})


@pytest.mark.parametrize("default, domain", [(0.0, None), (0, None), (1.0, sp.Interval(1, 3)), (3.0, sp.Interval(1, 3)),
                                             (0.5, sp.Interval(sp.Rational(1, 2), 2)), (0.5, sp.Interval(0.5, 2))])
def test_a_default_on_a_closed_bound_is_accepted(design, default, domain):
    """A probe (2026-12-08): 'the default c = 0.0 is outside its domain 0 <= c' -- the bound, a SymPy Integer, compared
    with the float default (0.0 == Integer(0) is False in SymPy 1.14), though calls take that value."""
    c = sp.Symbol("c", nonnegative=True)
    d = design.from_gradient("on_bound", [(None, 1 + c * a)], a, {c: default}, domains={c: domain} if domain else None)
    assert d.spec.params[0].default == default
    with pytest.raises(ValueError, match=r"the default c = 1.0 is outside its domain 1 < c <= 3"):
        design.from_gradient("on_bound", [(None, 1 + c * a)], a, {c: 1.0}, domains={c: sp.Interval.Lopen(1, 3)})


# -- the shared path: the project's losses go through it ---------------------------------------

@pytest.mark.parametrize("name, kinks", [("smooth_l1", ("beta",)), ("huber", ("delta",)),
                                         ("balanced_l1", ("beta",)), ("focal_l1", ("1",))])
def test_the_project_losses_defined_by_their_gradient_share_the_path(name, kinks):
    import importlib

    spec = importlib.import_module(f"derivations.{name}").derive()
    assert tuple(map(str, spec.kinks)) == kinks
    claims = [c for c, _ in spec.checks]
    assert any(c.startswith("C^1 at a = ") for c in claims), claims
    assert any(c.startswith("the f64 kernel program computes the derived loss") for c in claims)
    assert any(c.startswith("the f32 kernel program computes the derived loss") for c in claims)


def test_a_kernel_program_that_does_not_compute_the_derivation_is_refused():
    """A planted fault: Smooth L1's derivation with a kernel whose quadratic piece lacks the 1/2."""
    from refloss._derive.core import DerivationError, Param
    from refloss._derive.elementwise import a as ka, kernel
    from refloss._derive.gradient import integrate_gradient

    b = sp.Symbol("beta", positive=True)
    g = integrate_gradient([(ka < b, ka / b), (None, 1)], ka, [Param("beta", b, 1.0, "", lower=sp.Integer(0))])
    bad = kernel([(ka < b, ka * ka / b, ka / b, ""), (None, ka - b / 2, sp.Integer(1), "")], args=(b,))
    with pytest.raises(DerivationError, match="f64 kernel program: value"):
        g.spec("bad", title="bad", kernels={"f64": bad, "f32": bad}, constants=[])


# -- files: page, figure, an importable package ------------------------------------------------

def test_write_gives_an_importable_package_the_page_and_the_figure(sl1, tmp_path):
    paths = sl1.write(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert names == ["sl1.md", "sl1.svg", "sl1/__init__.py", "sl1/_cpu.py", "sl1/_scalar.py"]
    page = (tmp_path / "sl1.md").read_text()
    assert page == sl1.page() and "(./sl1.svg)" in page and "C^1" in page
    assert (tmp_path / "sl1.svg").read_text().lstrip().startswith("<svg")
    for p in ("sl1/__init__.py", "sl1/_scalar.py", "sl1/_cpu.py"):
        head = (tmp_path / p).read_text()[:400]
        assert "Generated by refloss.design.from_gradient('sl1')" in head and "Do NOT edit by hand" in head
    code = ("import json, sys, numpy as np, sl1\n"
            "v, (g, _) = sl1.loss.value_and_grad(np.array([0.2, -3.0]), np.zeros(2), beta=0.5)\n"
            "print(json.dumps({'v': v.tolist(), 'g': g.tolist(), 'sympy': 'sympy' in sys.modules}))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert got == {"v": [0.5 * 0.2**2 / 0.5, 3.0 - 0.25], "g": [0.2 / 0.5, -1.0], "sympy": False}
    assert sl1.write(tmp_path) == paths  # rewriting identical files is a no-op


def test_import_compiles_nothing_and_needs_sympy():
    code = "import sys, refloss.design; print(sorted(m for m in ('numba', 'scipy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    code = ("import sys; sys.modules['sympy'] = None\n"
            "try:\n    import refloss.design\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert 'pip install "refloss[derive]"' in out.stdout


def test_the_design_page_examples_run(capsys):
    """docs/design.md's code blocks run as written, in order, in one namespace."""
    import re

    text = (REPO / "docs" / "design.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    ns: dict = {}
    for code in blocks:
        exec(compile(code, "docs/design.md", "exec"), ns)
    out = capsys.readouterr().out
    assert "Piecewise((a**2/(2*beta), a < beta), (a - beta/2, True))" in out
    assert "DerivationError: breakpoints in increasing order" in out
    assert "DerivationError: evaluation form of piece 0 equals the integrated piece" in out
    assert "C^1 is claimed (c1=True), but the gradient jumps at a = 1: 2 on the left, 1 on the right" in out


def test_a_gradient_sympy_cannot_integrate_needs_an_evaluation_form(design):
    with pytest.raises(design.DerivationError, match="SymPy cannot integrate"):
        design.from_gradient("bad", [(None, sp.exp(a**3))], a, {})


def test_a_gradient_not_integrable_from_zero_is_a_derivation_error():
    # (a probe, 2026-12-07: an IndexError from deep inside the integration)
    import sympy as sp

    from refloss._derive.core import DerivationError
    from refloss.design import from_gradient

    a = sp.Symbol("a", positive=True)
    with pytest.raises(DerivationError, match="no finite limit at 0"):
        from_gradient("inverse", [(None, 1 / a)], a, {})


def test_an_exponent_without_a_sign_is_a_derivation_error_that_says_what_to_do(design):
    """A probe (2026-12-08): a**p for a p without assumptions gave SymPy's NotImplementedError "Don't know how to
    calculate the mrv of ..." from sp.limit (SymPy's integral is a Piecewise on p = -1)."""
    p = sp.Symbol("p")
    with pytest.raises(design.DerivationError, match=r"piece 0: SymPy cannot take the limit at a = 0 of the integral "
                       r".*no sign assumption. Declare one \(e\.g\. sympy\.Symbol\('p', positive=True\)"):
        design.from_gradient("power", [(None, a**p)], a, {p: 1.0})
    q = sp.Symbol("p", positive=True)
    assert design.from_gradient("power", [(None, a**q)], a, {q: 1.0}).expr == a**(q + 1) / (q + 1)


# -- input validation at from_gradient time (a reviewer's reproductions) ------------------------

@pytest.mark.parametrize("pname, what", [
    ("lambda", "keyword"), ("class", "keyword"), ("None", "keyword"), ("True", "keyword"),
    ("float", "builtin"), ("abs", "builtin"), ("range", "builtin"), ("min", "builtin"), ("len", "builtin"),
    ("np", "generated code"), ("math", "generated code"), ("value", "generated code"),
    ("_b", "generated code's own"), ("_t0", "generated code's own"),
])
def test_parameter_names_the_generated_code_cannot_take_are_refused(design, pname, what):
    s = sp.Symbol(pname, positive=True)
    with pytest.raises(ValueError, match=f"params: the name '{pname}' is reserved \\(a .*{what}.*rename"):
        design.from_gradient("kw", [(a < s, a / s), (None, 1)], a, {s: 1.0})


def test_strings_are_read_in_the_design_symbols(design):
    want = sp.Piecewise((a**2 / (2 * beta), a < beta), (a - beta / 2, True))
    for pieces in ([(a < beta, "a/beta"), (None, 1)], [("a < beta", "a/beta"), (None, "1")]):
        d = design.from_gradient("s1", pieces, a, {beta: 1.0})  # "beta": the parameter, not SymPy's beta()
        assert d.expr == want
    assert design.from_gradient("s2", [(None, "a")], a, {}).expr == a**2 / 2
    form = design.from_gradient("s3", [(a < beta, a / beta, "a**2/(2*beta) + C_0"), (None, 1)], a, {beta: 1.0})
    assert form.expr == want


@pytest.mark.parametrize("pieces, name", [
    ([("a < beta", "a/beta"), (None, 1)], "beta"), ([(a < 1, "a*gamma"), (None, 1)], "gamma"),
    ([(a < 1, a), (None, "zeta")], "zeta"), ([(a < 1, "a/N"), (None, 1)], "N"), ([(a < 1, "a*bta"), (None, 1)], "bta"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_an_undeclared_name_in_a_string_is_named_even_where_sympy_has_a_function_of_that_name(design, pieces, name):
    """A probe (2026-12-08): an undeclared 'beta' gave "'<' not supported between instances of 'Symbol' and
    'FunctionClass'" (SymPy's beta function), while 'bta' gave the clear message."""
    with pytest.raises(ValueError, match=f"unknown symbols \\['{name}'\\]; declare them in params"):
        design.from_gradient("undeclared", pieces, a, {})
    # called, a name is the function; an attribute's object (S.Half) and the constants are read as before
    d = design.from_gradient("called", [(None, "S.Half*exp(-a) + pi*a")], a, {})
    assert sp.simplify(d.expr - (sp.Rational(1, 2) - sp.exp(-a) / 2 + sp.pi * a**2 / 2)) == 0


def test_float_numbers_are_the_rational_of_their_decimal(design):
    d = design.from_gradient("f1", [(a < 0.1, a / 0.1), (None, 1)], a, {})
    assert d.expr == sp.Piecewise((5 * a**2, a < sp.Rational(1, 10)), (a - sp.Rational(1, 20), True))
    np.testing.assert_array_equal(d.loss(np.array([0.05, 1.0]), 0.0), [5 * 0.05**2, 1.0 - 0.05])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_defaults_are_refused(design, bad):
    with pytest.raises(ValueError, match="params: the default of beta must be finite"):
        design.from_gradient("n", [(a < beta, a / beta), (None, 1)], a, {beta: bad})


@pytest.mark.parametrize("g", [sp.Abs(a - 1), sp.Min(a, 1), sp.Max(a, 1), sp.Piecewise((a, a < 1), (1, True))])
def test_gradients_that_hide_a_kink_are_refused(design, g):
    with pytest.raises(ValueError, match="split the gradient into pieces at the kink"):
        design.from_gradient("kink", [(None, g)], a, {})


@pytest.mark.parametrize("title", ['Triple """ quote', "Back\\slash \\N{x}", 'ends in "', "tab\tand\rcr"])
def test_any_title_makes_valid_modules(design, title, tmp_path):
    d = design.from_gradient("titled", [(None, a)], a, {}, title=title)
    for rel, text in d.files().items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")
    assert d.loss(np.array([2.0]), 0.0)[0] == 2.0
    d.write(tmp_path)
    code = "import sys, titled; sys.stdout.write(repr(titled.__doc__.partition(': a loss designed')[0]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == repr(title)


_PICKLE_CHILD = ("import pickle, sys, numpy as np\n"
                 "loss = pickle.loads(sys.stdin.buffer.read())\n"
                 "print(float(loss(np.array([0.5]), np.array([0.0]), beta=0.5)[0]), 'sympy' in sys.modules)\n")


def test_a_design_loss_pickles_to_another_process(sl1, tmp_path):
    import pickle

    assert pickle.loads(pickle.dumps(sl1.loss)) is sl1.loss
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # from the design cache (not on the child's sys.path)
    out = subprocess.run([sys.executable, "-c", _PICKLE_CHILD], input=pickle.dumps(sl1.loss), env=env,
                         capture_output=True, check=True, cwd=tmp_path)
    assert out.stdout.decode().split() == ["0.25", "False"]
    # a written package, imported from its folder
    sl1.write(tmp_path / "pkg")
    sys.path.insert(0, str(tmp_path / "pkg"))
    try:
        import importlib

        written = importlib.import_module("sl1")
        blob = pickle.dumps(written.loss)
    finally:
        sys.path.remove(str(tmp_path / "pkg"))
        sys.modules.pop("sl1", None)
        sys.modules.pop("sl1._scalar", None)
        sys.modules.pop("sl1._cpu", None)
    out = subprocess.run([sys.executable, "-c", _PICKLE_CHILD], input=blob, env=env, capture_output=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.decode().split() == ["0.25", "False"]


@pytest.mark.parametrize("name", ["smooth_l1", "giou_loss", "huber", "torch", "torchvision", "jax", "scipy", "mpmath",
                                  "pytest"])
def test_names_of_refloss_losses_and_of_packages_are_refused(design, name):
    with pytest.raises(ValueError, match=f"name: '{name}' (is the name of refloss's own loss|would shadow)"):
        design.from_gradient(name, [(None, a)], a, {})


def test_an_installed_module_name_is_refused_but_a_written_design_is_not(design, tmp_path, monkeypatch):
    (tmp_path / "handmade.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="name: 'handmade' is an importable module"):
        design.from_gradient("handmade", [(None, a)], a, {})
    design.from_gradient("rewritten", [(None, a)], a, {}).write(tmp_path)
    design.from_gradient("rewritten", [(None, 2 * a)], a, {}).write(tmp_path)  # its own earlier package: fine


def test_write_does_not_overwrite_files_refloss_did_not_write(sl1, tmp_path):
    (tmp_path / "sl1").mkdir()
    mine = tmp_path / "sl1" / "__init__.py"
    mine.write_text("# my own package\n")
    with pytest.raises(FileExistsError, match="not written by refloss.design.*overwrite=True"):
        sl1.write(tmp_path)
    assert mine.read_text() == "# my own package\n" and not (tmp_path / "sl1" / "_cpu.py").exists()
    paths = sl1.write(tmp_path, overwrite=True)
    assert mine in paths and "Generated by refloss.design" in mine.read_text()
    assert sl1.write(tmp_path) == paths  # what refloss wrote, it rewrites


@pytest.mark.parametrize("pname", ["b", "lo", "hi"])
def test_a_parameter_named_like_the_parallel_driver_s_locals_computes_right(design, pname):
    """The parallel driver's own names were b, lo, hi (and n, bad: reserved anyway): a parameter b read the block index above
    SERIAL_BELOW elements (silently wrong values; found by a reviewer). Its names now start with _, as the block
    functions' do, and such parameters are ordinary."""
    s = sp.Symbol(pname, positive=True)
    d = design.from_gradient(f"p_{pname}", [(a < s, a / s), (None, 1)], a, {s: 2.0})
    x = np.linspace(0.0, 5.0, 40001)
    want = np.where(x < 1.5, x**2 / 3.0, x - 0.75)  # s = 1.5: a^2/(2s), then a - s/2
    np.testing.assert_allclose(d.loss(x, 0.0, **{pname: 1.5}), want, rtol=1e-15, atol=1e-300)
