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


SOFTMAX_CLASSES = 5  # the row width of the softmax battery


def softmax_cases(dtype, n_random: int = 200, seed: int = 0):
    """(group per row, logits (n, 5), targets (n, 5)) in ``dtype`` for softmax cross-entropy:
    "hard" one-hot rows against logits of every scale up to the dtype's bound (1e4 float64, 80
    float32); "huge" logits +-1e30 (a spread no exponential can hold); "ties" (the maximum
    shared); "confident" (the target class ahead by 5..40, where the gradient cancels);
    "near" (logits within 1e-6 of each other); and "random": logits N(0, s) with s = 10**U(-3, 1)
    against soft targets (uniform, some rows scaled to sum to 1), seeded."""
    dt, c = np.dtype(dtype), SOFTMAX_CLASSES
    rng = np.random.default_rng(seed)
    bound = 1e4 if dt == np.float64 else 80.0
    eye = np.eye(c)
    groups = []
    scales = np.logspace(-6, np.log10(bound), 12)
    rows = [rng.uniform(-1, 1, c) * s for s in scales]
    groups.append(("hard", np.array(rows * 2), np.array([eye[k % c] for k in range(len(rows))] * 2)))
    groups.append(("bound", np.array([[bound, -bound, 0, bound / 2, -1], [-bound, bound, bound, 0, 1]]),
                   np.array([eye[1], [0.2, 0.2, 0.2, 0.2, 0.2]])))
    huge = np.array([[1e30, -1e30, 0, 1, -1], [-1e30, 1e30, 1e30, 0, 5], [1e30, 1e30 * (1 - 2**-20), -1e30, 0, 0]])
    groups.append(("huge", np.repeat(huge, 2, axis=0), np.array([eye[0], eye[1], eye[2], [0.5, 0, 0.5, 0, 0],
                                                                  eye[1], [0.1, 0.2, 0.3, 0.2, 0.2]])))
    groups.append(("ties", np.array([[2.0, 2.0, -1, 0, 1], [0.0] * c, [-3.0, 7.0, 7.0, 7.0, 6.999]]),
                   np.array([eye[0], eye[3], [0, 0.5, 0.25, 0.25, 0]])))
    lead = np.arange(5.0, 41.0, 5.0)
    conf = np.array([[d, 0, -1, 0.5, -2] for d in lead])
    groups.append(("confident", np.concatenate([conf, conf]), np.array([eye[0]] * len(lead) + [[0.9, 0.1, 0, 0, 0]] * len(lead))))
    groups.append(("near", 1 + rng.uniform(-1e-6, 1e-6, (4, c)), rng.uniform(0, 1, (4, c))))
    x = rng.normal(size=(n_random, c)) * 10.0 ** rng.uniform(-3, 1, (n_random, 1))
    y = rng.uniform(0, 1, (n_random, c))
    y[::2] /= y[::2].sum(axis=1, keepdims=True)
    groups.append(("random", x, y))
    names = np.concatenate([np.full(len(a), g, dtype=object) for g, a, _ in groups])
    logits = np.concatenate([a for _, a, _ in groups]).astype(dt)
    targets = np.clip(np.concatenate([b for _, _, b in groups]).astype(dt), 0, 1)
    return names, logits, targets


DFL_BINS = 8  # the row width of the distribution focal loss battery (reg_max = 7)


def dfl_cases(dtype, n_random: int = 200, seed: int = 0):
    """(group per row, logits (n, 8), targets (n,)) in ``dtype`` for the distribution focal loss:
    targets at every bin (the kinks, "bins": 0 and 7 the ends) and just beside them (+-1e-9,
    "near_bins"), against logits of every scale up to the dtype's bound (1e4 float64, 80
    float32); "end" targets at the last bin and at 7 - 0.01, 7 - 0.1 (where peers clamp), 7 - 0.25, 7 - 2**-7;
    "huge" logits +-1e30; "peaked" distributions (the target's bins ahead by 5..40, where the
    logits' gradient cancels); and "random": logits N(0, s), s = 10**U(-3, 1), targets U(0, 7)."""
    dt, c = np.dtype(dtype), DFL_BINS
    rng = np.random.default_rng(seed)
    bound = 1e4 if dt == np.float64 else 80.0
    top = c - 1
    groups = []
    scales = np.logspace(-6, np.log10(bound), 8)
    bins = np.arange(c, dtype=np.float64)
    rows = [rng.uniform(-1, 1, c) * sc for sc in scales for _ in bins]
    groups.append(("bins", np.array(rows), np.tile(bins, len(scales))))
    near = np.concatenate([bins[1:] - 1e-9, bins[:-1] + 1e-9])
    groups.append(("near_bins", rng.normal(size=(len(near), c)) * 3, near))
    ends = np.array([top, top - 0.01, top - 0.1, top - 0.005, top - 0.05, top - 0.5, top - 0.25, top - 2.0**-7])
    groups.append(("end", rng.normal(size=(2 * len(ends), c)) * 2, np.concatenate([ends, ends])))
    huge = np.array([[1e30, -1e30, 0, 1, -1, 0, 2, 3], [-1e30, 1e30, 1e30, 0, 5, 0, 0, 0], [0.0] * c])
    groups.append(("huge", huge, np.array([0.5, 1.25, 6.5])))
    lead = np.arange(5.0, 41.0, 5.0)
    peaked = np.array([[0, -1, d, d - 0.7, -2, 0, 1, 0.5] for d in lead])
    groups.append(("peaked", peaked, np.full(len(lead), 2.3)))
    x = rng.normal(size=(n_random, c)) * 10.0 ** rng.uniform(-3, 1, (n_random, 1))
    groups.append(("random", x, rng.uniform(0, top, n_random)))
    names = np.concatenate([np.full(len(a), g, dtype=object) for g, a, _ in groups])
    logits = np.concatenate([a for _, a, _ in groups]).astype(dt)
    targets = np.concatenate([b for _, _, b in groups]).astype(dt)
    return names, logits, targets
