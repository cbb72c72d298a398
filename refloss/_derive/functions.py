"""SymPy functions with the derivative conventions refloss generates code for.

PyTorch autograd's conventions at non-differentiable points, as of torch 2.14.1 (the
default, so that the reference and the most common peers agree there):

- ``TMax(a, b)``, ``TMin(a, b)``: ``torch.maximum``/``torch.minimum``; at a tie the
  gradient is split 0.5/0.5.
- ``Clamp0(x)``: ``x.clamp(min=0)`` (= ``clamp_min(0)``, ``relu``); at x = 0 the gradient
  is 0 (factor 0: only x > 0 passes it).  Older torch releases passed it at 0; torch
  2.14.1 does not, and neither does a strict mask ``x > 0`` (torchvision's intersection).

And two devices for conventions peers use in their backward passes:

- ``Detach(x)``: value x, derivative 0 (a quantity computed under ``no_grad``).
- ``Step(x)``: 1 if x > 0 else 0, derivative 0 (a gate).
- ``AtanRatio(w, h, d)``: atan2(w, h) = arctan(w/h) for h > 0, with a gradient finite at
  h = 0; ``d`` = 1 multiplies its gradient by w^2 + h^2 (the DIoU paper's darknet
  simplification of CIoU's dv/dw, dv/dh), d = 0 is the exact derivative.  At w = h = 0 (a
  point), where atan2 has no derivative (no limit either), the gradient is 0 (``AtanSlope``).
- ``Quot(a, b)``: a/b, differentiated as (da - (a/b) db)/b: no b^2, which underflows for a
  tiny stabiliser b = eps (0 < eps < ~1e-154 at zero union: 0/0 where the gradient is 0).
- ``HandDiff(x, key)``: x, differentiated by the rule registered as ``HAND_RULES[key]`` (s ->
  d x/ds, an evaluation form of the derivative chosen for accuracy); whoever registers a rule
  checks it against ``sympy.diff`` of x (e.g. ``derivations/_boxes.py``, in exact arithmetic).
"""
import sympy as sp

HALF = sp.Rational(1, 2)


class TMax(sp.Function):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sp.Heaviside(a - b, HALF) if argindex == 1 else sp.Heaviside(b - a, HALF)


class TMin(sp.Function):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sp.Heaviside(b - a, HALF) if argindex == 1 else sp.Heaviside(a - b, HALF)


class Clamp0(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        return Step(self.args[0])  # 1 if x > 0 else 0: torch 2.14.1's clamp(min=0) gives 0 at x = 0


class Sub(sp.Function):
    """a - b kept as one operation (SymPy would flatten (a - b) + (c - d) into a + c - b - d,
    which loses every digit of a small difference of large coordinates)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.Integer(1) if argindex == 1 else sp.Integer(-1)


class Group(sp.Function):
    """x evaluated on its own, then used as one factor: ``a*Group(a/b)`` prints ``a*(a/b)``
    (SymPy would make it ``a**2/b``, which the printer evaluates as ``(a*a)/b``: a different
    rounding).  Its value and derivative are those of x; a number is returned as it is."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number or x.is_Atom:
            return x
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(1)

    def _latex(self, printer):
        return r"\left(" + printer._print(self.args[0]) + r"\right)"

    def _eval_simplify(self, **kwargs):
        return self.args[0]


class TwoProd(sp.Function):
    """The error-free product of x and y, part 0 the high word (x*y rounded, up to the last bit)
    and part 1 the low word, so that x*y = hi + lo to twice the precision (Veltkamp split,
    Dekker's product).  In exact arithmetic (SymPy, the 60-digit checks) hi = x*y and lo = 0.

    The printed code forms the product from the split halves only (each partial product is
    exact), never fl(x*y) itself: an FMA contraction by the compiler (NVVM's default on CUDA)
    then gives the same result, and the split is x*2^s + x, an exact product added once.  The
    split overflows for |x| above ~2^115 (float32): the caller guards the branch."""

    nargs = 3

    @classmethod
    def eval(cls, x, y, part):
        if x.is_number and y.is_number:
            return x * y if part == 0 else sp.Integer(0)
        return None

    def fdiff(self, argindex=1):
        x, y, part = self.args
        if part != 0 or argindex == 3:
            return sp.Integer(0)
        return y if argindex == 1 else x

    def _eval_simplify(self, **kwargs):
        x, y, part = self.args
        return x * y if part == 0 else sp.Integer(0)


class TwoSum(sp.Function):
    """The error-free sum of x and y (Knuth's TwoSum, additions only), part 0 x + y rounded and
    part 1 its rounding error.  In exact arithmetic hi = x + y and lo = 0."""

    nargs = 3

    @classmethod
    def eval(cls, x, y, part):
        if x.is_number and y.is_number:
            return x + y if part == 0 else sp.Integer(0)
        return None

    def fdiff(self, argindex=1):
        x, y, part = self.args
        return sp.Integer(1) if part == 0 and argindex in (1, 2) else sp.Integer(0)

    def _eval_simplify(self, **kwargs):
        x, y, part = self.args
        return x + y if part == 0 else sp.Integer(0)


class Decide64(sp.Function):
    """x itself, marking a decision: a ``Step`` or ``Heaviside`` whose argument holds it is decided in
    float64 in the float32 kernel (inputs and arguments widened exactly, the argument evaluated as the
    float64 kernel evaluates it, the step's value rounded to float32), so that both kernels are on the
    same side of the kink; everywhere else it is x (the float64 kernel never sees it).  For an argument
    computed from rounded intermediates (an auxiliary box's edge, a rounded IoU against a threshold),
    whose float32 sign is wrong near 0 and moves the gradient or the value by O(1) there."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(1)

    def _eval_simplify(self, **kwargs):
        return self.args[0]


class Eval64(sp.Function):
    """x itself, evaluated in float64 in the float32 kernel (inputs and arguments widened exactly, the
    expression as the float64 kernel evaluates it) and rounded to float32 once (the float64 kernel sees x):
    for a factor whose float32 evaluation from rounded intermediates loses its digits (a logarithm of a
    rounded number near 1, a difference of rounded terms that cancel) and multiplies a gradient.
    ``Eval64(x, g)``: in float64 only where g <= 0 (g evaluated in float32: where x's float32 value is
    accurate enough, g > 0, the float32 value is kept)."""

    nargs = (1, 2)

    def fdiff(self, argindex=1):
        return sp.Integer(1 if argindex == 1 else 0)  # (the guard g only decides where: no derivative of its own)

    def _eval_simplify(self, **kwargs):
        return self.args[0]


class EvalAccurate(Eval64):
    """``Eval64`` whose float64 kernel's double-double evaluation takes exp, log, log1p, powers and the logistic
    functions to ~100 bits (refloss/_dd_functions.py, as the reference kernels do), not f(hi) + f'(hi) lo with
    f's float64 rounding: for a difference that cancels the rounding of a function's float64 value (QFL's
    y - sigma(x) near the optimum, where |D|^(beta - 1) turns its absolute error into a relative one).  The
    float32 kernel evaluates it in float64, as ``Eval64``."""


class GuardMin(sp.Min):
    """SymPy's Min (printed and read as it), never simplified: a guard's minimum of large expressions
    (``Eval64``'s g).  SymPy's Min looks for zeros of every difference of its arguments (factor_terms,
    gcd_terms) each time it is built, and an expression is rebuilt by every ``replace``/``xreplace`` that
    passes through it: seconds a time, 290 s of alpha_iou_loss's derivation for one guard."""

    def __new__(cls, *args, **assumptions):
        assumptions.pop("evaluate", None)
        return sp.Min.__new__(cls, *args, evaluate=False, **assumptions)

    def _latex(self, printer):  # (as SymPy's Min: \min(...), not \guardmin)
        return printer._print(sp.Min(*self.args, evaluate=False))

    def _sympystr(self, printer):
        return printer._print(sp.Min(*self.args, evaluate=False))


class SmallestNormal(sp.Function):
    """The kernel precision's smallest normal number (2^-126 in float32 kernels, 2^-1022 in float64): a guard's
    bound for a part whose float32 trouble is float32's range, not a cancellation float64 shares (alpha-IoU's
    power of a beta v below float32's normal range, normal in float64, which then takes no double-double)."""

    nargs = 0

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class UnitRoundoff(sp.Function):
    """The kernel precision's unit roundoff (2^-24 in float32 kernels, 2^-53 in float64): a guard's bound for a
    part whose error is a fixed number of roundings, tight enough in either precision (alpha-IoU's D where the
    aspect ratios nearly agree)."""

    nargs = 0

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class SinSmall(sp.sin):
    """sin(x) for an x nearly always within pi/4 (a rounding error, such as the rotated losses' angle difference's
    low part): printed as trig.py's polynomial without the argument reduction, libm's beyond pi/4 (the rare path);
    elsewhere (derivative, proofs, double-double, libm kernels) sin itself."""


class CosSmall(sp.cos):
    """cos(x) for an x nearly always within pi/4: as :class:`SinSmall`."""


class Detach(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class Step(sp.Function):
    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class AtanRatio(sp.Function):
    nargs = 3

    def fdiff(self, argindex=1):
        w, h, d = self.args
        if argindex == 1:
            return (1 - d) * AtanSlope(h, w, h) + d * h
        if argindex == 2:
            return -((1 - d) * AtanSlope(w, w, h) + d * w)
        return sp.Integer(0)


class AtanSlope(sp.Function):
    """a/(w^2 + h^2) for a = w or h (atan2's partial derivatives); 0 at w = h = 0, where atan2 has no
    derivative (the convention: a point contributes no gradient through atan2).  Evaluated as
    (a/m)/(m (1 + q^2)), m = max(|w|, |h|), q = min(|w|, |h|)/m (a/m is +-1 or +-q): w^2 + h^2 itself
    overflows or underflows for sides beyond ~2^+-511 (float64), 2^+-63 (float32), where 1/(w^2 + h^2)
    would be inf or a lost digit and a zero factor times it NaN."""

    nargs = 3


class Quot(sp.Function):
    """a/b whose derivative is (da - Quot(a, b) db)/b, one quotient by b (never b^2)."""

    nargs = 2

    def _eval_derivative(self, s):
        a, b = self.args
        da, db = a.diff(s), b.diff(s)
        if db == 0:
            return Quot(da, b)
        # one subtraction: da keeps its own terms (an Add flattened with q db would be reordered)
        return Quot(Sub(da, Quot(a, b) * db), b)


class Select(sp.Function):
    """a where the condition c holds, else b: a choice between two values inside one branch (both evaluated, then
    selected: the CPU loops' vectorised form takes it as a ``select``), where branches of their own would make
    every element evaluate both branches' statements.  Differentiated arm by arm (the condition is held)."""

    nargs = 3

    def _eval_derivative(self, s):
        c, a, b = self.args
        return Select(c, a.diff(s), b.diff(s))


class Times(sp.Function):
    """a*b as one product, a evaluated first: what the code generator writes for ``Quot(a, b)`` where
    a kernel multiplies by a reciprocal of b computed once (see ``Kernel.reciprocal``); never
    differentiated."""

    nargs = 2


class Weighted(sp.Function):
    """w*x, exactly 0 where the weight w is 0 whatever x is: a term of a sum whose factor x may overflow where its
    weight vanishes (softmax cross-entropy's lse(z) - z_j = inf for finite logits more than the largest float
    apart, at a class of target 0): the term is exactly 0 there, not inf*0 = NaN."""

    nargs = 2

    def fdiff(self, argindex=1):
        w, x = self.args
        return x if argindex == 1 else w


class ScaledExp(sp.Function):
    """exp(x) 2^k, k a positive integer constant (at most 64): printed as exp's form (refloss/_derive/expo.py) with k added
    to the power of two it builds from exponent bits, rounded once, so that exp(x) itself is never formed: for a factor
    that is subnormal alone and normal in the product that uses it (softmax cross-entropy's e^(z_j - m), subnormal at
    a logit gap beyond 708 (float32 87), in Y e^(z_j - m)/s with a targets' sum Y > 1), which would have lost its low
    bits.  Where exp(x) is normal its bits are exp(x)'s times 2^k."""

    nargs = 2

    @classmethod
    def eval(cls, x, k):
        if x.is_number:
            return sp.exp(x) * sp.Integer(2)**k
        return None

    def fdiff(self, argindex=1):
        return self if argindex == 1 else sp.Integer(0)


class NanTo0(sp.Function):
    """x, or 0 where x is NaN: a rounding error from TwoSum where the sum overflowed (inf - inf), in a factor
    (1 + e) of a term that is 0 there (softmax cross-entropy's exp(z_j - m)(1 + e) with z_j - m = -inf)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.Integer(1)


class DiffOfDiffs(sp.Function):
    """(p2 - p1) - (t2 - t1) = (p2 - t2) - (p1 - t1), evaluated as the difference of the offsets plus
    their rounding errors (TwoSum, additions only): accurate to a few ulp of the result however much
    the widths or the offsets cancel (boxes of nearly equal size, near each other or far apart)."""

    nargs = 4

    def fdiff(self, argindex=1):
        return sp.Integer((-1, 1, 1, -1)[argindex - 1])


HAND_RULES = {}


class HandDiff(sp.Function):
    """x whose derivative w.r.t. s is ``HAND_RULES[key](s)`` (key a SymPy Integer)."""

    nargs = 2

    def _eval_derivative(self, s):
        x, key = self.args
        if not x.has(s):
            return sp.Integer(0)
        return HAND_RULES[int(key)](s)


def plain(expr):
    """The same expression with the convention functions replaced by ordinary SymPy
    (Max, Min, atan2, identity) -- for proving identities and for the docs."""
    expr = focal_plain(expr).replace(ScaledSigmoidPow, lambda f, u, g: f * PowG(Sigmoid(u), g)) \
        .replace(SoftplusOverSigmoid, lambda z: Softplus(z) / Sigmoid(z))
    return expr.replace(TMax, sp.Max).replace(TMin, sp.Min).replace(Clamp0, lambda x: sp.Max(x, 0)) \
        .replace(Detach, lambda x: x).replace(Decide64, lambda x: x).replace(Eval64, lambda x, *g: x).replace(DiffOfDiffs, lambda p1, p2, t1, t2: (p2 - p1) - (t2 - t1)).replace(HandDiff, lambda x, k: x).replace(Step, lambda x: sp.Heaviside(x, 0)) \
        .replace(AtanRatio, lambda w, h, d: sp.atan2(w, h)).replace(Sub, lambda a, b: a - b).replace(Group, lambda x: x) \
        .replace(TwoProd, lambda x, y, k: x * y if k == 0 else 0).replace(TwoSum, lambda x, y, k: x + y if k == 0 else 0) \
        .replace(Weighted, lambda w, x: w * x).replace(Select, lambda c, a, b: sp.Piecewise((a, c), (b, True))).replace(NanTo0, lambda x: x) \
        .replace(ScaledExp, lambda x, k: sp.exp(x) * sp.Integer(2)**k) \
        .replace(GuardMin, lambda *a: sp.Min(*a, evaluate=False)).replace(SmallestNormal, lambda: sp.Integer(2)**-126).replace(UnitRoundoff, lambda: sp.Integer(2)**-24) \
        .replace(AtanSlope, lambda a, w, h: a / (w**2 + h**2)).replace(Quot, lambda a, b: a / b) \
        .replace(RealAbs, sp.Abs).replace(GapLog, lambda a, c: (a / c)**2 - 1 - sp.log((a / c)**2)).replace(Sigmoid, lambda x: 1 / (1 + sp.exp(-x))).replace(Softplus, lambda x: sp.log(1 + sp.exp(x))) \
        .replace(LogitCE, lambda x, y: y * sp.log(1 + sp.exp(-x)) + (1 - y) * sp.log(1 + sp.exp(x))) \
        .replace(PowG, lambda m, g: m**g).replace(PowGm1, lambda m, g, *p: m ** (g - 1)) \
        .replace(OneMinusPt, lambda x, y: y / (1 + sp.exp(x)) + (1 - y) / (1 + sp.exp(-x))) \
        .replace(Residual, lambda x, y: y / (1 + sp.exp(x)) - (1 - y) / (1 + sp.exp(-x))) \
        .replace(SigmoidProduct, lambda x: 1 / ((1 + sp.exp(x)) * (1 + sp.exp(-x)))) \
        .replace(ResidualMargin, lambda x, y, f: (sp.Abs(y / (1 + sp.exp(x)) - (1 - y) / (1 + sp.exp(-x)))
                                                  - f * (y / (1 + sp.exp(x)) + (1 - y) / (1 + sp.exp(-x))))
                 * (1 + sp.exp(-sp.Abs(x)))) \
        .replace(SigmoidSize, lambda p, x: p * (2 / (1 + sp.exp(-x))) ** 2)


class GapLog(sp.Function):
    """g(a/c) = r^2 - 1 - ln(r^2) >= 0 for r = a/c (a, c > 0): the shape term of a Kullback-Leibler
    divergence of Gaussians, 0 at a = c.  Evaluated from e = r^2 - 1 = ((a - c)/c)((a + c)/c) as the
    series e^2 (1/2 - e/3 + e^2/4 - ...) for |e| < 1/16 (e - log1p(e) keeps only ~eps/e of its relative
    digits there), e - log1p(e) for e >= -1/2 and e - 2 ln(a/c) below (log1p(e) loses r^2 as r -> 0).
    Differentiated as dg/da = 2e/a, dg/dc = -2e/c (no cancellation of 2a/c^2 - 2/a)."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, c = self.args
        e = Group((a - c) / c) * Group((a + c) / c)
        return 2 * e / a if argindex == 1 else -2 * e / c


class RealAbs(sp.Function):
    """|u| of a real u, differentiated as sign(u) du (SymPy's Abs, not knowing that a Sigmoid is
    real, writes re() and im() parts); at u = 0 the factor sign(0) = 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.sign(self.args[0])


class Sigmoid(sp.Function):
    """1 / (1 + exp(-x)), evaluated without overflow for any x."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return Sigmoid(x) * Sigmoid(-x)


class Softplus(sp.Function):
    """ln(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), finite for any x."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class LogitCE(sp.Function):
    """Binary cross-entropy of sigmoid(x) against y, -[y ln p + (1-y) ln(1-p)].

    Evaluated as y softplus(-x) + (1 - y) softplus(x) (non-negative terms: no cancellation
    for confident logits), with derivatives in the forms that keep their digits:
    d/dx = (1 - y) sigma(x) - y sigma(-x), d/dy = -x (softplus(-x) - softplus(x) would
    cancel for small x)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return (1 - y) * Sigmoid(x) - y * Sigmoid(-x)
        return -x


class PowG(sp.Function):
    """m**g for m >= 0 whose derivative g m**(g-1) is taken as 0 where m == 0 (m is then an
    underflowed 1 - p_t whose own derivative is 0 too: the limit of the product)."""

    nargs = 2

    def fdiff(self, argindex=1):
        m, g = self.args
        if argindex == 1:
            return g * PowGm1(m, g)
        return PowG(m, g) * sp.log(m)


class PowGm1(sp.Function):
    """m**(g-1), 0 where m == 0 (see PowG) or g == 0.  It appears only in PowG's derivative
    g m**(g-1), which is 0 at g = 0 (m**0 = 1 for every m): without the second rule an underflowed
    1 - p_t (|logit| ~ 709..745) made it 0 * inf = NaN for gamma = 0.
    ``PowGm1(m, g, p)``, p = PowG(m, g) the power the same program forms: printed as p/m where p is a
    normal number (one division for a second power; the exponent g exact, not fl(g - 1)), as PowGm1(m, g)
    elsewhere (p subnormal or 0, where p/m would keep few digits or none)."""

    nargs = (2, 3)


class ScaledSigmoidPow(sp.Function):
    """f sigma(u)^g (g >= 0), printed from u: sigma(u)^g = e^(-g |u|) d^-g (u < 0) or d^-g, d = 1 + e^-|u|,
    e^(-g |u|) from g |u| = hi + lo split error-free as the square of h = e^(-hi/2) with f d^-g and (1 - lo)
    multiplied in between (f d^-g h h (1 - lo)): neither a rounded sigma raised to the power g (its error
    times g) nor a subnormal sigma^g times a factor f > 1 (the subnormal rounding times f); d^-g is corrected
    for d's rounding.  Never differentiated."""

    nargs = 3


class SoftplusOverSigmoid(sp.Function):
    """softplus(z)/sigma(z) = (1 + e^-z) ln(1 + e^z), about 1 - z for z >> 0 and 1 + e^z/2 for z << 0:
    printed as d (z + l) (z >= 0) or d l/e (z < 0), e = e^-|z|, d = 1 + e, l = log1p(e), and 1 where e
    underflows to 0 (the limit; the quotient would be 0/0).  Never differentiated."""

    nargs = 1


class ResidualMargin(sp.Function):
    """(|D| - f T) d for D = Residual(x, y), T = y sigma(-x) + (1 - y) sigma(x) and d = 1 + e^-|x| > 0: of the sign of
    |D| - f T, for a guard that keeps D where it does not cancel to below f T.  Printed as |N| - f (P + Q) from
    Residual's parts (N = D d, P + Q = T d): no quotient.  Never differentiated."""

    nargs = 3


def plain_residual_margin(x, y, f):
    """ResidualMargin(x, y, f) as SymPy expressions of x and y."""
    return (sp.Abs(Residual(x, y)) - f * OneMinusPt(x, y)) * (1 + sp.exp(-sp.Abs(x)))


class SigmoidProduct(sp.Function):
    """sigma(x) sigma(-x) = e/(1 + e)^2, e = e^-|x| (the derivative of sigma(x) and of -Residual), printed from
    e and d = 1 + e as q - 2 q d_l/d, q = e/(d d), d_l = e - (d - 1) d's rounding error (exact): three roundings
    and e's, where the product of the two sigmoids had five.  Never differentiated."""

    nargs = 1


class Residual(sp.Function):
    """y - sigma(x) = y sigma(-x) - (1 - y) sigma(x) (QFL's D), with d/dx = -sigma(x) sigma(-x) (SigmoidProduct)
    and d/dy = 1.

    Printed over the common denominator d = 1 + e, e = e^-|x|: y sigma(-x) - (1 - y) sigma(x) = (y a - (1 - y)
    b)/(1 + e), (a, b) = (e, 1) for x >= 0 and (1, e) for x < 0, as (N/d)(1 - d_l/d) with d_l = e - (d - 1) the
    rounding error of d (exact, Fast2Sum; d + d_l = 1 + e) and N = (y a - m b) - m_l b, m = 1 - y rounded and
    m_l = (1 - m) - y its error (exact), the products' rounding errors (FMAs, refloss/_fma.py: exact where the
    products do not underflow) and their difference's (TwoSum), all added back: N to about half an ulp, so D keeps
    about an ulp and a half (N's, the quotient's, the correction's second order) besides e's, which no form from a
    rounded e^-|x| removes (an absolute error eps T, T = y sigma(-x) + (1 - y) sigma(x), the documented floor where
    D cancels).  The difference of the rounded sigmoids had three roundings more, each multiplied by T/|D| where D
    cancels.  At the hard targets y = 0 and 1 it is -b/(1 + e) = -sigma(x) and a/(1 + e) = sigma(-x), a quotient and
    the correction (about an ulp).  A subnormal D, or factors formed from it, keep few digits: the kernels evaluate
    one precision up where that matters (QFL's float32 kernel)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return -SigmoidProduct(x)
        return sp.Integer(1)


class OneMinusPt(sp.Function):
    """1 - p_t = y sigma(-x) + (1 - y) sigma(x) for p = sigma(x): non-negative terms, with
    d/dx = sigma(x) sigma(-x) (1 - 2y) and d/dy = sigma(-x) - sigma(x) = -tanh(x/2) (the
    difference would cancel for small x)."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return Sigmoid(x) * Sigmoid(-x) * (1 - 2 * y)
        return -sp.tanh(x / 2)


class SigmoidSize(sp.Function):
    """p (2 sigma(x))^2, the Scaled-YOLOv4 / YOLOv5 box size, with d/dx = 2 p (2 sigma(x))^2 sigma(-x).

    Evaluated as 4 p n / d^2 with d = 1 + e^{-|x|} and n = 1 (x >= 0) or e^{2x} (x < 0), times
    (1 - 2 d_l / d) where d_l, the rounding error of d, is exact (Fast2Sum): squaring d would
    otherwise double its rounding error.  No error-free products, so an FMA contraction by
    the compiler (NVVM's default) cannot break it."""

    nargs = 2

    def fdiff(self, argindex=1):
        p, x = self.args
        if argindex == 1:
            return SigmoidSize(1, x)
        return 2 * SigmoidSize(p, x) * Sigmoid(-x)


def _focal_plain(x, y, a, g):
    return a * (y * sp.log(1 + sp.exp(-x)) + (1 - y) * sp.log(1 + sp.exp(x))) \
        * (y / (1 + sp.exp(x)) + (1 - y) / (1 + sp.exp(-x))) ** g


def _focal_plain_diff(x, y, a, g, argindex):
    u = sp.Dummy("u", real=True)
    args = [x, y]
    args[argindex - 1] = u
    return sp.diff(_focal_plain(*args, a, g), u).subs(u, [x, y][argindex - 1])


class FocalCE(sp.Function):
    """a CE(x, y) (1 - p_t)^g, the sigmoid focal loss of the logit x against the target y with
    the weight a held fixed (alpha_t, or 1).  A literal target 0 or 1 prints the hard-target
    forms in the signed logit z = x (y = 0) or -x (y = 1), with t = |z|, e = exp(-t), d = 1 + e
    and l = log1p(e) (so softplus(z) = max(z, 0) + l and sigma(z) = e/d or 1/d):

        L = a l e^g d^-g (z < 0),  a (z + l) d^-g (z >= 0),

    products of correctly rounded factors, each applied once, e^g as e^(-g t) from g t split
    error-free (pow(e, g) would multiply e's rounding by g; the textbook product rounds
    sigma(x) and raises its error to the power g, then multiplies by a separately rounded
    softplus and a_t).  d^-g is corrected by (1 - g d_l/d), d_l = e - (d - 1) the rounding error
    of d (exact, Fast2Sum; no error-free product, so an FMA contraction cannot break it).
    Any other target prints the general form a CE(x, y) PowG(OneMinusPt(x, y), g)."""

    nargs = 4

    def fdiff(self, argindex=1):
        x, y, a, g = self.args
        if argindex == 1:
            return FocalCEDx(x, y, a, g)
        if argindex == 2:
            return FocalCEDy(x, y, a, g)
        if argindex == 3:
            return FocalCE(x, y, 1, g)
        return FocalCE(x, y, a, g) * sp.log(OneMinusPt(x, y))


class FocalCEDx(sp.Function):
    """d FocalCE / dx.  Hard targets: s a sigma(z)^g (sigma(z) + g softplus(z) sigma(-z)), s = 1 - 2y,
    a sum of non-negative terms: a e^g d^-(g+1) (e + g l) (z < 0), a d^-(g+1) (1 + g (z + l) e)
    (z >= 0)."""

    nargs = 4


class FocalCEDy(sp.Function):
    """d FocalCE / dy at fixed a.  Hard targets: -s a sigma(z)^g R with R = z + g softplus(z)
    tanh(z/2)/sigma(z), two terms of one sign: R = -(t + g (l/e)(1 - e)) (z < 0),
    z + g (z + l)(1 - e) (z >= 0), 1 - e = -expm1(-t).  Where a e^g d^-g is subnormal the product is
    formed as ((a d^-g |R|) h (1 - lo)) h, h = e^(-hi/2), g t = hi + lo split error-free, so that the
    factor |R| (up to ~100) does not magnify a subnormal rounding."""

    nargs = 4


def focal_plain(expr):
    """``expr`` with FocalCE and its derivatives replaced by plain SymPy."""
    return expr.replace(FocalCEDx, lambda x, y, a, g: _focal_plain_diff(x, y, a, g, 1)) \
        .replace(FocalCEDy, lambda x, y, a, g: _focal_plain_diff(x, y, a, g, 2)) \
        .replace(FocalCE, _focal_plain)
