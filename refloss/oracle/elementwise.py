"""50-digit mpmath oracle for element-wise box-regression losses, written from the papers.

Every public loss takes ``pred, target`` (Python/NumPy floats, converted exactly
with ``exact_mpf(v)``; mpf inputs are used as they are) and float
parameters (also taken at their exact binary value), and returns the mpf triple
``(L, dL/dpred, dL/dtarget)`` computed at ``DPS`` = 50 decimal digits.

All losses are radial: with ``x = pred - target`` (formed exactly) and
``a = |x|``, ``L = f(a)``, ``dL/dpred = f'(a) * sign(x)`` and
``dL/dtarget = -dL/dpred``.  Conventions follow PyTorch autograd:
``sign(0) = 0`` (so the gradient at x = 0 is 0), and at a branch point
``a == beta`` (``delta``) the outer branch is used (PyTorch/mmdet test
``a < beta`` for the inner one); the gradients are continuous there anyway.

Losses defined by their gradient (smooth_l1, huber, balanced_l1, focal_l1)
also have a ``<name>_by_quadrature`` twin that obtains ``L`` by integrating
``f'`` from 0 to ``a`` with ``mp.quad`` -- a cross-check of the closed forms.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from mpmath import mp

from .rounding import exact_mpf


__all__ = [
    "DPS",
    "l1",
    "mse",
    "smooth_l1",
    "huber",
    "balanced_l1",
    "focal_l1",
    "smooth_l1_by_quadrature",
    "huber_by_quadrature",
    "balanced_l1_by_quadrature",
    "focal_l1_by_quadrature",
    "QUADRATURE",
]

DPS = 50

Triple = tuple  # (value, d/dpred, d/dtarget), all mpf


class _Profile(NamedTuple):
    """A radial loss L = value(a), a = |x| >= 0, with dL/da = slope(a) and a branch point."""

    value: Callable
    slope: Callable
    kink: object = None  # mpf or None; where mp.quad must split the interval


def _to_mpf(v):
    return v if isinstance(v, mp.mpf) else exact_mpf(v)  # exact at any working precision


def _positive(**params):
    """Convert parameters to mpf, requiring each to be finite and > 0."""
    out = [_to_mpf(v) for v in params.values()]
    for (name, _), v in zip(params.items(), out):
        if not (mp.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    return out if len(out) > 1 else out[0]


def _evaluate(pred, target, make_profile, *params, quadrature: bool = False) -> Triple:
    """Shared driver: value/gradients of a radial loss from its profile (via sign(x))."""
    with mp.workdps(DPS):
        profile = make_profile(*params)
        x = mp.fsub(_to_mpf(pred), _to_mpf(target), exact=True)
        a = abs(x)
        value = _integrate(profile, a) if quadrature else profile.value(a)
        grad = profile.slope(a) * mp.sign(x)
        return +value, +grad, -grad


def _integrate(profile: _Profile, a):
    """L(a) = integral_0^a slope(t) dt, split at the branch point."""
    if a == 0:
        return mp.zero
    k = profile.kink
    points = [0, k, a] if k is not None and 0 < k < a else [0, a]
    return mp.quad(profile.slope, points)


def _one_plus_u_log1p_minus_u(u):
    """(1+u)*ln(1+u) - u for u >= 0, accurate also for tiny u (the result is ~u**2/2).

    The two terms cancel to about |log2 u| bits, so that many extra bits are used.
    """
    with mp.extraprec(max(0, -mp.mag(u)) + 10 if u else 0):
        r = (1 + u) * mp.log1p(u) - u
    return +r


# --------------------------------------------------------------------- profiles


def _l1_profile():
    return _Profile(value=lambda a: a, slope=lambda a: mp.one)


def _mse_profile():
    return _Profile(value=lambda a: a * a, slope=lambda a: 2 * a)


def _smooth_l1_profile(beta):
    beta = _to_mpf(beta)
    if not (mp.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    if beta == 0:
        return _l1_profile()
    return _Profile(
        value=lambda a: a * a / (2 * beta) if a < beta else a - beta / 2,
        slope=lambda a: a / beta if a < beta else mp.one,
        kink=beta,
    )


def _huber_profile(delta):
    delta = _positive(delta=delta)
    return _Profile(
        value=lambda a: a * a / 2 if a < delta else delta * (a - delta / 2),
        slope=lambda a: a if a < delta else delta,
        kink=delta,
    )


def _balanced_l1_profile(beta, alpha, gamma):
    beta, alpha, gamma = _positive(beta=beta, alpha=alpha, gamma=gamma)
    b = mp.expm1(gamma / alpha)  # alpha * ln(1 + b) = gamma

    def value(a):
        if a < beta:
            return alpha * beta / b * _one_plus_u_log1p_minus_u(b * a / beta)
        return gamma * a + gamma * beta / b - alpha * beta

    def slope(a):
        return alpha * mp.log1p(b * a / beta) if a < beta else gamma

    return _Profile(value, slope, kink=beta)


def _focal_l1_profile(beta):
    beta = _positive(beta=beta)
    alpha = mp.e * beta  # peak of the gradient, alpha / (e * beta), equals 1
    log_beta = mp.log(beta)
    c = alpha * (2 * log_beta + 1) / 4  # continuity at a = 1

    def value(a):
        if a == 0:
            return mp.zero
        if a <= 1:
            return alpha * a * a * (1 - 2 * mp.log(beta * a)) / 4
        return -alpha * log_beta * a + c

    def slope(a):
        if a == 0:
            return mp.zero
        return -alpha * a * mp.log(beta * a) if a <= 1 else -alpha * log_beta

    return _Profile(value, slope, kink=mp.one)


# ----------------------------------------------------------------- public API


def l1(pred, target) -> Triple:
    """L1 loss ``|x|``, gradient ``sign(x)`` (``sign(0) = 0``), x = pred - target."""
    return _evaluate(pred, target, _l1_profile)


def mse(pred, target) -> Triple:
    """Squared error ``x**2``, gradient ``2x``, x = pred - target."""
    return _evaluate(pred, target, _mse_profile)


def smooth_l1(pred, target, beta) -> Triple:
    """Smooth L1 (Fast R-CNN, arXiv 1504.08083; PyTorch ``smooth_l1_loss`` with ``beta``).

    ``L = 0.5 x**2 / beta`` if ``|x| < beta`` else ``|x| - 0.5 beta``;
    ``dL/da = a / beta`` resp. ``1``.  ``beta = 0`` is L1 exactly; ``beta < 0`` raises.
    """
    return _evaluate(pred, target, _smooth_l1_profile, beta)


def huber(pred, target, delta) -> Triple:
    """Huber loss (Huber 1964; PyTorch ``huber_loss``), ``delta > 0``.

    ``L = 0.5 x**2`` if ``|x| < delta`` else ``delta (|x| - 0.5 delta)``;
    ``dL/da = a`` resp. ``delta``.  (Equals ``delta * smooth_l1(beta=delta)``.)
    """
    return _evaluate(pred, target, _huber_profile, delta)


def balanced_l1(pred, target, beta, alpha, gamma) -> Triple:
    """Balanced L1 of Libra R-CNN (arXiv 1904.02701), defined by its gradient.

    ``dL/da = alpha ln(1 + b a / beta)`` for ``a < beta`` and ``gamma`` for
    ``a >= beta``, with ``b = e**(gamma/alpha) - 1`` (gradient continuity
    ``alpha ln(1 + b) = gamma``), ``L(0) = 0``, L continuous at beta.  Closed form
    with ``u = b a / beta``: ``(alpha beta / b) ((1+u) ln(1+u) - u)`` for
    ``a < beta``, ``gamma a + gamma beta / b - alpha beta`` for ``a >= beta``.
    At beta = 1 this is the paper's ``alpha/b (b a + 1) ln(b a + 1) - alpha a``
    and ``gamma a + gamma/b - alpha``; for other beta it satisfies
    ``L_beta(x) = beta L_1(x / beta)``.  (mmdet's implementation instead uses
    ``alpha/b (b a + 1) ln(b a / beta + 1) - alpha a`` for the inner branch,
    which is not the integral of the stated gradient when beta != 1.)
    """
    return _evaluate(pred, target, _balanced_l1_profile, beta, alpha, gamma)


def focal_l1(pred, target, beta) -> Triple:
    """Focal-L1 of "Focal and Efficient IOU Loss" (arXiv 2101.08158), beta > 0.

    With ``a = |x|`` and ``alpha = e beta`` (so the gradient's peak
    ``alpha / (e beta)`` is 1): ``dL/da = -alpha a ln(beta a)`` for
    ``0 < a <= 1``, ``-alpha ln(beta)`` for ``a > 1``;
    ``L = alpha a**2 (1 - 2 ln(beta a)) / 4`` for ``0 < a <= 1`` (0 at a = 0),
    ``L = -alpha ln(beta) a + C`` for ``a > 1`` with ``C = alpha (2 ln beta + 1) / 4``.
    The branch point is a = 1 for every beta.
    """
    return _evaluate(pred, target, _focal_l1_profile, beta)


def smooth_l1_by_quadrature(pred, target, beta) -> Triple:
    """:func:`smooth_l1` with ``L`` = mp.quad of ``dL/da`` over [0, |x|] (self-test only)."""
    return _evaluate(pred, target, _smooth_l1_profile, beta, quadrature=True)


def huber_by_quadrature(pred, target, delta) -> Triple:
    """:func:`huber` with ``L`` = mp.quad of ``dL/da`` over [0, |x|] (self-test only)."""
    return _evaluate(pred, target, _huber_profile, delta, quadrature=True)


def balanced_l1_by_quadrature(pred, target, beta, alpha, gamma) -> Triple:
    """:func:`balanced_l1` with ``L`` = mp.quad of ``dL/da`` over [0, |x|] (self-test only)."""
    return _evaluate(pred, target, _balanced_l1_profile, beta, alpha, gamma, quadrature=True)


def focal_l1_by_quadrature(pred, target, beta) -> Triple:
    """:func:`focal_l1` with ``L`` = mp.quad of ``dL/da`` over [0, |x|] (self-test only)."""
    return _evaluate(pred, target, _focal_l1_profile, beta, quadrature=True)


# the quadrature twins of the losses defined by their gradient (a cross-check of the closed
# forms; which oracle checks which kernel is refloss/_reference.py)
QUADRATURE = {
    "smooth_l1": smooth_l1_by_quadrature,
    "huber": huber_by_quadrature,
    "balanced_l1": balanced_l1_by_quadrature,
    "focal_l1": focal_l1_by_quadrature,
}
