"""50-digit mpmath oracle for the IoU family of box losses, written from the papers.

Boxes are xyxy: ``pred = (px1, py1, px2, py2)``, ``target = (tx1, ty1, tx2, ty2)``
(any length-4 sequence of Python/NumPy floats, converted exactly with
``exact_mpf(v)``; mpf coordinates are used as they are).  A box must be
finite with ``x2 >= x1`` and ``y2 >= y1`` (else ``ValueError``).  Every public
function returns ``(value, grad_pred, grad_target)``: an mpf and two 4-tuples of
mpf, ``d value / d coordinate``, all rounded to ``DPS`` = 50 significant digits.

Gradients come from forward-mode automatic differentiation: a small dual number
(:class:`_Dual`, a value plus the 8-vector of partials w.r.t. the 8 coordinates)
carries every formula, so each loss is written exactly once.  Internally the
work is done at ``DPS + _GUARD_DPS`` digits and the *values* of sums,
differences and products are formed exactly (``exact=True``), so widths,
heights, I, U, C, rho2 and c2 are exact; only quotients, transcendental
functions and the partials round (at 80 digits).  The losses use
``1 - IoU = (U + eps - I) / (U + eps)`` (one rounding, no cancellation as
IoU -> 1) and every loss is a sum of non-negative terms, so each loss value
keeps its 50 digits however close the boxes are (the CIoU aspect difference
``atan2(wt, ht) - atan2(wp, hp)`` is the one cancellation left; it has 80 - k
correct digits when the two aspect angles agree to k digits); identical boxes
give exactly 0.  The metrics (``iou``, ``giou``, ``diou``, ``ciou``) are
differences and are accurate to 80 digits absolute.  Only the returned numbers
are rounded to 50 digits.

The non-differentiable primitives follow PyTorch autograd (torch 2.14.1):

* ``maximum(a, b)`` / ``minimum(a, b)`` (``torch.maximum`` / ``torch.minimum``):
  the derivative of the selected argument; on a tie ``a == b`` each argument
  gets half: ``0.5 da + 0.5 db``.
* ``clamp_min0(x)`` (``torch.clamp(x, min=0)``): derivative 1 for ``x > 0``,
  0 for ``x <= 0`` (at ``x == 0`` too, as torch 2.14.1's ``clamp(min=0)``,
  ``clamp_min(0)`` and ``relu``; older torch passed the derivative at 0).  So at
  touching boxes (``iw == 0`` or ``ih == 0``) the intersection ``I = iw ih`` has
  derivative 0.
* ``atan2(w, h)``: ``d = (h dw - w dh) / (w**2 + h**2)``; finite at ``h == 0``
  for ``w != 0``; NaN at ``w == h == 0`` (torch gives 0/0 there too).
* ``x ** gamma`` (Focal-EIoU weight): torch's ``pow`` backward -- derivative
  0 for ``gamma == 0``; at ``x == 0`` the factor ``gamma x**(gamma-1)`` is
  ``+inf`` for ``0 < gamma < 1`` and then every partial that chains through it
  is NaN (reverse-mode autograd also ends in NaN there: ``inf * 0`` in the
  union's adjoint); 1 for ``gamma == 1`` and 0 for ``gamma > 1``.
* ``log(x)`` at ``x == 0``: value ``-inf``, derivative NaN.

Undefined quantities are NaN, never exceptions: a division whose denominator
is 0 (zero union ``U + eps == 0``, zero enclosing diagonal ``c2 == 0``, ...)
makes the value and every partial NaN, and NaN propagates.

Definitions (``w = x2 - x1``, ``h = y2 - y1`` of each box, ``eps >= 0``):

* ``iw = clamp_min0(minimum(px2, tx2) - maximum(px1, tx1))``, ``ih`` likewise,
  ``I = iw ih``, ``U = wp hp + wt ht - I``, ``IoU = I / (U + eps)``;
* enclosing box ``cx1 = minimum(px1, tx1)``, ``cy1 = minimum(py1, ty1)``,
  ``cx2 = maximum(px2, tx2)``, ``cy2 = maximum(py2, ty2)``,
  ``cw = cx2 - cx1``, ``ch = cy2 - cy1``, ``C = cw ch``;
* ``rho2 = ((px1 + px2 - tx1 - tx2)/2)**2 + ((py1 + py2 - ty1 - ty2)/2)**2``,
  ``c2 = cw**2 + ch**2 + eps``.
"""

from __future__ import annotations

import numbers
from typing import Callable

from mpmath import libmp, mp

from .elementwise import DPS
from .rounding import exact_mpf

__all__ = [
    "iou",
    "iou_loss",
    "log_iou_loss",
    "giou",
    "giou_loss",
    "diou",
    "diou_loss",
    "ciou",
    "ciou_loss",
    "eiou_loss",
    "focal_eiou_loss",
    "focal_l1_eiou_loss",
]

_GUARD_DPS = 30  # extra working digits; results are rounded to DPS

Box = tuple  # 4 coordinates
Result = tuple  # (value, (4 x d/dpred), (4 x d/dtarget)), all mpf

_N = 8  # partials: pred x1, y1, x2, y2, target x1, y1, x2, y2


# ------------------------------------------------------------- dual numbers


class _Dual:
    """``v + sum_i d[i] e_i``: a value and its ``N`` partial derivatives (mpf).

    ``N`` (8 here: two xyxy boxes) is a class attribute; a subclass with another ``N``
    (``class _Dual10(_Dual): N = 10``) works end to end: every result is built with the
    operand's own class, and a partial tuple of the wrong length is an error (``zip``
    would silently truncate it).
    """

    __slots__ = ("v", "d")
    N = _N

    def __init__(self, v, d=None):
        self.v = v
        if d is None:
            d = (mp.zero,) * self.N
        elif len(d) != self.N:
            raise ValueError(f"{type(self).__name__} needs {self.N} partials, got {len(d)}")
        self.d = d

    # -- helpers
    @classmethod
    def _lift(cls, x) -> "_Dual":
        if isinstance(x, _Dual):
            if x.N != cls.N:
                raise TypeError(f"cannot mix {cls.__name__} ({cls.N} partials) with {type(x).__name__} ({x.N})")
            return x
        return cls(mp.mpf(x) if not isinstance(x, mp.mpf) else x)

    @classmethod
    def nan(cls) -> "_Dual":
        return cls(mp.nan, (mp.nan,) * cls.N)

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"{type(self).__name__}({self.v}, {self.d})"

    # -- arithmetic (values of sums and products are exact; quotients and partials are rounded)
    def __add__(self, other):
        o = self._lift(other)
        return type(self)(mp.fadd(self.v, o.v, exact=True), tuple(a + b for a, b in zip(self.d, o.d)))

    __radd__ = __add__

    def __sub__(self, other):
        o = self._lift(other)
        return type(self)(mp.fsub(self.v, o.v, exact=True), tuple(a - b for a, b in zip(self.d, o.d)))

    def __rsub__(self, other):
        return self._lift(other) - self

    def __neg__(self):
        return type(self)(-self.v, tuple(-a for a in self.d))

    def __mul__(self, other):
        o = self._lift(other)
        a, b = self.v, o.v
        return type(self)(mp.fmul(a, b, exact=True), tuple(a * db + b * da for da, db in zip(self.d, o.d)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._lift(other)
        if o.v == 0 or mp.isnan(o.v) or mp.isnan(self.v):
            return type(self).nan()  # undefined: 0/0, x/0
        q = self.v / o.v
        return type(self)(q, tuple((da - q * db) / o.v for da, db in zip(self.d, o.d)))

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def square(self):
        return self * self


def _const(x: _Dual) -> _Dual:
    """Stop-gradient: same value, zero partials (torch ``.detach()``)."""
    return type(x)(x.v)


def _maximum(a: _Dual, b: _Dual) -> _Dual:
    """torch.maximum: the larger argument's derivative; 0.5/0.5 on a tie."""
    if a.v > b.v:
        return a
    if a.v < b.v:
        return b
    if a.v == b.v:
        return type(a)(a.v, tuple((x + y) / 2 for x, y in zip(a.d, b.d)))
    return type(a).nan()


def _minimum(a: _Dual, b: _Dual) -> _Dual:
    """torch.minimum: the smaller argument's derivative; 0.5/0.5 on a tie."""
    if a.v < b.v:
        return a
    if a.v > b.v:
        return b
    if a.v == b.v:
        return type(a)(a.v, tuple((x + y) / 2 for x, y in zip(a.d, b.d)))
    return type(a).nan()


def _clamp_min0(x: _Dual) -> _Dual:
    """torch.clamp(x, min=0) (torch 2.14.1): derivative passes for x > 0 only; 0 at x == 0 and below."""
    if x.v > 0:
        return x
    if x.v <= 0:
        return type(x)(mp.zero)  # value 0, derivative 0
    return type(x).nan()


def _atan2(w: _Dual, h: _Dual, *, drop_norm: bool = False) -> _Dual:
    """atan2(w, h) (= arctan(w/h) for h > 0); ``d = (h dw - w dh) / (w**2 + h**2)``.

    ``drop_norm=True`` omits the ``1/(w**2 + h**2)`` factor (the DIoU paper's /
    darknet's simplified aspect-ratio gradient); the value is unchanged.  At a point
    (w = h = 0) atan2 has no derivative (nor a limit of it): refloss's convention is a
    gradient of 0 there (the factor is 0; with drop_norm, h dw - w dh is 0 anyway).
    """
    value = mp.atan2(w.v, h.v)
    if drop_norm:
        k = mp.one
    else:
        r = w.v * w.v + h.v * h.v
        k = 1 / r if r != 0 else mp.zero
    return type(w)(value, tuple(k * (h.v * dw - w.v * dh) for dw, dh in zip(w.d, h.d)))


def _log(x: _Dual) -> _Dual:
    """Natural log; at x == 0 the value is -inf and the partials NaN."""
    if mp.isnan(x.v) or x.v < 0:
        return type(x).nan()
    if x.v == 0:
        return type(x)(mp.ninf, (mp.nan,) * type(x).N)
    return type(x)(mp.log(x.v), tuple(da / x.v for da in x.d))


def _log1p(x: _Dual) -> _Dual:
    """ln(1 + x); at x == -1 the value is -inf and the partials NaN."""
    if mp.isnan(x.v) or x.v < -1:
        return type(x).nan()
    if x.v == -1:
        return type(x)(mp.ninf, (mp.nan,) * type(x).N)
    return type(x)(mp.log1p(x.v), tuple(da / (1 + x.v) for da in x.d))


def _power(x: _Dual, gamma) -> _Dual:
    """x ** gamma (x >= 0, gamma >= 0 constant), with torch's pow-backward conventions."""
    if mp.isnan(x.v) or x.v < 0:
        return type(x).nan()
    if gamma == 0:
        return type(x)(mp.one)  # 0**0 = 1, derivative 0
    if x.v == 0:
        if gamma < 1:  # infinite derivative: every chained partial is NaN (as autograd's inf*0 / inf-inf)
            return type(x)(mp.zero, (mp.nan,) * type(x).N)
        return type(x)(mp.zero, tuple((da if gamma == 1 else mp.zero) for da in x.d))
    else:
        value = mp.power(x.v, gamma)
        k = gamma * value / x.v
    return type(x)(value, tuple(k * da for da in x.d))


# ------------------------------------------------------------ conversions


def _to_mpf(v):
    """Exact conversion of an mpf / integer / float (Python or NumPy) to mpf."""
    if isinstance(v, mp.mpf):
        return v
    if isinstance(v, numbers.Integral):
        return mp.make_mpf(libmp.from_int(int(v)))
    return exact_mpf(v)  # not mp.mpf(float): that rounds to the working precision


def _box(coords, name: str) -> tuple:
    c = tuple(coords)
    if len(c) != 4:
        raise ValueError(f"{name} must have 4 coordinates (x1, y1, x2, y2), got {len(c)}")
    x1, y1, x2, y2 = (_to_mpf(v) for v in c)
    if not all(mp.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"{name} coordinates must be finite, got {c}")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{name} must satisfy x2 >= x1 and y2 >= y1, got {c}")
    return x1, y1, x2, y2


def _nonnegative(value, name: str):
    v = _to_mpf(value)
    if not (mp.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def _gate(value):
    if value is None:
        return None
    v = _to_mpf(value)
    if not mp.isfinite(v):
        raise ValueError(f"alpha_gate must be a finite number or None, got {value!r}")
    return v


def _seed(pred, target) -> tuple[list, list]:
    """The 8 coordinates as dual numbers with unit partials."""
    p = _box(pred, "pred")
    t = _box(target, "target")
    duals = []
    for i, v in enumerate(p + t):
        d = [mp.zero] * _N
        d[i] = mp.one
        duals.append(_Dual(v, tuple(d)))
    return duals[:4], duals[4:]


def _run(body: Callable, pred, target) -> Result:
    """Evaluate ``body(p, t)`` (p, t: 4 duals each) at DPS + guard digits; round to DPS."""
    with mp.workdps(DPS + _GUARD_DPS):
        p, t = _seed(pred, target)
        out = body(p, t)
    with mp.workdps(DPS):
        d = [+g for g in out.d]
        return +out.v, tuple(d[:4]), tuple(d[4:])


# ------------------------------------------------------------- geometry


class _Geometry:
    """Every shared quantity of the IoU family for one (pred, target) pair."""

    def __init__(self, p, t, eps):
        px1, py1, px2, py2 = p
        tx1, ty1, tx2, ty2 = t
        self.wp, self.hp = px2 - px1, py2 - py1
        self.wt, self.ht = tx2 - tx1, ty2 - ty1
        iw = _clamp_min0(_minimum(px2, tx2) - _maximum(px1, tx1))
        ih = _clamp_min0(_minimum(py2, ty2) - _maximum(py1, ty1))
        self.inter = iw * ih
        self.union = self.wp * self.hp + self.wt * self.ht - self.inter
        self.iou = self.inter / (self.union + eps)
        # 1 - IoU as one quotient of exact quantities: no cancellation when IoU -> 1
        self.one_minus_iou = (self.union + eps - self.inter) / (self.union + eps)
        self.cw = _maximum(px2, tx2) - _minimum(px1, tx1)
        self.ch = _maximum(py2, ty2) - _minimum(py1, ty1)
        self.enclosing = self.cw * self.ch
        half = mp.mpf(0.5)
        dx = (px1 + px2 - tx1 - tx2) * half
        dy = (py1 + py2 - ty1 - ty2) * half
        self.rho2 = dx.square() + dy.square()
        self.c2 = self.cw.square() + self.ch.square() + eps
        self.eps = eps

    def giou_penalty(self) -> _Dual:
        return (self.enclosing - self.union) / (self.enclosing + self.eps)

    def giou(self) -> _Dual:
        return self.iou - self.giou_penalty()

    def neg_log_iou(self) -> _Dual:
        if self.iou.v < 0.5:
            return -_log(self.iou)
        return -_log1p(-self.one_minus_iou)  # accurate for IoU -> 1

    def distance_penalty(self) -> _Dual:
        return self.rho2 / self.c2

    def diou(self) -> _Dual:
        return self.iou - self.distance_penalty()

    def aspect_v(self, darknet: bool) -> _Dual:
        """v = (4/pi**2) (atan2(wt, ht) - atan2(wp, hp))**2; darknet: pred side without 1/(w^2+h^2)."""
        diff = _atan2(self.wt, self.ht) - _atan2(self.wp, self.hp, drop_norm=darknet)
        return diff.square() * (4 / mp.pi**2)

    def alpha_v(self, alpha_grad: bool, alpha_gate, darknet: bool) -> _Dual:
        """alpha * v = v**2 / ((1 - IoU) + v + eps) (eps where torchvision puts it); 0 (value and
        gradient) when v == 0 or gated off."""
        if alpha_gate is not None and not (self.iou.v > alpha_gate):
            return _Dual(mp.zero)
        v = self.aspect_v(darknet)
        if v.v == 0:
            return _Dual(mp.zero)
        denom = self.one_minus_iou + v + self.eps
        if alpha_grad:
            return v.square() / denom
        if mp.isnan(denom.v) or denom.v == 0:
            return _Dual.nan()
        alpha = v.v / denom.v  # a constant in the gradient
        return _Dual(v.v * v.v / denom.v, tuple(alpha * dv for dv in v.d))

    def eiou_loss(self) -> _Dual:
        return (self.one_minus_iou + self.distance_penalty()
                + (self.wp - self.wt).square() / (self.cw.square() + self.eps)
                + (self.hp - self.ht).square() / (self.ch.square() + self.eps))


def _geometry_run(pred, target, eps, body: Callable[[_Geometry], _Dual]) -> Result:
    eps = _nonnegative(eps, "eps")
    return _run(lambda p, t: body(_Geometry(p, t, eps)), pred, target)


# ------------------------------------------------------------ public API


def iou(pred, target, eps=0.0) -> Result:
    """Metric IoU ``I / (U + eps)`` (no paper; the Jaccard index of the two boxes)."""
    return _geometry_run(pred, target, eps, lambda g: g.iou)


def iou_loss(pred, target, eps=0.0) -> Result:
    """IoU loss ``1 - IoU`` (as in UnitBox, arXiv 1608.01471, and mmdet ``IoULoss(mode='linear')``)."""
    return _geometry_run(pred, target, eps, lambda g: g.one_minus_iou)


def log_iou_loss(pred, target, eps=0.0) -> Result:
    """UnitBox loss ``-ln(IoU)`` (Yu et al., arXiv 1608.01471).

    ``+inf`` when IoU = 0 (disjoint or touching boxes), and then every partial is NaN.
    """
    return _geometry_run(pred, target, eps, lambda g: g.neg_log_iou())


def giou(pred, target, eps=0.0) -> Result:
    """Generalized IoU ``IoU - (C - U) / (C + eps)`` (Rezatofighi et al., arXiv 1902.09630),

    C = area of the smallest enclosing axis-aligned box.
    """
    return _geometry_run(pred, target, eps, lambda g: g.giou())


def giou_loss(pred, target, eps=0.0) -> Result:
    """GIoU loss ``1 - GIoU`` (arXiv 1902.09630)."""
    return _geometry_run(pred, target, eps, lambda g: g.one_minus_iou + g.giou_penalty())


def diou(pred, target, eps=0.0) -> Result:
    """Distance IoU ``IoU - rho2 / c2`` (Zheng et al., arXiv 1911.08287).

    rho2 = squared distance of the box centres, c2 = cw**2 + ch**2 + eps the
    squared diagonal of the enclosing box.
    """
    return _geometry_run(pred, target, eps, lambda g: g.diou())


def diou_loss(pred, target, eps=0.0) -> Result:
    """DIoU loss ``1 - IoU + rho2 / c2`` (arXiv 1911.08287)."""
    return _geometry_run(pred, target, eps, lambda g: g.one_minus_iou + g.distance_penalty())


def ciou(pred, target, eps=0.0, *, alpha_grad: bool = False, alpha_gate=None,
         darknet: bool = False) -> Result:
    """Complete IoU ``DIoU - alpha v`` (Zheng et al., arXiv 1911.08287).

    ``v = (4/pi**2) (atan2(wt, ht) - atan2(wp, hp))**2``,
    ``alpha = v / ((1 - IoU) + v + eps)`` (eps as torchvision); ``alpha v`` is evaluated as
    ``v**2 / ((1 - IoU) + v + eps)`` and is exactly 0 (value and gradient) when
    ``v == 0`` (equal aspect ratios, identical boxes included).

    * ``alpha_grad=False`` (default): alpha is a constant in the gradient
      (``d(alpha v) = alpha dv``, as the paper's code and most libraries);
      ``True``: the exact total derivative of ``v**2 / ((1 - IoU) + v)``.
    * ``alpha_gate=t`` (float) replaces alpha by 0 unless ``IoU > t``, in the
      value too (mmdetection / YOLACT use t = 0.5); ``None`` (default): no gate.
    * ``darknet=True``: the paper's simplified ``dv/dwp``, ``dv/dhp`` without the
      ``1/(wp**2 + hp**2)`` factor, i.e. with ``D = atan2(wt,ht) - atan2(wp,hp)``
      ``dv/dwp = -(8/pi**2) D hp`` and ``dv/dhp = +(8/pi**2) D wp`` (true:
      both divided by ``wp**2 + hp**2``).  Target-side partials keep the exact
      form; the value is unchanged.
    """
    gate = _gate(alpha_gate)
    return _geometry_run(
        pred, target, eps, lambda g: g.diou() - g.alpha_v(bool(alpha_grad), gate, bool(darknet)))


def ciou_loss(pred, target, eps=0.0, *, alpha_grad: bool = False, alpha_gate=None,
              darknet: bool = False) -> Result:
    """CIoU loss ``1 - CIoU = 1 - IoU + rho2 / c2 + alpha v`` (arXiv 1911.08287).

    Options as :func:`ciou`; 0 (not NaN) for identical boxes.
    """
    gate = _gate(alpha_gate)
    return _geometry_run(
        pred, target, eps,
        lambda g: g.one_minus_iou + g.distance_penalty() + g.alpha_v(bool(alpha_grad), gate, bool(darknet)))


def eiou_loss(pred, target, eps=0.0) -> Result:
    """EIoU loss (Zhang et al., "Focal and Efficient IOU Loss", arXiv 2101.08158):

    ``1 - IoU + rho2 / c2 + (wp - wt)**2 / (cw**2 + eps) + (hp - ht)**2 / (ch**2 + eps)``.
    """
    return _geometry_run(pred, target, eps, lambda g: g.eiou_loss())


def focal_eiou_loss(pred, target, gamma=0.5, eps=0.0, weight_grad: bool = False) -> Result:
    """Focal-EIoU (arXiv 2101.08158, v2), per element: ``IoU**gamma * eiou_loss``.

    ``weight_grad=False`` (default): the weight ``IoU**gamma`` is a constant in
    the gradient (``IoU**gamma * d eiou_loss``); ``True``: the full product
    rule.  Where the boxes do not overlap (I = 0) the value and every partial are
    0: the weight is 0 there and, for disjoint boxes, identically 0 nearby (torch
    autograd gives NaN for weight_grad=True there, from 0 * inf; refloss's convention
    is the limit).  Normalising a batch by the sum of the weights is the caller's
    business.  ``gamma >= 0``.
    """
    gamma = _nonnegative(gamma, "gamma")

    def body(g: _Geometry) -> _Dual:
        if g.inter.v == 0 and g.union.v + eps > 0:
            return _const(g.inter)  # value 0, partials 0 (zero union stays NaN below)
        weight = _power(g.iou, gamma)
        loss = g.eiou_loss()
        if weight_grad:
            return weight * loss
        return _const(weight) * loss

    return _geometry_run(pred, target, eps, body)


def focal_l1_eiou_loss(pred, target, beta=0.8, eps=0.0) -> Result:
    """Focal-L1 applied to the EIoU loss (arXiv 2101.08158 v1): ``L_f(eiou_loss)``, the
    partials by the chain rule ``L_f'(eiou_loss) * d eiou_loss``, with the Focal-L1 profile of
    :func:`refloss.oracle.elementwise.focal_l1` (``alpha = e beta``; value and slope 0 at 0)."""
    from .elementwise import _focal_l1_profile

    with mp.workdps(DPS + _GUARD_DPS):  # its constants (alpha = e beta, ln beta) at the working precision
        profile = _focal_l1_profile(beta)

    def body(g: _Geometry) -> _Dual:
        e = g.eiou_loss()
        if mp.isnan(e.v):
            return _Dual.nan()
        k = profile.slope(e.v)
        return _Dual(profile.value(e.v), tuple(k * d for d in e.d))

    return _geometry_run(pred, target, eps, body)


# ------------------------------------------- SIoU and Wise-IoU (issue 15)

__all__ += ["siou_loss", "wiou_loss"]


def _exp(x: _Dual) -> _Dual:
    if mp.isnan(x.v):
        return type(x).nan()
    v = mp.exp(x.v)
    return type(x)(v, tuple(v * da for da in x.d))


def _sqrt(x: _Dual) -> _Dual:
    """sqrt(x) for x > 0 (derivative 1/(2 sqrt x))."""
    v = mp.sqrt(x.v)
    return type(x)(v, tuple(da / (2 * v) for da in x.d))


def _sin(x: _Dual) -> _Dual:
    c = mp.cos(x.v)
    return type(x)(mp.sin(x.v), tuple(c * da for da in x.d))


def _asin(x: _Dual) -> _Dual:
    """arcsin(x) for |x| < 1."""
    k = 1 / mp.sqrt(1 - x.v * x.v)
    return type(x)(mp.asin(x.v), tuple(k * da for da in x.d))


def _abs(x: _Dual) -> _Dual:
    """|x| with torch.abs's derivative sign(x), 0 at x == 0."""
    s = 1 if x.v > 0 else (-1 if x.v < 0 else 0)
    return type(x)(abs(x.v), tuple(s * da for da in x.d))


def siou_loss(pred, target, eps=0.0, theta=4.0, positive_exponent: bool = False) -> Result:
    """SIoU loss (Gevorgyan, "SIoU Loss: More Powerful Learning for Bounding Box Regression",
    arXiv 2205.12740), as the paper writes it: ``L = 1 - IoU + (Delta + Omega) / 2``.

    * Angle cost: with the centre offsets ``c_w' = b_cx^gt - b_cx``, ``c_h' = b_cy^gt - b_cy`` and
      ``sigma = sqrt(c_w'^2 + c_h'^2)``, ``sin(alpha) = |c_h'| / sigma``; the paper minimises alpha
      when ``alpha <= pi/4`` and ``beta = pi/2 - alpha`` otherwise, so ``x = sin(alpha)`` if that is
      ``<= sqrt(2)/2``, else ``x = sin(beta) = |c_w'| / sigma``; ``Lambda = 1 - 2 sin^2(arcsin(x) - pi/4)``.
    * Distance cost: ``gamma = 2 - Lambda``, ``rho_x = c_w'^2 / (c_w^2 + eps)``, ``rho_y = c_h'^2 /
      (c_h^2 + eps)`` (``c_w``, ``c_h`` the enclosing box's width and height),
      ``Delta = sum_t (1 - exp(-gamma rho_t))``; ``positive_exponent=True`` (mmdetection's default
      ``neg_gamma=False``): ``Delta = sum_t (1 - exp(gamma rho_t))``.
    * Shape cost: ``omega_w = |w - w^gt| / (max(w, w^gt) + eps)``, ``omega_h`` likewise,
      ``Omega = sum_t (1 - exp(-omega_t))**theta`` (``theta >= 1``; torch's pow conventions).

    At coincident centres (``sigma = 0``) the angle is 0/0; refloss's convention is the limit of
    the distance cost, 0 with gradient 0 (``|rho_t dgamma| = O(sigma)``).  ``|.|`` has torch's
    derivative sign(x), 0 at 0.
    """
    theta = _to_mpf(theta)
    if not (mp.isfinite(theta) and theta >= 1):
        raise ValueError(f"theta must be finite and >= 1, got {theta!r}")

    def body(g: _Geometry, p, t) -> _Dual:
        half = mp.mpf(0.5)
        cw_off = (t[0] + t[2] - p[0] - p[2]) * half
        ch_off = (t[1] + t[3] - p[1] - p[3]) * half
        if cw_off.v == 0 and ch_off.v == 0:
            distance = _Dual(mp.zero)
        else:
            sigma = _sqrt(cw_off.square() + ch_off.square())
            sin_alpha = _abs(ch_off) / sigma
            x = sin_alpha if sin_alpha.v <= mp.sqrt(2) / 2 else _abs(cw_off) / sigma
            angle = 1 - 2 * _sin(_asin(x) - mp.pi / 4).square()
            gamma = 2 - angle
            sign = 1 if positive_exponent else -1
            distance = _Dual(mp.zero)
            for off, c in ((cw_off, g.cw), (ch_off, g.ch)):
                rho = off.square() / (c.square() + g.eps)
                distance = distance + (1 - _exp(sign * gamma * rho))
        shape = _Dual(mp.zero)
        for a, b in ((g.wp, g.wt), (g.hp, g.ht)):
            omega = _abs(a - b) / (_maximum(a, b) + g.eps)
            shape = shape + _power(1 - _exp(-omega), theta)
        return g.one_minus_iou + (distance + shape) * mp.mpf(0.5)

    eps = _nonnegative(eps, "eps")
    return _run(lambda p, t: body(_Geometry(p, t, eps), p, t), pred, target)


def wiou_loss(pred, target, eps=0.0, version=1, iou_mean=1.0, gamma=0.5, alpha=1.9, delta=3.0,
              enclosing_grad: bool = False) -> Result:
    """Wise-IoU loss (Tong et al., "Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing
    Mechanism", arXiv 2301.10051).

    * v1: ``L = R * L_IoU``, ``L_IoU = 1 - IoU``, ``R = exp(((x - x_gt)^2 + (y - y_gt)^2) / (W_g^2 + H_g^2)*)``
      (centres, and the enclosing box's width and height; ``+ eps`` in the denominator as DIoU's);
      the ``*`` detaches the denominator: a constant in the gradient (``enclosing_grad=True``
      differentiates it).
    * v2: ``L = (L_IoU* / iou_mean)**gamma * L_v1``.
    * v3: ``L = r * L_v1``, ``r = beta / (delta * alpha**(beta - delta))``, ``beta = L_IoU* / iou_mean``.

    ``iou_mean`` is the running mean of L_IoU the paper keeps as training state (``> 0``); the
    focusing factors are constants in the gradient (``*``).
    """
    version = int(version) if version in (1, 2, 3) and not isinstance(version, bool) else None
    if version is None:
        raise ValueError("version must be 1, 2 or 3")
    iou_mean, gamma, alpha, delta = (_to_mpf(v) for v in (iou_mean, gamma, alpha, delta))
    for name, v in (("iou_mean", iou_mean), ("gamma", gamma), ("alpha", alpha), ("delta", delta)):
        if not (mp.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")

    def body(g: _Geometry) -> _Dual:
        c2 = g.c2 if enclosing_grad else _const(g.c2)
        l_iou = g.one_minus_iou
        v1 = _exp(g.rho2 / c2) * l_iou
        if version == 1 or mp.isnan(l_iou.v):
            return v1
        beta = l_iou.v / iou_mean
        if version == 2:
            factor = mp.power(beta, gamma)
        else:
            factor = beta / (delta * mp.power(alpha, beta - delta))
        return _Dual(factor * v1.v, tuple(factor * d for d in v1.d))

    return _geometry_run(pred, target, eps, body)
# ---------------------------------------------- issue 15: IoU variants (Alpha-IoU, Inner-IoU, NWD, MPDIoU)

__all__ += ["alpha_iou_loss", "inner_iou_loss", "nwd_loss", "mpdiou_loss", "shape_iou_loss"]


def _power0(x: _Dual, alpha) -> _Dual:
    """x ** alpha (x >= 0, alpha > 0) with derivative alpha x**(alpha - 1), taken as 0 at x == 0 (refloss's
    convention for the Alpha-IoU powers: the limit for alpha > 1; infinite for alpha < 1)."""
    if mp.isnan(x.v) or x.v < 0:
        return type(x).nan()
    if x.v == 0:
        return type(x)(mp.zero)
    value = mp.power(x.v, alpha)
    k = alpha * value / x.v
    return type(x)(value, tuple(k * da for da in x.d))


def _positive(value, name: str):
    v = _to_mpf(value)
    if not (mp.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


_ALPHA_FORMS = ("iou", "giou", "diou", "ciou")


def alpha_iou_loss(pred, target, alpha=3.0, form="iou", eps=0.0, beta_grad: bool = False) -> Result:
    """Alpha-IoU loss (He et al., arXiv 2110.13675), the paper's power family
    ``1 - IoU**alpha + P**alpha`` with the base loss's penalty P: none (``form="iou"``, Eq. of
    L_alpha-IoU), ``(C - U)/(C + eps)`` (alpha-GIoU, |C \\ (B u B_gt)| / |C|) or ``rho2 / c2``
    (alpha-DIoU, rho^(2 alpha) / c^(2 alpha)); ``form="ciou"`` adds ``(beta v)**alpha`` to alpha-DIoU
    (alpha-CIoU, CIoU's v and beta = v / ((1 - IoU) + v + eps), beta a constant in the gradient unless
    ``beta_grad``).  Powers have derivative 0 where their base is 0."""
    alpha = _positive(alpha, "alpha")
    if form not in _ALPHA_FORMS:
        raise ValueError(f"form must be one of {_ALPHA_FORMS}, got {form!r}")

    def body(g: _Geometry) -> _Dual:
        # 1 - IoU**alpha as 1 - exp(alpha log(1 - (1 - IoU))) from the exact 1 - IoU
        omi = g.one_minus_iou
        if mp.isnan(omi.v):
            return _Dual.nan()
        if g.inter.v == 0:
            loss = _Dual(mp.one)
        else:
            iou = 1 - omi
            lg = mp.log1p(-omi.v)
            powv = mp.exp(alpha * lg)
            k = alpha * powv / iou.v
            loss = _Dual(-mp.expm1(alpha * lg), tuple(-k * d for d in iou.d))
        if form == "giou":
            loss = loss + _power0(g.giou_penalty(), alpha)
        elif form in ("diou", "ciou"):
            loss = loss + _power0(g.distance_penalty(), alpha)
        if form == "ciou":  # (beta v)^alpha, beta = v/((1 - IoU) + v + eps) a constant in the gradient (CIoU's)
            loss = loss + _power0(g.alpha_v(bool(beta_grad), None, False), alpha)
        return loss

    return _geometry_run(pred, target, eps, body)


def inner_iou_loss(pred, target, ratio=0.75, eps=0.0) -> Result:
    """Inner-IoU loss (Zhang, Xu, Zhang, arXiv 2311.02877): ``1 - IoU^inner``, the IoU of the auxiliary boxes
    with the centre of each box and its width and height times ``ratio``
    (b_l = x_c - w ratio/2, b_r = x_c + w ratio/2, ...)."""
    ratio = _positive(ratio, "ratio")
    eps = _nonnegative(eps, "eps")

    def body(p, t):
        def inner(b):
            x1, y1, x2, y2 = b
            half = mp.mpf(0.5)
            cx, cy = (x1 + x2) * half, (y1 + y2) * half
            hw, hh = (x2 - x1) * (ratio * half), (y2 - y1) * (ratio * half)
            return cx - hw, cy - hh, cx + hw, cy + hh
        return _Geometry(inner(p), inner(t), eps).one_minus_iou

    return _run(body, pred, target)


def nwd_loss(pred, target, c=12.8, eps=0.0) -> Result:
    """NWD loss (Wang et al., arXiv 2110.13389): each box the 2-D Gaussian N(mu, Sigma), mu its centre,
    Sigma = diag(w**2/4, h**2/4); W2**2 = |mu_p - mu_t|**2 + |Sigma_p**(1/2) - Sigma_t**(1/2)|_F**2 (+ eps);
    NWD = exp(-sqrt(W2**2) / c), loss 1 - NWD.  At W2 = 0 the value is 0 and the partials 0 (refloss's
    convention: sqrt has no derivative there)."""
    c = _positive(c, "c")
    eps = _nonnegative(eps, "eps")

    def body(p, t):
        half = mp.mpf(0.5)

        def gaussian(b):
            x1, y1, x2, y2 = b
            return ((x1 + x2) * half, (y1 + y2) * half), ((x2 - x1) * half, (y2 - y1) * half)

        (mp_, sp_), (mt, st) = gaussian(p), gaussian(t)
        w2 = eps + sum(((a - b).square() for a, b in zip(mp_ + sp_, mt + st)), _Dual(mp.zero))
        if w2.v == 0:
            return _Dual(mp.zero)
        e = _exp(-_sqrt(w2) / c)
        return _Dual(-mp.expm1(-mp.sqrt(w2.v) / c), tuple(-d for d in e.d))

    return _run(body, pred, target)


def mpdiou_loss(pred, target, image_size=None, eps=0.0) -> Result:
    """MPDIoU loss (Ma and Xu, arXiv 2307.07662): ``1 - MPDIoU``,
    ``MPDIoU = IoU - d1**2/(w**2 + h**2) - d2**2/(w**2 + h**2)``, d1 (d2) the distance between the
    top-left (bottom-right) corners of the boxes, ``(w, h) = image_size`` the input image's size."""
    if image_size is None or len(image_size) != 2:
        raise ValueError(f"image_size must be (width, height), got {image_size!r}")
    w, h = (_positive(v, "image_size") for v in image_size)

    def body(g: _Geometry, p, t) -> _Dual:
        d1 = (p[0] - t[0]).square() + (p[1] - t[1]).square()
        d2 = (p[2] - t[2]).square() + (p[3] - t[3]).square()
        return g.one_minus_iou + (d1 + d2) / (w * w + h * h)

    eps = _nonnegative(eps, "eps")
    return _run(lambda p, t: body(_Geometry(p, t, eps), p, t), pred, target)


def shape_iou_loss(pred, target, scale=0.0, eps=0.0) -> Result:
    """Shape-IoU loss (Zhang and Zhang, arXiv 2312.17663), as the paper writes it:
    ``L = 1 - IoU + distance^shape + 0.5 Omega^shape`` with the target's weights
    ``ww = 2 w_gt**scale / (w_gt**scale + h_gt**scale)``, ``hh = 2 h_gt**scale / (w_gt**scale + h_gt**scale)``,
    ``distance^shape = hh (x_c - x_c^gt)**2 / c**2 + ww (y_c - y_c^gt)**2 / c**2`` (c the enclosing box's
    diagonal, ``c**2 + eps`` as DIoU's), ``Omega^shape = sum_t (1 - exp(-omega_t))**4``,
    ``omega_w = hh |w - w_gt| / max(w, w_gt)``, ``omega_h = ww |h - h_gt| / max(h, h_gt)`` (no eps there, as
    the authors' code: NaN for two zero-width boxes).  Powers ``x**scale`` have derivative 0 at x = 0 (refloss's convention);
    ``x**0 = 1`` for every x."""
    scale = _to_mpf(scale)
    if not (mp.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be finite and >= 0, got {scale!r}")

    def body(g: _Geometry, p, t) -> _Dual:
        if scale == 0:
            ww = hh = _Dual(mp.one)
        else:
            a, b = _power0(g.wt, scale), _power0(g.ht, scale)
            ww, hh = 2 * a / (a + b), 2 * b / (a + b)
        half = mp.mpf(0.5)
        dx = (p[0] + p[2] - t[0] - t[2]) * half
        dy = (p[1] + p[3] - t[1] - t[3]) * half
        distance = (hh * dx.square() + ww * dy.square()) / g.c2
        shape = _Dual(mp.zero)
        for weight, a, b in ((hh, g.wp, g.wt), (ww, g.hp, g.ht)):
            omega = weight * _abs(a - b) / _maximum(a, b)
            shape = shape + _power(1 - _exp(-omega), 4)
        return g.one_minus_iou + distance + shape * half

    eps = _nonnegative(eps, "eps")
    return _run(lambda p, t: body(_Geometry(p, t, eps), p, t), pred, target)
