"""Built-in battery of (logits, targets) for the classification losses (NumPy only)."""
from __future__ import annotations

import numpy as np

__all__ = ["logits_cases", "confident_cases"]


def logits_cases(dtype, n_random: int = 200, seed: int = 0):
    """(group per point, logits, targets) in ``dtype``: logits from 1e-8 to the dtype's stability
    bound (1e4 float64, 80 float32) both signs and 0, against hard targets 0 and 1 ("hard") and
    soft targets 0.3, 0.9 ("soft"); then random logits ``±10**U(-3, bound)`` against uniform
    targets ("random", seeded)."""
    dt = np.dtype(dtype)
    top = 4 if dt == np.float64 else np.log10(80.0)
    mags = np.logspace(-8, top, 49)
    logits = np.concatenate([mags, -mags, [0.0]]).astype(dt)
    rng = np.random.default_rng(seed)
    groups = []
    for y in (0.0, 1.0, 0.3, 0.9):
        groups.append(("hard" if y in (0.0, 1.0) else "soft", logits, np.full(logits.shape, y, dt)))
    x = (rng.uniform(-1, 1, n_random) * 10.0 ** rng.uniform(-3, top, n_random)).astype(dt)
    groups.append(("random", x, rng.uniform(0, 1, n_random).astype(dt)))
    names = np.concatenate([np.full(len(a), g, dtype=object) for g, a, _ in groups])
    return names, np.concatenate([a for _, a, _ in groups]), np.concatenate([b for _, _, b in groups])


def confident_cases(dtype, lo: float = 4.0, hi: float = 30.0, step: float = 0.25):
    """(group per point, logits, targets): the "confident" group ``check_loss`` adds to its
    battery (``refloss verify`` does not use it): logits every ``step`` over ``lo..hi`` (both
    signs) against the targets 0, 1, 0.3 and 0.9.  That is where a textbook form loses digits:
    ``-log(sigmoid(x))`` and ``-log(1 - sigmoid(x))`` form the probability of the other class as
    ``1 - sigmoid(|x|)``, whose relative error is eps * exp(|x|) (1e-9 of the loss at |x| = 20 in
    float64, 1e-3 at |x| = 10 in float32), while :func:`logits_cases` has two points a decade there."""
    dt = np.dtype(dtype)
    mags = np.arange(lo, hi + step / 2, step)
    logits = np.concatenate([mags, -mags]).astype(dt)
    targets = (0.0, 1.0, 0.3, 0.9)
    x = np.tile(logits, len(targets))
    y = np.repeat(np.array(targets, dt), len(logits))
    return np.full(len(x), "confident", dtype=object), x, y
