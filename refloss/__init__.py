"""refloss: the float64 reference for object-detection box-regression losses.

Every loss is derived in SymPy (``derivations/``), generated as Numba CPU and CUDA
kernels with analytic gradients (``refloss/_generated/``), and checked against a
50-digit mpmath oracle (``refloss verify``).

>>> import numpy as np, refloss as rl
>>> float(rl.smooth_l1(np.array([0.5]), np.array([0.0]), beta=1.0)[0])
0.125

Importing refloss imports NumPy only; Numba is imported and kernels compile (with
an on-disk cache) on first use.
"""
from ._loss import Loss
from ._registry import ALL_LOSSES, ELEMENTWISE_LOSSES

__version__ = "0.1.0"

l1 = Loss("l1")
mse = Loss("mse")
smooth_l1 = Loss("smooth_l1")
huber = Loss("huber")
balanced_l1 = Loss("balanced_l1")
focal_l1 = Loss("focal_l1")

__all__ = ["Loss", "ALL_LOSSES", "ELEMENTWISE_LOSSES", "l1", "mse", "smooth_l1", "huber", "balanced_l1", "focal_l1"]
