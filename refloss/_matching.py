"""Anchor assignment by IoU: ``match_by_iou``, torchvision's ``det_utils.Matcher`` rule in NumPy.

Pure NumPy (importing it compiles nothing).  See docs/matching.md for the rule, the tie rule and
where refloss differs from torchvision (a matrix with no ground truth).
"""
from __future__ import annotations

import numpy as np

from ._arrays import is_device_array
from ._validate import as_real_array, check_finite, reject_autograd, result_dtypes

BACKGROUND = -1  # torchvision's Matcher.BELOW_LOW_THRESHOLD
IGNORED = -2  # torchvision's Matcher.BETWEEN_THRESHOLDS


def _threshold(name: str, value) -> float:
    """A threshold as a float; TypeError for a non-number (or a bool), ValueError for NaN."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name}: must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: must be a real number, got {value!r}") from None
    if v != v:
        raise ValueError(f"{name}: must be a number, got nan")
    return v


def _as_torch_rounds(threshold: float, dt: np.dtype, bfloat16: bool):
    """The threshold as torch compares it with a tensor of the matrix's dtype: a Python float is converted to
    float32 first (c10's Half and BFloat16 are made from a float), then rounded to nearest even in float16 or
    bfloat16 (a bfloat16 matrix is compared here in float32, which holds every bfloat16: the threshold is rounded
    to bfloat16's 8 bits and kept in float32). Thresholds beyond the dtype's range are +-inf there."""
    if dt == np.float64:
        return dt.type(threshold)
    with np.errstate(over="ignore"):
        t = np.float32(threshold)
        if bfloat16:
            bits = np.array(t).view(np.uint32)
            if np.isfinite(t):  # round to nearest, ties to even, on the low 16 bits (inf stays inf)
                bits = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
            return bits.view(np.float32)[()]
        return dt.type(t)


def match_by_iou(iou_matrix, high_threshold, low_threshold, allow_low_quality_matches=False) -> np.ndarray:
    """The ground truth matched to each anchor, as torchvision's
    ``Matcher(high_threshold, low_threshold, allow_low_quality_matches)(iou_matrix)``.

    ``iou_matrix`` (G, A): the quality (IoU) of ground truth g with anchor (or prediction) a.
    Returns an (A,) int64 array: for each anchor a, with q = max_g iou_matrix[g, a] and g* the
    first g reaching it (ties between ground truths go to the lowest index, as ``torch.max``
    on the CPU gives),

    - g*  if q >= high_threshold (a match),
    - -2  if low_threshold <= q < high_threshold (ignored: ``Matcher.BETWEEN_THRESHOLDS``),
    - -1  if q < low_threshold (background: ``Matcher.BELOW_LOW_THRESHOLD``).

    ``allow_low_quality_matches=True`` (Faster R-CNN's RPN rule) then gives back g* to every
    anchor that achieves some ground truth's highest IoU over all anchors (all of them when
    several tie), whatever q is.  The anchor gets g*, its own best ground truth, which need not
    be the ground truth it is best for; and a ground truth overlapping no anchor (its row all
    0) makes every anchor with IoU 0 to it a match, as in torchvision.

    Comparisons are made in the matrix's floating dtype, the thresholds rounded to it as torch
    rounds a Python float there (to float32 first, then to float16 or bfloat16: a float32 array
    compares with a Python float in float32); integer and boolean matrices are compared in
    float64.  Thresholds may be infinite.

    Differences from torchvision: G = 0 gives all -1 (every anchor background) and A = 0 an
    empty array, where torchvision raises ValueError ("No ground-truth boxes available ..." /
    "No proposal boxes available ..."); a non-finite entry is a ValueError naming its index
    (torch would match on NaN silently).  ``low_threshold > high_threshold`` is a ValueError
    (torchvision asserts it).  Accepts NumPy arrays, nested lists and CPU tensors that do not
    require grad.

    >>> import numpy as np, refloss as rl
    >>> iou = [[0.9, 0.45, 0.1, 0.3],    # ground truth 0
    ...        [0.2, 0.45, 0.6, 0.3]]    # ground truth 1
    >>> rl.match_by_iou(iou, 0.5, 0.4).tolist()    # RetinaNet's thresholds
    [0, -2, 1, -1]
    >>> rl.match_by_iou(iou, 0.7, 0.4).tolist()
    [0, -2, -2, -1]
    >>> rl.match_by_iou(iou, 0.7, 0.4, allow_low_quality_matches=True).tolist()  # anchor 2 is gt 1's best
    [0, -2, 1, -1]
    >>> rl.match_by_iou([[0.45, 0.1]], 0.5, 0.4).tolist(), rl.match_by_iou([[0.45, 0.1]], 0.4, 0.4).tolist()
    ([-2, -1], [0, -1])
    >>> rl.match_by_iou([[0.6, 0.2], [0.6, 0.1]], 0.5, 0.4).tolist()  # a tie between gts: the lower index
    [0, -1]
    >>> rl.match_by_iou(np.zeros((0, 3)), 0.5, 0.4).tolist()  # no ground truth: all background
    [-1, -1, -1]

    Papers: Faster R-CNN (Ren et al., arXiv:1506.01497; RPN: positive from IoU 0.7 plus each
    ground truth's best anchors, negative below 0.3), RetinaNet (Lin et al., arXiv:1708.02002:
    positive from 0.5, negative below 0.4, the band between ignored).
    """
    reject_autograd(("iou_matrix",), (iou_matrix,), gradient=False)
    if is_device_array(iou_matrix):
        raise TypeError("iou_matrix: a device array; match_by_iou runs on the host: pass iou_matrix.cpu() "
                        "(or a NumPy array)")
    high = _threshold("high_threshold", high_threshold)
    low = _threshold("low_threshold", low_threshold)
    if not low <= high:
        raise ValueError(f"low_threshold: must be <= high_threshold (torchvision's Matcher asserts it), "
                         f"got low_threshold={low!r} > high_threshold={high!r}")
    if not isinstance(allow_low_quality_matches, (bool, np.bool_)):
        raise TypeError(f"allow_low_quality_matches: must be True or False, got {allow_low_quality_matches!r}")
    dt = result_dtypes((iou_matrix,), None)[2]  # float16/32/64 as given; integers, booleans: float64
    m = as_real_array("iou_matrix", iou_matrix, dt)
    if m.ndim != 2:
        raise ValueError(f"iou_matrix: must have shape (G, A) (ground truths x anchors), got shape {m.shape}")
    check_finite("iou_matrix", m)
    n_gt, n_anchors = m.shape
    if n_gt == 0 or n_anchors == 0:
        return np.full(n_anchors, BACKGROUND, dtype=np.int64)
    high_t, low_t = (_as_torch_rounds(t, dt, str(getattr(iou_matrix, "dtype", "")).endswith("bfloat16"))
                     for t in (high, low))
    best_gt = m.argmax(axis=0).astype(np.int64)  # the first maximum: the lowest gt index wins ties
    best = m[best_gt, np.arange(n_anchors)]
    matches = best_gt.copy()
    matches[best < low_t] = BACKGROUND
    matches[(best >= low_t) & (best < high_t)] = IGNORED
    if allow_low_quality_matches:
        # every anchor achieving some gt's highest quality (ties included) gets back its own best gt
        restored = (m == m.max(axis=1)[:, None]).any(axis=0)
        matches[restored] = best_gt[restored]
    return matches
