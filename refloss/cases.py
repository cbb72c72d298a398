"""Built-in battery of (pred, target) inputs for element-wise losses (NumPy only).

Every array is constructed in the requested dtype (float32 or float64), so each
value is exactly representable there and ulp neighbours are taken with
``np.nextafter`` in that dtype.  ``pred = target + x`` is evaluated in the
dtype; when that sum is inexact the stored pred/target (not the intended x)
define the case, which is what an oracle should evaluate anyway.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINK_GROUPS", "elementwise_battery", "elementwise_cases", "kinks_from_params", "near_kink",
           "large_target_cases"]

KINK_GROUPS = frozenset({"kink", "zero"})  # groups sitting on non-smooth points

_KINK_KEYS = ("beta", "delta")
_DECADE_TARGETS = (0.0, 0.37, -2.5, 1e3)
_KINK_TARGETS = (0.0, 1.0)
_ZERO_TARGETS = (0.0, 1e-8, 0.37, -2.5, 1.0, 1e3, -1e8)
_ULP_STEPS = (1, 2, 16)
_SMALL_NORMAL = {np.dtype(np.float64): 1e-300, np.dtype(np.float32): 1e-37}


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _SMALL_NORMAL:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def kinks_from_params(params: dict, kinks=()) -> tuple[float, ...]:
    """Sorted distinct kink positions |x| = k: positive ``beta``/``delta`` in params plus ``kinks``.

    (For focal_l1 the kink is |x| = 1 whatever beta is: pass ``kinks=(1.0,)``;
    its beta then adds a harmless extra set of kink cases.)
    """
    found = [float(params[key]) for key in _KINK_KEYS if key in params and params[key] > 0]
    return tuple(sorted(set(found) | {float(k) for k in kinks}))


def _with_targets(x: np.ndarray, targets, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """pred = t + x (in dt) for every x and each target t, concatenated."""
    x = np.asarray(x, dtype=dt)
    tgt = np.concatenate([np.full(x.shape, t, dtype=dt) for t in targets])
    return tgt + np.tile(x, len(targets)), tgt


def _both_signs(mags: np.ndarray) -> np.ndarray:
    return np.concatenate([mags, -mags])


def _ulp_steps(k, n: int, dt: np.dtype):
    """k moved n ulps up and n ulps down, in dt."""
    up = down = k
    for _ in range(n):
        up = np.nextafter(up, dt.type(np.inf))
        down = np.nextafter(down, dt.type(-np.inf))
    return up, down


def _kink_magnitudes(k: float, dt: np.dtype) -> np.ndarray:
    k = dt.type(k)  # the kink as the dtype sees it (rounded once)
    mags = [k]
    for n in _ULP_STEPS:
        mags.extend(_ulp_steps(k, n, dt))
    mags += [k * dt.type(1 + 1e-6), k * dt.type(1 - 1e-6)]
    mags = np.array(mags, dtype=dt)
    fi = np.finfo(dt)
    return mags[(mags >= fi.tiny) & (mags <= fi.max)]  # no subnormals, no inf


def _decades(dt):
    mags = np.logspace(-8, 8, 16 * 4 + 1).astype(dt)  # 4 points per decade
    return _with_targets(_both_signs(mags), _DECADE_TARGETS, dt)


def _kink(dt, kinks):
    mags = np.concatenate([_kink_magnitudes(k, dt) for k in kinks])
    return _with_targets(_both_signs(mags), _KINK_TARGETS, dt)


def _zero(dt):
    same = np.array(_ZERO_TARGETS, dtype=dt)  # x == 0 exactly
    tiny = np.finfo(dt).tiny
    small = np.array([tiny, np.nextafter(tiny, dt.type(1)), _SMALL_NORMAL[dt]], dtype=dt)
    tiny_pred, tiny_target = _with_targets(_both_signs(small), (0.0,), dt)
    return np.concatenate([same, tiny_pred]), np.concatenate([same, tiny_target])


def _random(dt, n, seed):
    rng = np.random.default_rng(seed)
    x = 10.0 ** rng.uniform(-8, 8, n) * rng.choice([-1.0, 1.0], n)
    target = rng.uniform(-10, 10, n).astype(dt)
    return target + x.astype(dt), target


def elementwise_cases(
    params: dict, dtype, *, kinks=(), n_random: int = 200, seed: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Named groups ``(name, pred, target)`` of 1-D finite arrays in ``dtype``.

    Groups, in order (x = pred - target, k = every kink of
    :func:`kinks_from_params(params, kinks)`):

    * ``"decades"``: |x| log-spaced over 1e-8..1e8 (4 per decade), both signs,
      targets 0, 0.37, -2.5, 1e3.
    * ``"kink"`` (only if there are kinks): |x| = k (k rounded to dtype),
      k +- 1, 2, 16 ulp, k (1 +- 1e-6), both signs, targets 0 (x exact) and 1.
    * ``"zero"``: pred == target at several magnitudes, and |x| = smallest
      normal, its successor and 1e-300 (float64) / 1e-37 (float32) with target 0.
    * ``"random"`` (only if n_random > 0): ``10**U(-8, 8)`` magnitudes with a
      random sign, targets ``U(-10, 10)``; seeded, same draws for both dtypes.
    """
    dt = _float_dtype(dtype)
    all_kinks = kinks_from_params(params, kinks)
    groups = [("decades", *_decades(dt))]
    if all_kinks:
        groups.append(("kink", *_kink(dt, all_kinks)))
    groups.append(("zero", *_zero(dt)))
    if n_random > 0:
        groups.append(("random", *_random(dt, n_random, seed)))
    for name, pred, target in groups:
        assert pred.dtype == dt and target.dtype == dt and pred.shape == target.shape, name
        assert np.isfinite(pred).all() and np.isfinite(target).all(), name
    return groups


def elementwise_battery(dtype, kinks=(), n_random: int = 200, seed: int = 0):
    """(group name per point, pred, target): the groups of :func:`elementwise_cases` (with these
    kinks, besides 0) concatenated."""
    groups = elementwise_cases({}, dtype, kinks=kinks, n_random=n_random, seed=seed)
    names = np.concatenate([np.full(len(p), g, dtype=object) for g, p, _ in groups])
    return names, np.concatenate([p for _, p, _ in groups]), np.concatenate([t for _, _, t in groups])


def large_target_cases(dtype):
    """(group per point, pred, target): the "large" group ``check_loss`` adds to its element-wise
    battery (``refloss verify`` does not use it): targets of magnitude 1e5..2.3e6 (both signs, not
    round numbers) with differences x = +-10**(k/2), 1 <= |x| <= 1e4.  There a textbook form that
    expands the difference (p*p - 2*p*t + t*t) loses the digits of the value (absolute error
    ~eps * t**2), which targets up to 1e3 leave below the value tolerance.  |x| >= 1 stays nonzero
    when the inputs are rounded to float32."""
    dt = _float_dtype(dtype)
    x = _both_signs(10.0 ** (np.arange(0, 9) / 2))
    pred, target = _with_targets(x, (123456.789, -98765.4321, 1234567.891, -2345678.9), np.dtype(np.float64))
    return np.full(len(pred), "large", dtype=object), pred.astype(dt), target.astype(dt)


def near_kink(x, kinks, rel: float = 1e-6) -> np.ndarray:
    """Boolean mask: ``| |x| - k | <= rel * k`` for some kink k, or ``|x| <= rel`` (zero, at unit scale).

    Evaluated in float64; intended for skipping finite-difference checks.
    """
    a = np.abs(np.asarray(x, dtype=np.float64))
    mask = a <= rel
    for k in kinks:
        k = abs(float(k))
        mask |= np.abs(a - k) <= rel * k
    return mask
