"""50-digit mpmath oracle for three Gaussian losses of rotated boxes, written from the papers' matrix formulas.

Boxes are ``(cx, cy, w, h, angle)``: centre, width, height and the angle in radians
(any length-5 sequence of Python/NumPy floats, converted exactly with ``exact_mpf``;
mpf coordinates are used as they are).  A box must be finite with ``w >= 0`` and
``h >= 0`` (else ``ValueError``).  Every public function returns
``(value, grad_pred, grad_target)``: an mpf and two 5-tuples of mpf,
``d value / d coordinate`` in the order ``(cx, cy, w, h, angle)``, all rounded to
``DPS`` = 50 significant digits.  Gradients come from forward-mode automatic
differentiation with the dual numbers of :mod:`refloss.oracle.boxes`
(:class:`_Dual10`: a value and its 10 partials w.r.t. the two boxes' coordinates);
the work is done at ``DPS + _GUARD_DPS`` = 80 digits.

Gaussian of a box (all three papers): ``N(mu, Sigma)``, ``mu = (cx, cy)``,
``Sigma = R diag(s w**2, s h**2) R**T``, ``R = [[cos, -sin], [sin, cos]]`` of the
angle; ``s = 1/12`` for ProbIoU (the covariance of the uniform distribution on the
box), ``s = 1/4`` for KLD and GWD.  Written out::

    Sigma = [[a, c], [c, b]],  a = s w**2 cos**2 + s h**2 sin**2,
                               b = s w**2 sin**2 + s h**2 cos**2,
                               c = (s w**2 - s h**2) sin cos,

and the 2x2 formulas ``det = a b - c**2``, ``tr = a + b``,
``adj = [[b, -c], [-c, a]]``, ``inverse = adj / det``.  ``Delta = mu_p - mu_t``.

* ProbIoU (Llerena et al., arXiv:2106.06072), :func:`probiou_loss`:
  ``Sigma_bar = (Sigma_p + Sigma_t) / 2``, Bhattacharyya distance
  ``B_D = (1/8) Delta**T Sigma_bar**-1 Delta + (1/2) ln(det Sigma_bar / sqrt(det Sigma_p det Sigma_t))``;
  ``mode="hellinger"``: ``L = sqrt(1 - exp(-B_D))`` (= 1 - ProbIoU, the Hellinger distance);
  ``mode="bd"``: ``L = B_D``.
* KLD (Yang et al., arXiv:2106.01883), :func:`kld_loss`: ``D = KL(N_p || N_t) =
  (1/2) [Delta**T Sigma_t**-1 Delta + tr(Sigma_t**-1 Sigma_p) - 2 + ln(det Sigma_t / det Sigma_p)]``,
  ``f(D) = ln(1 + D)`` (``fun="log1p"``) or ``sqrt(D)`` (``fun="sqrt"``),
  ``L = 1 - 1 / (tau + f(D))``, ``tau > 0``.
* GWD (Yang et al., arXiv:2101.11952), :func:`gwd_loss`: the squared 2-Wasserstein distance
  ``W**2 = |Delta|**2 + tr Sigma_p + tr Sigma_t - 2 tr((Sigma_p**1/2 Sigma_t Sigma_p**1/2)**1/2)``,
  the last trace by the 2x2 identity ``tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))`` (M positive
  semidefinite), ``tr M = tr(Sigma_p Sigma_t)``, ``sqrt(det M) = sqrt(det Sigma_p) sqrt(det Sigma_t)``
  and ``sqrt(det Sigma) = s w h`` (the product of the square roots of the eigenvalues, so that its
  derivative at ``w = 0`` is the finite one-sided one); ``f = ln(1 + W**2)`` (``fun="log1p"``) or
  ``sqrt(W**2)`` (``fun="sqrt"``), ``L = 1 - 1 / (tau + f)``, ``tau > 0``.

Conventions (no exceptions for valid boxes; undefined derivatives are NaN):

* A distance (``B_D``, ``D``, ``W**2``) that comes out exactly 0 -- identical Gaussians:
  identical boxes, and also equal squares at any two angles -- has every partial exactly 0:
  it is a minimum of a smooth non-negative function, and ``sqrt`` (``mode="hellinger"``,
  ``fun="sqrt"``) has no derivative there.  The value is then 0 (ProbIoU) or ``1 - 1/tau``
  (KLD, GWD).
* ProbIoU where ``det Sigma_p det Sigma_t == 0`` (a box with ``w h == 0``): ``B_D = +inf``, the
  value is 1 (``"hellinger"``) or ``+inf`` (``"bd"``), every partial NaN.
* KLD with a box with ``w h == 0`` (either box): value 1, every partial NaN.
* GWD is defined for degenerate Gaussians: zero-size boxes are valid.  Where the inner
  ``sqrt(tr M + 2 sqrt(det M))`` is 0 (a point box ``w = h = 0``, or two perpendicular
  zero-width boxes such as ``w_p = 0`` and ``h_t = 0`` at angle 0) its derivative is infinite: the
  value is ``|Delta|**2 + tr Sigma_p + tr Sigma_t`` through ``f`` and every partial is NaN (this
  takes precedence over the rule above for two coincident point boxes).
* ``L = 1 - 1/(tau + f)`` is evaluated as ``(f + (tau - 1)) / (f + tau)`` (no cancellation as
  ``f -> 0`` for ``tau = 1``).

How it is computed (exactly the formulas above, arranged so that nothing cancels):

* The dual numbers form the values of sums, differences and products exactly
  (``exact=True``); only quotients, cos, sin, sqrt, exp, log and the partials round.
* The rounded ``C = cos(angle)``, ``S = sin(angle)`` have ``alpha = C**2 + S**2 = 1 + O(1e-80)``,
  not 1.  The oracle uses the exact rotation through their direction, ``R = [[C, -S], [S, C]] /
  sqrt(alpha)``, i.e. ``Sigma = Sigma_hat / alpha`` with ``Sigma_hat`` the entries above
  (``a``, ``b``, ``c`` with ``C``, ``S``; exact) and carries ``alpha`` through every formula, so
  that ``det Sigma_hat = (s w h alpha)**2`` holds exactly (0 exactly when ``w h == 0``) and
  ``sqrt(det Sigma) = s w h`` exactly.  This is the exact loss of the boxes with their angles
  moved by at most about 1e-80.  For ProbIoU ``s = 1/12`` is rounded to 80 digits (the same in both
  boxes: ``B_D``'s log term does not depend on it, its first term has a relative error of 1e-80).
* ProbIoU, with ``K = alpha_p alpha_t`` and ``N = alpha_t Sigma_hat_p + alpha_p Sigma_hat_t``
  (``= 2 K Sigma_bar``): ``Delta**T Sigma_bar**-1 Delta / 8 = K Delta**T adj(N) Delta / (4 det N)``
  and ``(1/2) ln(det Sigma_bar / sqrt(det Sigma_p det Sigma_t)) = (1/4) log1p((det N**2 - G) / G)``,
  ``G = 16 K**2 det Sigma_hat_p det Sigma_hat_t``: two non-negative terms, numerators exact.
* KLD: ``Delta**T Sigma_t**-1 Delta = alpha_t Delta**T adj(Sigma_hat_t) Delta / det Sigma_hat_t``;
  with the eigenvalues l1, l2 of ``Sigma_t**-1 Sigma_p``, ``u = tr(Sigma_t**-1 Sigma_p) - 2 = l1 + l2 - 2``
  and ``q = det Sigma_p / det Sigma_t - 1 = l1 l2 - 1``, the covariance part ``u - ln(1 + q)`` is
  ``(u - q) + (q - log1p(q))``: ``u - q = -(l1 - 1)(l2 - 1) =
  (K P - alpha_p**2 det Sigma_hat_t - alpha_t**2 det Sigma_hat_p) / (alpha_p**2 det Sigma_hat_t)``,
  ``P = tr(adj(Sigma_hat_t) Sigma_hat_p)``, one quotient of an exact numerator, and
  ``q - log1p(q)`` is evaluated with as many extra bits as it cancels.
* GWD: with ``B_n = alpha_t tr Sigma_hat_p + alpha_p tr Sigma_hat_t`` (``= K (tr Sigma_p + tr Sigma_t)``)
  and ``X_n = tr(Sigma_hat_p Sigma_hat_t) + 2 (s w_p h_p alpha_p)(s w_t h_t alpha_t)`` (``= K (tr M +
  2 sqrt(det M))``), ``tr Sigma_p + tr Sigma_t - 2 sqrt(tr M + 2 sqrt(det M)) =
  (B_n**2 - 4 K X_n) / (K (B_n + 2 sqrt(K X_n)))``: an exact numerator, no cancellation.

Accuracy: every cancellation above happens in exact arithmetic, so identical boxes (and
equal squares at any angles) give exactly 0, and the remaining error of a value comes from
the rounded cos and sin (angles moved by about 1e-80) and a few roundings at 80 digits.
For boxes whose Gaussians differ by a relative ``10**-k`` through their angles (e.g. angles
that agree to k digits) the values keep about ``80 - k`` digits (50 or more for k <= 30);
the other differences (centres, sizes; equal angles) cost no digits (measured against a
230-digit run: angles 1e-40 apart keep 41-42 digits, centres or widths 1e-40 apart all 50).
The partials are formed with rounded arithmetic: where the two boxes agree to k digits
(in any coordinate) they are differences of nearly equal terms and keep about ``80 - k``
digits relative to the largest partial (measured: 41 for k = 40, 61 for k = 20).  Only
the returned numbers are rounded to 50 digits.
"""

from __future__ import annotations

from typing import Callable

from mpmath import mp

from .boxes import _GUARD_DPS, _Dual, _exp, _log, _log1p, _nonnegative, _positive, _sin, _sqrt, _to_mpf
from .elementwise import DPS

__all__ = ["probiou_loss", "kld_loss", "gwd_loss", "obb_angle_loss"]

RBox = tuple  # 5 coordinates (cx, cy, w, h, angle)
Result = tuple  # (value, (5 x d/dpred), (5 x d/dtarget)), all mpf

_NC = 5  # coordinates per box


class _Dual10(_Dual):
    """A value and its 10 partials: pred cx, cy, w, h, angle, then target cx, cy, w, h, angle."""

    __slots__ = ()
    N = 2 * _NC


def _cos(x: _Dual) -> _Dual:
    s = mp.sin(x.v)
    return type(x)(mp.cos(x.v), tuple(-s * da for da in x.d))


def _zero_grad(x: _Dual) -> _Dual:
    """Same value, every partial exactly 0."""
    return type(x)(x.v)


def _nan_grad(value, cls=_Dual10) -> _Dual:
    """The given value, every partial NaN."""
    return cls(value, (mp.nan,) * cls.N)


def _q_minus_log1p(q: _Dual) -> _Dual:
    """``q - ln(1 + q)`` (q > -1) without cancellation: ~q**2/2 for small q, so the log is taken with
    ``-mag(q)`` extra bits; derivative ``q / (1 + q)``."""
    if q.v == 0:
        return _zero_grad(q)
    extra = max(0, -mp.mag(q.v)) + 16
    with mp.extraprec(extra):
        v = q.v - mp.log1p(q.v)
    v = +v
    k = q.v / (1 + q.v)
    return type(q)(v, tuple(k * dq for dq in q.d))


# ------------------------------------------------------------ conversions


def _rbox(coords, name: str) -> tuple:
    c = tuple(coords)
    if len(c) != _NC:
        raise ValueError(f"{name} must have 5 coordinates (cx, cy, w, h, angle), got {len(c)}")
    v = tuple(_to_mpf(x) for x in c)
    if not all(mp.isfinite(x) for x in v):
        raise ValueError(f"{name} coordinates must be finite, got {c}")
    if v[2] < 0 or v[3] < 0:
        raise ValueError(f"{name} must have w >= 0 and h >= 0, got {c}")
    return v


def _tau(tau):
    return _positive(tau, "tau")


def _fun(fun):
    if fun not in ("log1p", "sqrt"):
        raise ValueError(f"fun must be 'log1p' or 'sqrt', got {fun!r}")
    return fun


def _seed(p: tuple, t: tuple) -> tuple[list, list]:
    """The 10 coordinates as dual numbers with unit partials."""
    duals = []
    for i, v in enumerate(p + t):
        d = [mp.zero] * _Dual10.N
        d[i] = mp.one
        duals.append(_Dual10(v, tuple(d)))
    return duals[:_NC], duals[_NC:]


def _run(body: Callable, pred, target) -> Result:
    """Evaluate ``body(p, t)`` (p, t: 5 duals each) at DPS + guard digits; round to DPS."""
    p = _rbox(pred, "pred")
    t = _rbox(target, "target")
    with mp.workdps(DPS + _GUARD_DPS):
        out = body(*_seed(p, t))
    with mp.workdps(DPS):
        d = [+g for g in out.d]
        return +out.v, tuple(d[:_NC]), tuple(d[_NC:])


# ------------------------------------------------------------- Gaussians


class _Gaussian:
    """``N(mu, Sigma_hat / alpha)`` of one box: the entries a, b, c of ``Sigma_hat`` (exact in the rounded
    cos and sin), ``alpha = cos**2 + sin**2``, ``det``/``tr`` of ``Sigma_hat`` and ``sqrt_det = s w h alpha``
    (``= sqrt(det Sigma_hat)`` exactly)."""

    def __init__(self, box, s):
        cx, cy, w, h, angle = box
        self.mu = (cx, cy)
        cos, sin = _cos(angle), _sin(angle)
        cos2, sin2 = cos.square(), sin.square()
        sw2, sh2 = w.square() * s, h.square() * s
        self.a = sw2 * cos2 + sh2 * sin2
        self.b = sw2 * sin2 + sh2 * cos2
        self.c = (sw2 - sh2) * (sin * cos)
        self.alpha = cos2 + sin2
        self.det = self.a * self.b - self.c.square()
        self.tr = self.a + self.b
        self.sqrt_det = w * h * s * self.alpha

    def quad_adj(self, dx: _Dual, dy: _Dual) -> _Dual:
        """``Delta**T adj(Sigma_hat) Delta`` (exact)."""
        return self.b * dx.square() - 2 * self.c * (dx * dy) + self.a * dy.square()


def _delta(p, t):
    return p[0] - t[0], p[1] - t[1]


def _tau_value(f, tau):
    """``1 - 1/(tau + f)`` as ``(f + (tau - 1)) / (f + tau)`` (numerator and denominator exact)."""
    return mp.fadd(f, mp.fsub(tau, 1, exact=True), exact=True) / mp.fadd(f, tau, exact=True)


def _tau_form(f: _Dual, tau) -> _Dual:
    """``1 - 1/(tau + f)`` with partials ``df / (tau + f)**2`` (the quotient rule on the form above would
    cancel them away for large f)."""
    k = 1 / mp.fadd(f.v, tau, exact=True) ** 2
    return type(f)(_tau_value(f.v, tau), tuple(k * d for d in f.d))


# ------------------------------------------------------------ public API

_S_PROBIOU = (1, 12)  # s = 1/12: the covariance of the uniform distribution on the box
_S_GAUSS = mp.mpf(0.25)  # s = 1/4 (KLD, GWD): exact


def _bhattacharyya(p, t) -> _Dual | None:
    """B_D of the two boxes' Gaussians (s = 1/12); None where det Sigma_p det Sigma_t == 0."""
    s = mp.mpf(_S_PROBIOU[0]) / _S_PROBIOU[1]  # rounded at the working precision
    gp, gt = _Gaussian(p, s), _Gaussian(t, s)
    if gp.det.v == 0 or gt.det.v == 0:
        return None
    dx, dy = _delta(p, t)
    k = gp.alpha * gt.alpha
    na = gt.alpha * gp.a + gp.alpha * gt.a  # N = alpha_t Sigma_hat_p + alpha_p Sigma_hat_t = 2 K Sigma_bar
    nb = gt.alpha * gp.b + gp.alpha * gt.b
    nc = gt.alpha * gp.c + gp.alpha * gt.c
    det_n = na * nb - nc.square()
    quad = nb * dx.square() - 2 * nc * (dx * dy) + na * dy.square()  # Delta^T adj(N) Delta
    mahalanobis = k * quad / (4 * det_n)  # (1/8) Delta^T Sigma_bar^-1 Delta
    g = 16 * k.square() * (gp.det * gt.det)  # 16 K^2 det Sigma_hat_p det Sigma_hat_t
    log_term = _log1p((det_n.square() - g) / g) * mp.mpf(0.25)  # (1/2) ln(det Sigma_bar / sqrt(...))
    return mahalanobis + log_term


def probiou_loss(pred, target, mode="hellinger") -> Result:
    """ProbIoU loss (Llerena et al., "Gaussian Bounding Boxes and Probabilistic Intersection-over-Union
    for Object Detection", arXiv:2106.06072): the Bhattacharyya distance ``B_D`` of the boxes'
    Gaussians (``s = 1/12``); ``mode="hellinger"``: ``sqrt(1 - exp(-B_D))`` (= 1 - ProbIoU),
    ``mode="bd"``: ``B_D``.  ``B_D == 0`` (identical Gaussians): value 0, partials 0.  A box with
    ``w h == 0``: value 1 (hellinger) or +inf (bd), every partial NaN."""
    if mode not in ("hellinger", "bd"):
        raise ValueError(f"mode must be 'hellinger' or 'bd', got {mode!r}")

    def body(p, t) -> _Dual:
        bd = _bhattacharyya(p, t)
        if bd is None:
            return _nan_grad(mp.one if mode == "hellinger" else mp.inf)
        if bd.v == 0:
            return _zero_grad(bd)
        if mode == "bd":
            return bd
        one_minus = -mp.expm1(-bd.v)  # 1 - exp(-B_D), d = exp(-B_D) dB_D
        value = mp.sqrt(one_minus)
        k = mp.exp(-bd.v) / (2 * value)
        return _Dual10(value, tuple(k * d for d in bd.d))

    return _run(body, pred, target)


def _kl(p, t) -> _Dual | None:
    """KL(N_p || N_t) (s = 1/4); None where a box has w h == 0."""
    gp, gt = _Gaussian(p, _S_GAUSS), _Gaussian(t, _S_GAUSS)
    if gp.det.v == 0 or gt.det.v == 0:
        return None
    dx, dy = _delta(p, t)
    k = gp.alpha * gt.alpha
    ap2, at2 = gp.alpha.square(), gt.alpha.square()
    mahalanobis = gt.alpha * gt.quad_adj(dx, dy) / gt.det  # Delta^T Sigma_t^-1 Delta
    p_tr = gt.a * gp.b + gt.b * gp.a - 2 * (gt.c * gp.c)  # tr(adj(Sigma_hat_t) Sigma_hat_p)
    denom = ap2 * gt.det
    u_minus_q = (k * p_tr - ap2 * gt.det - at2 * gp.det) / denom  # -(l1 - 1)(l2 - 1)
    q = (at2 * gp.det - ap2 * gt.det) / denom  # det Sigma_p / det Sigma_t - 1
    d = (mahalanobis + u_minus_q + _q_minus_log1p(q)) * mp.mpf(0.5)
    if d.v < 0:  # cannot happen: every cancellation is exact or relative-accurate
        raise ArithmeticError(f"negative KL divergence {d.v} for {p}, {t}")
    return d


def kld_loss(pred, target, fun="log1p", tau=1.0, reverse=False) -> Result:
    """KLD loss (Yang et al., "Learning High-Precision Bounding Box for Rotated Object Detection via
    Kullback-Leibler Divergence", arXiv:2106.01883): ``1 - 1/(tau + f(D))``, ``D = KL(N_p || N_t)``
    (``s = 1/4``), ``f = ln(1 + D)`` (``fun="log1p"``) or ``sqrt(D)`` (``fun="sqrt"``), ``tau > 0``.
    ``D == 0``: value ``1 - 1/tau``, partials 0.  A box with ``w h == 0``: value 1, every partial NaN.
    ``reverse=True``: ``D = KL(N_t || N_p)`` (the authors' code, mmrotate's GDLoss): the loss of the
    swapped pair, its two gradients swapped back."""
    if reverse:
        value, gp, gt = kld_loss(target, pred, fun, tau)
        return value, gt, gp
    fun = _fun(fun)
    tau = _tau(tau)

    def body(p, t) -> _Dual:
        d = _kl(p, t)
        if d is None:
            return _nan_grad(mp.one)
        if d.v == 0:
            return _zero_grad(_tau_form(d, tau))
        f = _log1p(d) if fun == "log1p" else _sqrt(d)
        return _tau_form(f, tau)

    return _run(body, pred, target)


def gwd_loss(pred, target, fun="log1p", tau=1.0) -> Result:
    """GWD loss (Yang et al., "Rethinking Rotated Object Detection with Gaussian Wasserstein Distance
    Loss", arXiv:2101.11952): ``1 - 1/(tau + f(W**2))``, ``W**2`` the squared 2-Wasserstein distance
    of the boxes' Gaussians (``s = 1/4``), ``f = ln(1 + W**2)`` (``fun="log1p"``) or ``sqrt(W**2)``
    (``fun="sqrt"``), ``tau > 0``.  ``W**2 == 0``: value ``1 - 1/tau``, partials 0.  Zero-size boxes
    are valid; where ``tr M + 2 sqrt(det M) == 0`` (a point box, two perpendicular zero-width boxes)
    every partial is NaN."""
    fun = _fun(fun)
    tau = _tau(tau)

    def body(p, t) -> _Dual:
        gp, gt = _Gaussian(p, _S_GAUSS), _Gaussian(t, _S_GAUSS)
        dx, dy = _delta(p, t)
        k = gp.alpha * gt.alpha
        b_n = gt.alpha * gp.tr + gp.alpha * gt.tr  # K (tr Sigma_p + tr Sigma_t)
        tr_pt = gp.a * gt.a + 2 * (gp.c * gt.c) + gp.b * gt.b  # tr(Sigma_hat_p Sigma_hat_t)
        x_n = tr_pt + 2 * (gp.sqrt_det * gt.sqrt_det)  # K (tr M + 2 sqrt(det M))
        centre = dx.square() + dy.square()
        if x_n.v == 0:  # sqrt(tr M + 2 sqrt det M) == 0: infinite derivative
            w2 = centre.v + b_n.v / k.v
            f = mp.log1p(w2) if fun == "log1p" else mp.sqrt(w2)
            return _nan_grad(_tau_value(f, tau))
        root = _sqrt(k * x_n)  # K sqrt(tr M + 2 sqrt det M)
        bures = (b_n.square() - 4 * (k * x_n)) / (k * (b_n + 2 * root))
        w2 = centre + bures
        if w2.v == 0:
            return _zero_grad(_tau_form(w2, tau))
        f = _log1p(w2) if fun == "log1p" else _sqrt(w2)
        return _tau_form(f, tau)

    return _run(body, pred, target)


def obb_angle_loss(pred, target, lam=3.0, eps=0.0) -> Result:
    """The angle term of ultralytics' oriented-box training (``v8OBBLoss.calculate_angle_loss``, ultralytics
    8.4): ``exp(-ln(w/h)**2 / lam**2) * sin(2 (angle_p - angle_t))**2`` with ``w = w_t + eps``, ``h = h_t + eps``
    (``lam > 0``, ``eps >= 0``; ultralytics: 3 and 1e-9).  The angle difference is exact (dual arithmetic),
    ``ln(w/h)`` is ``ln w - ln h`` at the working precision.  ``w == h == 0``: value and partials NaN; one of
    them 0: value 0 and every partial 0 (the limit of the weight and of its derivatives)."""
    lam = _positive(lam, "lam")
    eps = _nonnegative(eps, "eps")

    def body(p, t) -> _Dual:
        w, h = t[2] + eps, t[3] + eps
        if w.v == 0 and h.v == 0:
            return _nan_grad(mp.nan)
        if w.v == 0 or h.v == 0:
            return _Dual10(mp.zero)
        r = _log(w) - _log(h)
        weight = _exp(-r.square() / lam**2)
        return weight * _sin(2 * (p[4] - t[4])).square()

    return _run(body, pred, target)
