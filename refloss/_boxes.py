"""Box format conversion between xyxy, xywh and cxcywh (last axis of size 4)."""
from __future__ import annotations

import numpy as np

from ._validate import reject_masked

FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Convert boxes (..., 4) between "xyxy" (corners), "xywh" (corner, size) and
    "cxcywh" (centre, size), as torchvision.ops.box_convert does.

    >>> box_convert([0.0, 0.0, 2.0, 4.0], "xyxy", "cxcywh").tolist()
    [1.0, 2.0, 2.0, 4.0]
    """
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in FORMATS:
            raise ValueError(f"{name}: must be one of {FORMATS}, got {fmt!r}")
    reject_masked("boxes", boxes)
    b = np.asarray(boxes)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"boxes: must be a real numeric array, got {b.dtype}")
    result = b.dtype if b.dtype == np.float16 else np.result_type(b.dtype, np.float32)  # (float16 out, as torchvision)
    b = b.astype(np.result_type(b.dtype, np.float32), copy=False)  # (float16 computed in float32)
    if b.ndim == 0 or b.shape[-1] != 4:
        raise ValueError(f"boxes: last dimension must be 4, got shape {b.shape}")
    if in_fmt == out_fmt:  # the boxes as given (a copy), as torchvision's clone: no round trip through xyxy
        return b.astype(result)  # (float16 in: a float16 copy, exact)
    a0, a1, a2, a3 = np.moveaxis(b, -1, 0)
    if in_fmt == "xywh":
        a2, a3 = a0 + a2, a1 + a3
    elif in_fmt == "cxcywh":
        a0, a1, a2, a3 = a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2
    if out_fmt == "xywh":
        a2, a3 = a2 - a0, a3 - a1
    elif out_fmt == "cxcywh":
        a0, a1, a2, a3 = (a0 + a2) / 2, (a1 + a3) / 2, a2 - a0, a3 - a1
    with np.errstate(over="ignore"):  # (float16: beyond its range is inf, as NumPy's cast gives, without a warning)
        return np.stack([a0, a1, a2, a3], axis=-1).astype(result, copy=False)
