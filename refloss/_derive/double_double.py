"""Double-double evaluation of an expression in a float64 kernel: what a float32 kernel's float64
parts (``Kernel.wide``, ``Eval64``) are one precision up.

A float64 kernel whose wide output's terms cancel (Focal-EIoU's two product-rule terms on thin
boxes, to 1/5000 of their size) or whose ``Eval64`` part is a logarithm of a number near 1 (Focal-L1
of an EIoU value near 1/beta) loses digits that no float64 form keeps.  There, the expression is
evaluated in double-double arithmetic: each value a pair (hi, lo) of float64 numbers, hi + lo
carrying about 106 bits (Dekker, "A floating-point technique for extending the available precision",
Numer. Math. 18, 1971; the algorithms of Joldes, Muller and Popescu, "Tight and rigorous error
bounds for basic building blocks of double-word arithmetic", ACM TOMS 44, 2017):

- sums with Knuth's TwoSum, products with Dekker's TwoProd (Veltkamp's split, the printer's
  ``_split``: the same result when a compiler contracts a product and a sum into an FMA), quotients
  by one correction step; numbers that are not float64 numbers (1/3) as pairs;
- comparisons (max, min, steps, |x|, sign) on the pair: a normalised pair has the sign of hi;
- any other function f (exp, log, pow, ...) as f(hi) + f'(hi) lo, f(hi) printed as the float64
  kernel prints it: its value has float64's rounding relative to itself (not 106 bits), but its
  argument's digits are kept (ln x of x = 1 - 6e-5 known to 106 bits: 53 bits of ln x).  So the
  expression must cancel only in its rational part, a function's value shared by the terms that
  cancel (SymPy's d(x^g) = g x^g/x does: one pow for both product-rule terms).

The result is hi, float64's rounding of hi + lo.  Veltkamp's split overflows for |x| above ~2^996:
the caller keeps the float64 result where hi is not finite.
"""
import sympy as sp

from sympy.codegen.cfunctions import log1p

from .functions import (AtanRatio, AtanSlope, Clamp0, Decide64, DiffOfDiffs, Detach, Eval64, FocalCE, FocalCEDx,
                        FocalCEDy, Group, HandDiff, LogitCE, OneMinusPt, PowG, PowGm1, Quot, RealAbs, Residual, ResidualMargin, SigmoidProduct, plain_residual_margin, ScaledSigmoidPow, Select, Sigmoid, SmallestNormal, Softplus, SoftplusOverSigmoid, Step, Sub, Times, TMax, TMin, TwoProd, TwoSum,
                        UnitRoundoff)

# functions whose value is their first argument's
_IDENTITY = (Group, Detach, Decide64, Eval64, HandDiff)
# functions of the sign of their argument (0 or 1 or a constant, exact)
_SIGN = (sp.Heaviside, Step, sp.sign)


# the partial derivatives of functions whose fdiff is a gradient convention rather than the derivative
_TRUE_PARTIALS = {AtanRatio: lambda w, h, d: (AtanSlope(h, w, h), -AtanSlope(w, w, h), sp.Integer(0))}


class DoubleDouble:
    """Lowers SymPy expressions to double-double statements through a :class:`KernelPrinter` (float64):
    :meth:`lower` returns the printed names (hi, lo) of an expression's value, lo None where it is 0;
    the statements are the printer's pending ones (``take_statements``).  ``known``: {symbol: (hi, lo)}
    of the common subexpressions lowered so far; any other symbol is a float64 input (lo 0)."""

    def __init__(self, printer, strict: bool = True, accurate: bool = False, fma: bool = False):
        if printer.precision != "f64":
            raise ValueError("double-double evaluation is for float64 kernels")
        self.p = printer
        self.known: dict = {}
        # strict: a function whose derivative SymPy does not know is an error (its argument's low part would be
        # dropped); otherwise its value is f(hi) (a reference that only screens: a few ulps there)
        self.strict = strict
        # accurate: exp, expm1, log, log1p, non-integer powers, tanh, sigmoid, softplus, the cross-entropy on logits
        # and the focal forms (FocalCE, its derivatives, 1 - p_t) to
        # ~100 bits (refloss/_dd_functions.py, called as ``_ddf.<name>``), not f(hi) + f'(hi) lo with f's float64
        # rounding (the reference kernels of losses whose bars are a few ulps of the value)
        self.accurate = accurate
        self._exps: dict = {}  # |u| -> e^-|u| and 1 + e^-|u| (double-double), for the logistic functions of u and -u
        # fma: products' error terms by an FMA (``_fma``, refloss/_fma.py: exact, two operations), not Dekker's split
        # halves (whose middle sum rounds, 2^-79 of the product): the reference modules, whose results screen the
        # float64 kernels and need not be the kernels' own bits
        self.fma = fma

    # -- the building blocks (names of printed float64 values; lo None: 0)
    def _a(self, code: str) -> str:
        return self.p.assign("dd", code)

    def _two_sum(self, a: str, b: str) -> tuple:
        s = self._a(f"{a} + {b}")
        v = self._a(f"{s} - {a}")
        return s, self._a(f"({a} - ({s} - {v})) + ({b} - {v})")

    def _fast(self, a: str, b: str) -> tuple:
        """(a + b rounded, its error) for |a| >= |b| (Fast2Sum): a normalised pair."""
        s = self._a(f"{a} + {b}")
        return s, self._a(f"{b} - ({s} - {a})")

    def _two_prod(self, a: str, b: str) -> tuple:
        """a*b as a pair, from the split halves (exact partial products; the middle sum's rounding,
        2^-79 of the product, is the only error), or (``fma``) the product and its exact error."""
        if self.fma:
            hi = self._a(f"{a}*{b}")
            return hi, self._a(f"_fma({a}, {b}, -{hi})")
        (ah, al), (bh, bl) = self.p._split(a), self.p._split(b)
        p1 = self._a(f"{ah}*{bh}")
        p2 = self._a(f"{ah}*{bl} + {al}*{bh}")
        hi = self._a(f"{p1} + {p2}")
        return hi, self._a(f"({p2} - ({hi} - {p1})) + {al}*{bl}")

    def add(self, x: tuple, y: tuple) -> tuple:
        (xh, xl), (yh, yl) = x, y
        s, e = self._two_sum(xh, yh)
        if xl is None and yl is None:
            return s, e
        if xl is None or yl is None:
            return self._fast(s, self._a(f"{e} + {xl if yl is None else yl}"))
        t, f = self._two_sum(xl, yl)
        s, e = self._fast(s, self._a(f"{e} + {t}"))
        return self._fast(s, self._a(f"{e} + {f}"))

    def neg(self, x: tuple) -> tuple:
        h, l = x
        return self._a(f"-{h}"), None if l is None else self._a(f"-{l}")

    def mul(self, x: tuple, y: tuple) -> tuple:
        (xh, xl), (yh, yl) = x, y
        h, l = self._two_prod(xh, yh)
        cross = [f"{xh}*{yl}"] * (yl is not None) + [f"{xl}*{yh}"] * (xl is not None)
        if not cross:
            return h, l
        return self._fast(h, self._a(f"{l} + ({' + '.join(cross)})"))

    def div(self, x: tuple, y: tuple) -> tuple:
        """x/y: q1 = xh/yh, then q2 = (x - q1 y)/yh (the remainder in double-double)."""
        q1 = self._a(f"{x[0]}/{y[0]}")
        r = self.add(x, self.neg(self.mul(y, (q1, None))))
        return self._fast(q1, self._a(f"{r[0]}/{y[0]}"))

    def select(self, condition: str, x: tuple, y: tuple) -> tuple:
        zero = self.p._literal(0)
        h = self._a(f"{x[0]} if {condition} else {y[0]}")
        if x[1] is None and y[1] is None:
            return h, None
        return h, self._a(f"{x[1] or zero} if {condition} else {y[1] or zero}")

    def greater(self, x: tuple, y: tuple) -> str:
        """x > y for normalised pairs (hi first, then lo)."""
        zero = self.p._literal(0)
        if x[1] is None and y[1] is None:
            return self._a(f"{x[0]} > {y[0]}")
        return self._a(f"({x[0]} > {y[0]}) | (({x[0]} == {y[0]}) & ({x[1] or zero} > {y[1] or zero}))")

    def number(self, v) -> tuple:
        """A constant as (its float64 rounding, the rounding of the rest): 1/3, 4/pi^2 to ~106 bits."""
        h = float(sp.sympify(v).evalf(60))
        lo = float((v - sp.Rational(h)).evalf(60))
        return self.p._literal(sp.Float(h, 60)), None if lo == 0 else self.p._literal(sp.Float(lo, 60))

    # -- expressions
    def lower(self, e) -> tuple:
        if e in self.known:
            return self.known[e]
        if isinstance(e, PowGm1) and len(e.args) == 3:  # (the shared power is a float64 kernel's shortcut)
            return self.lower(PowGm1(*e.args[:2]))
        if isinstance(e, Residual):  # the difference of its terms, each to ~106 bits (accurate: ~100 bits)
            x, y = e.args
            return self.lower(y * Sigmoid(-x) - (1 - y) * Sigmoid(x))
        if isinstance(e, ResidualMargin):
            return self.lower(plain_residual_margin(*e.args))
        if isinstance(e, SigmoidProduct):
            return self.lower(Sigmoid(e.args[0]) * Sigmoid(-e.args[0]))
        if e in (sp.nan, sp.oo, -sp.oo, sp.zoo):
            return self.p._print(e), None
        if isinstance(e, (sp.core.relational.Relational, sp.And, sp.Or, sp.Not)):  # a condition (a Select's)
            return self._a(self._condition(e)), None
        if isinstance(e, (SmallestNormal, UnitRoundoff)):  # (the printer's precision's: the kernel's decisions)
            return self.p._print(e), None
        if e.is_Number or (e.is_number and not e.free_symbols):
            return self.number(e)
        if e.is_Symbol:
            return e.name, None
        if e.is_Add:
            out = self.lower(e.args[0])
            for a in e.args[1:]:
                out = self.add(out, self.lower(a))
            return out
        if e.is_Mul:
            coeff, factors = e.as_coeff_mul()
            out = None
            for f in factors:
                v = self.lower(f)
                out = v if out is None else self.mul(out, v)
            if coeff == -1:
                return self.neg(out)
            if coeff != 1:
                out = self.mul(self.number(coeff), out)
            return out
        if e.is_Pow and e.exp.is_Integer:
            n = int(e.exp)
            base = self.lower(e.base)
            out = base
            for _ in range(abs(n) - 1):
                out = self.mul(out, base)
            return self.div(("1.0", None), out) if n < 0 else out
        if isinstance(e, _IDENTITY):
            return self.lower(e.args[0])
        if isinstance(e, Sub):
            return self.add(self.lower(e.args[0]), self.neg(self.lower(e.args[1])))
        if isinstance(e, DiffOfDiffs):
            p1, p2, t1, t2 = (self.lower(a) for a in e.args)
            return self.add(self.add(p2, self.neg(p1)), self.neg(self.add(t2, self.neg(t1))))
        if isinstance(e, Quot):
            return self.div(self.lower(e.args[0]), self.lower(e.args[1]))
        if isinstance(e, Times):
            return self.mul(self.lower(e.args[0]), self.lower(e.args[1]))
        if isinstance(e, SoftplusOverSigmoid):  # 1 to ~2^-170 below z = -120 (1 + e^z/2): the limit, not 0/0
            z = e.args[0]
            lit = self.p._literal
            return self.select(self.greater((lit(-120), None), self.lower(z)), (lit(1), None),
                               self.lower(Softplus(z) / Sigmoid(z)))
        if isinstance(e, ScaledSigmoidPow):  # f e^(-g softplus(-u)), the exponential halved and f between the halves
            f, u, g = e.args  # (as the kernel: a power near the subnormal range loses a pair's low part, and the
            half = sp.exp(-g * Softplus(-u) / 2)  # twin erred by 241 ulps there, VFL's held d/dlogits at logit -236)
            return self.lower(Times(Times(f, half), half))
        if isinstance(e, (TwoSum, TwoProd)):
            x, y, part = e.args
            if part != 0:
                return self.p._literal(0), None
            return (self.add if isinstance(e, TwoSum) else self.mul)(self.lower(x), self.lower(y))
        if isinstance(e, (TMax, TMin)):
            x, y = self.lower(e.args[0]), self.lower(e.args[1])
            return self.select(self.greater(x, y) if isinstance(e, TMax) else self.greater(y, x), x, y)
        if isinstance(e, Clamp0):
            x = self.lower(e.args[0])
            zero = (self.p._literal(0), None)
            return self.select(self.greater(x, zero), x, zero)
        if isinstance(e, (RealAbs, sp.Abs)):
            x = self.lower(e.args[0])
            return self.select(self._a(f"{x[0]} < {self.p._literal(0)}"), self.neg(x), x)
        if isinstance(e, _SIGN):  # the sign of a normalised pair is hi's
            arg = sp.Symbol(self.lower(e.args[0])[0], real=True)
            return self._a(self.p._print(e.func(arg, *e.args[1:]))), None
        if isinstance(e, Select):  # the condition from the pairs' high words
            c, a, b = e.args
            cond = self._a(self._condition(c))
            return self.select(cond, self.lower(a), self.lower(b))
        if isinstance(e, AtanSlope):  # a/(w^2 + h^2), 0 at w = h = 0 (rational: in pairs)
            a, w, h = (self.lower(v) for v in e.args)
            d = self.add(self.mul(w, w), self.mul(h, h))
            zero = (self.p._literal(0), None)
            return self.select(self._a(f"{d[0]} == {self.p._literal(0)}"), zero, self.div(a, d))
        if isinstance(e, sp.Function) or e.is_Pow:
            return self._function(e)
        raise ValueError(f"double-double evaluation of {type(e).__name__} is not implemented: {e}")

    def _condition(self, c) -> str:
        """A condition (relations joined by And, Or, Not) printed with each side's high word: a select between
        pairs, decided as the kernel decides it where the sides are float64 numbers."""
        if c.is_Symbol:  # a common subexpression's name
            return self.lower(c)[0]
        if isinstance(c, (sp.And, sp.Or)):
            return f" {'&' if isinstance(c, sp.And) else '|'} ".join(f"({self._condition(a)})" for a in c.args)
        if isinstance(c, sp.Not):
            return f"not ({self._condition(c.args[0])})"
        if isinstance(c, sp.core.relational.Relational):
            return f"{self.lower(c.lhs)[0]} {c.rel_op} {self.lower(c.rhs)[0]}"
        raise ValueError(f"double-double evaluation of the condition {c} is not implemented")

    def _accurate(self, e):
        """(name in refloss/_dd_functions.py, its arguments) where ``e`` is one of its functions, else None."""
        if e.func in (sp.exp, sp.log, log1p) and len(e.args) == 1:
            return e.func.__name__, e.args
        if e.is_Pow:
            return "pow", (e.base, e.exp)
        if isinstance(e, PowG):
            return "pow", e.args
        if isinstance(e, PowGm1):  # (0 where m = 0 or g = 0: see _function)
            return "pow", (e.args[0], e.args[1] - 1)
        return None

    def _logistic(self, e) -> tuple:
        """sigma(x), softplus(x) and the cross-entropy on logits with accurate exp and log1p, in forms that neither
        overflow nor cancel: softplus(x) = max(x, 0) + log1p(e^-|x|), sigma(x) = 1/(1 + e^-x) (x >= 0) or
        e^x/(1 + e^x), LogitCE(x, y) = y softplus(-x) + (1 - y) softplus(x)."""
        if isinstance(e, LogitCE):
            x, y = e.args
            return self.lower(y * Softplus(-x) + (1 - y) * Softplus(x))
        zero, one = (self.p._literal(0), None), (self.p._literal(1), None)
        x = self.lower(e.args[0])
        pos = self._a(f"{x[0]} >= {zero[0]}")
        key = sp.Abs(e.args[0])  # (x and -x alike: sigma(x), sigma(-x) and the softplus of both share e^-|x|)
        if key not in self._exps:
            ex = self._call("exp", [self.select(pos, self.neg(x), x)])  # e^-|x|
            self._exps[key] = ex, self.add(one, ex)
        ex, d = self._exps[key]
        if isinstance(e, Softplus):
            return self.add(self.select(pos, x, zero), self._call("log1p", [ex]))
        return self.div(self.select(pos, one, ex), d)

    @staticmethod
    def _focal(e):
        """The focal forms (FocalCE, its derivatives, 1 - p_t) as compositions of the accurate logistic functions
        and powers, each a sum of terms of one sign at hard targets: with CE = LogitCE(x, y), q = 1 - p_t =
        y sigma(-x) + (1 - y) sigma(x) (dq/dx = sigma(x) sigma(-x) (1 - 2y), dq/dy = -tanh(x/2)),
        FocalCE = a CE q^g, d/dx = a ((1 - y) sigma(x) - y sigma(-x)) q^g + a g CE q^(g-1) dq/dx,
        d/dy = -a x q^g + a g CE q^(g-1) dq/dy (q^(g-1) taken as 0 where q = 0 or g = 0, PowGm1)."""
        x, y = e.args[:2]
        q = y * Sigmoid(-x) + (1 - y) * Sigmoid(x)
        if isinstance(e, OneMinusPt):
            return q
        a, g = e.args[2:]
        ce, qg, qg1 = LogitCE(x, y), PowG(q, g), g * LogitCE(x, y) * PowGm1(q, g)
        if isinstance(e, FocalCE):
            return a * ce * qg
        if isinstance(e, FocalCEDx):
            return a * (((1 - y) * Sigmoid(x) - y * Sigmoid(-x)) * qg + qg1 * Sigmoid(x) * Sigmoid(-x) * (1 - 2 * y))
        return a * (-x * qg - qg1 * sp.tanh(x / 2))

    def _tanh(self, e) -> tuple:
        """tanh(u) = -expm1(-2|u|)/(2 + expm1(-2|u|)) with u's sign: no cancellation for small u."""
        u = self.lower(e.args[0])
        zero = self.p._literal(0)
        pos = self._a(f"{u[0]} >= {zero}")
        m = self._call("expm1", [self.mul(self.number(-2), self.select(pos, u, self.neg(u)))])
        t = self.div(self.neg(m), self.add(self.number(2), m))
        return self.select(pos, t, self.neg(t))

    def _pow_gm1(self, e) -> tuple:
        """m^(g-1) (0 where m = 0 or g = 0, PowGm1's convention) to first order in m's low part, as
        v + v (g - 1) (lo/m), v the float64 power: no second power m^(g-2), which overflows (and raises in the
        CUDA simulator's Python math) for a tiny m where v does not."""
        (m, lo), (g, g_lo) = self.lower(e.args[0]), self.lower(e.args[1])
        if g_lo is not None:
            raise ValueError("double-double evaluation of PowGm1: the exponent must be a float64 number")
        value = self._a(self.p._print(PowGm1(sp.Symbol(m, real=True), sp.Symbol(g, real=True))))
        if lo is None:
            return value, None
        zero, one = self.p._literal(0), self.p._literal(1)
        return self._two_sum(value, self._a(f"{value}*(({g} - {one})*({lo}/{m})) if {m} > {zero} else {zero}"))

    def _call(self, name: str, args: list) -> tuple:
        zero = self.p._literal(0)
        pair = self._a(f"_ddf.{name}({', '.join(f'{h}, {l or zero}' for h, l in args)})")
        return self._a(f"{pair}[0]"), self._a(f"{pair}[1]")

    def _function(self, e) -> tuple:
        """f(args) as f(his) + sum_i df/darg_i(his) lo_i (first order: lo_i/hi_i is below 2^-52), with f's true
        partial derivatives (not a gradient convention: AtanRatio's darknet flag changes its derivative only);
        with ``accurate``, exp, log, log1p and powers in double-double (:meth:`_accurate`)."""
        if self.accurate and isinstance(e, (Sigmoid, Softplus, LogitCE)):
            return self._logistic(e)
        if isinstance(e, (FocalCE, FocalCEDx, FocalCEDy, OneMinusPt)):  # (their parts first-order without accurate)
            return self.lower(self._focal(e))
        if self.accurate and e.func == sp.tanh:
            return self._tanh(e)
        if isinstance(e, PowGm1) and not self.accurate:
            return self._pow_gm1(e)
        call = self._accurate(e) if self.accurate else None
        if call is not None:
            value = self._call(call[0], [self.lower(a) for a in call[1]])
            if isinstance(e, PowGm1):  # its convention: 0 where m = 0 or g = 0 (PowG's derivative g m^(g-1) is 0 there)
                (m, _), (g, _) = self.lower(e.args[0]), self.lower(e.args[1])
                zero = self.p._literal(0)
                value = self.select(self._a(f"({m} > {zero}) & ({g} != {zero})"), value, (zero, None))
            return value
        args = [self.lower(a) for a in e.args]
        his = [sp.Symbol(h, real=True) for h, _ in args]
        at = e.func(*his)
        value = self._a(self.p._print(at))
        true = _TRUE_PARTIALS[e.func](*his) if e.func in _TRUE_PARTIALS else None
        terms = []
        for k, (sym, (_, lo)) in enumerate(zip(his, args)):
            if lo is None:
                continue
            d = true[k] if true is not None else at.diff(sym)
            if d.has(sp.Derivative, sp.Subs):
                if not self.strict:
                    continue
                raise ValueError(f"double-double evaluation of {e.func}: no derivative to carry its argument's low part")
            terms.append(f"({self.p._print(d)})*{lo}")
        if not terms:
            return value, None
        return self._two_sum(value, self._a(" + ".join(terms)))
