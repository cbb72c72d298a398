"""Built-in batteries of the YOLO box terms and box coding (NumPy only)."""
from __future__ import annotations

import numpy as np

__all__ = ["decode_cases", "xywh_cases"]


def decode_cases(dtype, n: int = 200, seed: int = 0):
    """(group per point, t, anchors, grid, cotangent) for ``yolo_decode``: t ~ N(0, 3) (n rows),
    then t = 0 ("t_zero") and extreme t (±30, ±5); anchors from 1 to 150, cells 0..79, random cotangents."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    t = np.concatenate([rng.normal(0, 3, (n, 4)), [[0.0] * 4, [30.0, -30.0, 5.0, -5.0]]])
    anchors = np.exp(rng.uniform(0, 5, (len(t), 2)))
    grid = rng.integers(0, 80, (len(t), 2)).astype(float)
    ct = rng.normal(size=t.shape)
    names = np.array(["random"] * n + ["t_zero", "extreme"], dtype=object)
    return (names,) + tuple(a.astype(dt) for a in (t, anchors, grid, ct))


def xywh_cases(dtype, n: int = 200, seed: int = 0):
    """(group per point, pred, target) boxes (x, y, w, h) for the YOLOv1 box term: centres in
    [0, 1), sizes 10**U(-3, 0); in the first quarter ("near") the target's sizes are within
    1e-6 of the prediction's (where sqrt(w) - sqrt(w^) cancels), the rest "random"."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, (n, 2)), 10.0 ** rng.uniform(-3, 0, (n, 2))], axis=1).astype(dt)
    t = np.concatenate([rng.uniform(0, 1, (n, 2)), 10.0 ** rng.uniform(-3, 0, (n, 2))], axis=1).astype(dt)
    t[: n // 4, 2:] = (p[: n // 4, 2:] * (1 + rng.uniform(-1e-6, 1e-6, (n // 4, 2)))).astype(dt)  # w ~ w^
    names = np.array(["near"] * (n // 4) + ["random"] * (n - n // 4), dtype=object)
    return names, p, t
