"""YOLO box coding: ``yolo_decode`` (generated kernel, with its VJP) and ``yolo_encode``.

Variants: "v2" and "v3" (b = sigma(t) + c, size p e^t), "v4" (grid sensitivity: centre
s sigma(t) - (s-1)/2 + c with s = scale_xy), "scaled" (Scaled-YOLOv4 / YOLOv5: centre
2 sigma(t) - 0.5 + c, size p (2 sigma(t))^2).  See docs/derivations/yolo_decode.md.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _arrays, _backends, _cpu
from ._boxes import box_convert
from ._loss import loss_named
from ._validate import _element, as_real_array, check_boxes, check_finite, reject_autograd, result_dtypes

VARIANTS = ("v2", "v3", "v4", "scaled")
FORMATS = ("cxcywh", "xyxy", "xywh")
_NAMES = ("t", "anchors", "grid", "cotangent")
_WIDTHS = (4, 2, 2, 4)


def real_number(name: str, value) -> float:
    """``value`` as a float: a TypeError naming the argument for anything but a real number (None, a string;
    NumPy's and Python's own errors named nothing)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)) \
            or isinstance(value, np.complexfloating):
        raise TypeError(f"{name}: must be a real number, got {value!r}")
    return float(value)


def unit_interval(name: str, value) -> float:
    """``value`` as a float in [0, 1] (a threshold); errors name the argument."""
    v = real_number(name, value)
    if not 0 <= v <= 1:
        raise ValueError(f"{name}: must satisfy 0 <= {name} <= 1, got {value!r}")
    return v


def positive_number(name: str, value) -> float:
    """``value`` as a finite float > 0 (scale_xy, stride); a TypeError for anything but a real number (a string,
    True, an array), a ValueError otherwise, both naming the argument."""
    v = real_number(name, value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must satisfy 0 < {name} (finite), got {v!r}")
    return v


def _variant_args(variant: str, scale_xy: float, stride: float) -> tuple:
    """(scale_xy, scaled_wh, stride) of the kernel for a variant; errors name the argument."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: must be one of {VARIANTS}, got {variant!r}")
    for name, v in (("scale_xy", scale_xy), ("stride", stride)):
        positive_number(name, v)
    if variant in ("v2", "v3", "scaled") and scale_xy != 1.0:
        raise ValueError(f"scale_xy: applies to variant 'v4' only (got {scale_xy!r} with {variant!r})")
    if variant == "scaled":
        return 2.0, 1.0, float(stride)
    return float(scale_xy), 0.0, float(stride)


def _check_anchors(anchors: np.ndarray) -> None:
    bad = ~(anchors > 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"anchors: sizes must be > 0; "
                         f"anchors[{', '.join(map(str, index))}] = {float(anchors[index])!r}")


def _raise_bad_input(arrays) -> None:
    """ValueError naming the first non-finite input or non-positive anchor size."""
    for n, a in zip(_NAMES, arrays):
        check_finite(n, a)
    _check_anchors(arrays[1])


def _cotangent_to_cxcywh(u: np.ndarray, fmt: str) -> np.ndarray:
    """Transpose of the Jacobian of cxcywh -> fmt, applied to a cotangent in fmt."""
    if fmt == "cxcywh":
        return u
    u0, u1, u2, u3 = np.moveaxis(u, -1, 0)
    if fmt == "xyxy":
        return np.stack([u0 + u2, u1 + u3, (u2 - u0) / 2, (u3 - u1) / 2], axis=-1)
    return np.stack([u0, u1, u2 - u0 / 2, u3 - u1 / 2], axis=-1)


class YoloDecode:
    """``yolo_decode(t, anchors, grid, variant="v3", scale_xy=1.0, stride=1.0, fmt="cxcywh")``.

    t (..., 4) = (t_x, t_y, t_w, t_h), anchors (..., 2) = (p_w, p_h), grid (..., 2) =
    (c_x, c_y), broadcast together.  Centres are multiplied by ``stride``; sizes are in the
    anchors' units.  ``.value_and_grad(..., cotangent=ct)`` returns ``(boxes, d_t)`` with
    d_t the vector-Jacobian product ct^T (d boxes / d t) (ct defaults to ones; of the boxes' shape, or one that
    broadcasts to it without widening it), from the same fused kernel.  ``dtype`` and ``validate`` as the
    losses.  ``device="cuda"`` runs the generated CUDA kernel: NumPy inputs are copied to the GPU and the
    results come back as NumPy; inputs that all have ``__cuda_array_interface__`` (PyTorch, CuPy, Numba) are used
    in place, must share one leading shape and ``fmt="cxcywh"``, and the results are Numba
    device arrays.
    """

    __name__ = "yolo_decode"

    def __repr__(self) -> str:
        return "refloss.yolo_decode"

    def __call__(self, t, anchors, grid, variant="v3", scale_xy=1.0, stride=1.0, fmt="cxcywh", *,
                 dtype=None, device="cpu", validate=True):
        return self._run(False, t, anchors, grid, None, variant, scale_xy, stride, fmt, dtype, device, validate)

    def value_and_grad(self, t, anchors, grid, variant="v3", scale_xy=1.0, stride=1.0, fmt="cxcywh", *,
                       cotangent=None, dtype=None, device="cpu", validate=True):
        return self._run(True, t, anchors, grid, cotangent, variant, scale_xy, stride, fmt, dtype, device, validate)

    def _run(self, with_grad, t, anchors, grid, cotangent, variant, scale_xy, stride, fmt, dtype, device, validate):
        reject_autograd(_NAMES[:1], (t,))
        reject_autograd(_NAMES[1:], (anchors, grid, cotangent), gradient=False)
        dt, precision, out_dt = result_dtypes((t, anchors, grid), dtype)
        if out_dt != dt:  # float16: computed in float32, returned as float16
            result = self._run(with_grad, t, anchors, grid, cotangent, variant, scale_xy, stride, fmt, dt, device,
                               validate)
            return result.astype(out_dt) if not with_grad else tuple(np.asarray(r).astype(out_dt) for r in result)
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: must be 'cpu' or 'cuda', got {device!r}")
        args = tuple(dt.type(a) for a in _variant_args(variant, scale_xy, stride))
        if device == "cuda":
            _backends.cuda()  # a clear RuntimeError where no GPU (or simulator) is there
            given = (t, anchors, grid) + (() if cotangent is None or not with_grad else (cotangent,))
            if _arrays.on_device(_NAMES, given):
                return _run_on_device(with_grad, given, precision, dt, args, fmt, validate)
        arrays = [as_real_array(n, v, dt) for n, v in zip(_NAMES[:3], (t, anchors, grid))]
        if with_grad:
            ct = np.ones(4, dt) if cotangent is None else as_real_array("cotangent", cotangent, dt)
            if ct.ndim == 0 or ct.shape[-1] != 4:
                raise ValueError(f"cotangent: last dimension must be 4, got shape {ct.shape}")
            arrays.append(_cotangent_to_cxcywh(ct, fmt).astype(dt, copy=False))
        shape = _arrays.lead_shape(_NAMES[:len(arrays)], _WIDTHS[:len(arrays)], arrays)
        if with_grad:  # the cotangent must not widen the output (boxes of shape (2, 4) for t of shape (4,))
            boxes_shape = _arrays.lead_shape(_NAMES[:3], _WIDTHS[:3], arrays[:3])
            if shape != boxes_shape:
                raise ValueError(f"cotangent: shape {ct.shape} must be the output's {boxes_shape + (4,)} or broadcast "
                                 "to it")
        flat = [_arrays.flat(a, shape, w) for a, w in zip(arrays, _WIDTHS)]
        if not with_grad:
            flat.append(flat[0])  # the value kernel reads no cotangent: t stands in for it
        size = flat[0].shape[0]
        out = np.empty((size, 4), dt)
        d_t = np.empty((size, 4), dt) if with_grad else None
        if device == "cuda":
            if validate:
                _raise_bad_input(arrays)
            _run_cuda(precision, flat, out, d_t, args)
        else:
            drivers = _module("cpu")
            if with_grad:
                bad = _cpu.launch(drivers, f"value_and_grad_{precision}", flat, [out, d_t, dt.type(1)], args)
            else:
                bad = _cpu.launch(drivers, f"value_{precision}", flat, [out], args)
            if bad and validate:  # the driver counts non-finite inputs and non-positive anchors
                _raise_bad_input(arrays)
        boxes = out.reshape(shape + (4,))
        if fmt != "cxcywh":
            boxes = box_convert(boxes, "cxcywh", fmt).astype(dt, copy=False)
        if not with_grad:
            return boxes
        return boxes, _arrays.sum_to_shape(d_t.reshape(shape + (4,)), arrays[0].shape)


def _module(which: str):
    """The generated yolo_decode module "cpu" or "cuda" (found through its index entry)."""
    return loss_named("yolo_decode")._module(which)


def _launch(precision, flat, with_grad, args):
    """The generated fused CUDA kernel on flat device arrays (t, anchors, grid, cotangent);
    returns the device arrays (boxes, d_t or None).  The value kernel reads no cotangent."""
    from numba import cuda

    _cuda = _backends.cuda()

    mod = _module("cuda")
    size, dt = flat[0].shape[0], flat[0].dtype
    out = cuda.device_array((size, 4), dt)
    if not with_grad:
        _cuda.launch(mod, f"value_{precision}", flat, [out], args)
        return out, None
    d_t = cuda.device_array((size, 4), dt)
    _cuda.launch(mod, f"value_and_grad_{precision}", flat, [out, d_t, dt.type(1)], args)
    return out, d_t


def _run_cuda(precision, flat, out, d_t, args) -> None:
    """The CUDA kernel on host arrays (copied in and out; t standing in for the cotangent is copied once)."""
    _cuda = _backends.cuda()

    d_out, d_grad = _launch(precision, _cuda.to_device(flat), d_t is not None, args)
    if d_grad is not None:
        d_grad.copy_to_host(d_t)
    d_out.copy_to_host(out)


def _run_on_device(with_grad, given, precision, dt, args, fmt, validate):
    """The CUDA kernel on device arrays, in place (no copies); returns device arrays."""
    from numba import cuda

    from ._cuda import check_positive_device, device_inputs

    if fmt != "cxcywh":
        raise ValueError(f"fmt: device arrays are decoded to 'cxcywh' only, got {fmt!r} (convert the result, "
                         "or pass NumPy arrays)")
    arrays = device_inputs(_NAMES[:len(given)], given, dt, validate)
    shapes = [tuple(a.shape) for a in arrays]  # (the simulator's shapes take no negative index)
    for name, full, width in zip(_NAMES, shapes, _WIDTHS):
        if not full or full[-1] != width:
            raise ValueError(f"{name}: last dimension must be {width}, got shape {full}")
    shape = shapes[0][:-1]
    if any(full[:-1] != shape for full in shapes):
        raise ValueError("leading shapes must be equal on the CUDA path for device arrays: "
                         + ", ".join(f"{n} {full}" for n, full in zip(_NAMES, shapes)))
    if validate:
        check_positive_device("anchors", arrays[1], "sizes")
    size = int(np.prod(shape, dtype=np.int64))
    flat = [a.reshape(size, w) for a, w in zip(arrays, _WIDTHS)]
    if len(flat) == 3:  # no cotangent: ones for the VJP; t stands in for the value kernel
        ones = flat[0] if not with_grad else cuda.device_array((size, 4), dt)
        if with_grad:
            ones[:] = 1
        flat.append(ones)
    out, d_t = _launch(precision, flat, with_grad, args)
    boxes = out.reshape(shape + (4,))
    return (boxes, d_t.reshape(shape + (4,))) if with_grad else boxes


def yolo_encode(boxes, anchors, grid, variant="v3", scale_xy=1.0, stride=1.0, fmt="cxcywh", *, dtype=None):
    """The inverse of :func:`yolo_decode`: the t that decodes to ``boxes``.

    Raises ValueError naming the first box that the variant cannot represent: a centre
    outside the reachable range (c - (s-1)/2, c + (s+1)/2) of its cell (open: sigmoid
    never reaches 0 or 1), a non-positive size, or (variant "scaled") a size of 4 or more
    times the anchor's.
    """
    reject_autograd(("boxes", "anchors", "grid"), (boxes, anchors, grid), gradient=False)
    dt = result_dtypes((boxes, anchors, grid), dtype)[2]  # computed in extended precision, returned in it
    s, scaled, stride = _variant_args(variant, scale_xy, stride)
    if fmt not in FORMATS:
        raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
    b = as_real_array("boxes", boxes, dt)
    a = as_real_array("anchors", anchors, dt)
    g = as_real_array("grid", grid, dt)
    for n, arr in (("boxes", b), ("anchors", a), ("grid", g)):
        check_finite(n, arr)
    # (boxes (..., 4), anchors and grid (..., 2), leading axes broadcast: a 3-coordinate box or a 1-element anchor
    # broadcast silently before)
    _arrays.lead_shape(("boxes", "anchors", "grid"), (4, 2, 2), (b, a, g))
    _check_anchors(a)
    given = b  # (as the caller gave them, for the errors)
    # the inverse is evaluated in extended precision where the platform has it (x86: 64-bit
    # significand), so that the logit and square root add no float64 rounding of their own
    ext = np.longdouble
    b = box_convert(b, fmt, "cxcywh").astype(ext) if fmt != "cxcywh" else b.astype(ext)
    a, g = a.astype(ext), g.astype(ext)
    shape = np.broadcast_shapes(b.shape[:-1], a.shape[:-1], g.shape[:-1])
    b, a, g = (np.broadcast_to(x, shape + x.shape[-1:]) for x in (b, a, g))
    # centres: u = (b/stride - c + (s-1)/2) / s must lie in (0, 1)
    u = (b[..., :2] / ext(stride) - g + (ext(s) - 1) / 2) / ext(s)
    reach = f"({_cell_offset((1 - s) / 2)}, {_cell_offset((1 + s) / 2)})" + (f" * stride ({stride:g})"
                                                                            if stride != 1 else "")
    _raise_first(~((u > 0) & (u < 1)), given, fmt, b, ("grid", g),
                 f"centre outside the reachable range {reach} of its cell c for variant {variant!r}")
    ratio = b[..., 2:] / a
    _raise_first(~(ratio > 0), given, fmt, b, None, "size must be > 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        t_xy = np.log(u) - np.log1p(-u)
        if scaled:
            r = np.sqrt(ratio) / ext(2)
            _raise_first(~(r < 1), given, fmt, b, ("anchor", a),
                         f"size must be below 4 times the anchor for variant {variant!r}")
            t_wh = np.log(r) - np.log1p(-r)
        else:
            t_wh = np.log(ratio)
    return np.concatenate([t_xy, t_wh], axis=-1).astype(dt)


def _cell_offset(x: float) -> str:
    """'c', 'c + x' or 'c - |x|' (a reachable bound's offset from the cell corner c)."""
    return "c" if x == 0 else (f"c + {x:g}" if x > 0 else f"c - {-x:g}")


def _raise_first(bad: np.ndarray, given: np.ndarray, fmt: str, cxcywh: np.ndarray, other, rule: str) -> None:
    """ValueError naming the first bad box (``bad``, ``cxcywh``: the broadcast shape) by its index in ``given`` (the
    boxes as passed; no index for one (4,) box), as plain floats; ``other``: (name, broadcast array) to show too."""
    bad = bad.any(axis=-1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        lead = given.shape[:-1]
        own = tuple(0 if n == 1 else i for i, n in zip(index[len(index) - len(lead):], lead))
        text = f"{_element('boxes', own)} = {[float(x) for x in given[own]]}"
        if fmt != "cxcywh":
            text += f" ({fmt}; {[float(x) for x in cxcywh[index]]} as cxcywh)"
        if other is not None:
            text += f" with {other[0]} {[float(x) for x in other[1][index]]}"
        raise ValueError(f"{text}: {rule}")


yolo_decode = YoloDecode()


class DecodeReference:
    """``yolo_decode`` as ``check_loss`` and the golden vectors see it (the coding family): the
    inputs t, anchors, grid; the decoded boxes (cxcywh) as the value; the gradient with respect to
    t for the cotangent of ones, which is each coordinate's own derivative (the Jacobian is
    diagonal); the parameters of the API (variant, scale_xy, stride)."""

    inputs = ("t", "anchors", "grid")
    grad_inputs = ("t",)

    def __init__(self, info):
        from ._param import Param

        self.info = info
        self.name = info.name
        self.params = (Param("variant", "v3", None, True, None, True, f"variant in {VARIANTS}", "box coding"),
                       *(p for p in info.params if p.name in ("scale_xy", "stride")))

    def __call__(self, t, anchors, grid, **params):
        return yolo_decode(t, anchors, grid, **params)

    def value_and_grad(self, t, anchors, grid, **params):
        boxes, d_t = yolo_decode.value_and_grad(t, anchors, grid, **params)
        return boxes, (d_t,)


def yolo_ignore_mask(pred_boxes, gt_boxes, threshold: float = 0.5, fmt: str = "xyxy") -> np.ndarray:
    """The YOLOv3 ignore rule: True for predictions (anchors) whose best IoU with any ground
    truth exceeds ``threshold``; their objectness is then neither positive nor negative.

    ``threshold`` is 0.5 in the YOLOv3 paper (arXiv:1804.02767) and 0.7 in the released darknet
    configs (``ignore_thresh``).  pred_boxes (..., N, 4), gt_boxes (..., M, 4); returns (..., N)
    booleans (all False when M = 0).
    """
    reject_autograd(("pred_boxes", "gt_boxes"), (pred_boxes, gt_boxes), gradient=False)
    threshold = unit_interval("threshold", threshold)
    if fmt not in FORMATS:
        raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
    p = as_real_array("pred_boxes", pred_boxes, np.dtype(np.float64))
    g = as_real_array("gt_boxes", gt_boxes, np.dtype(np.float64))
    given = p.shape, g.shape  # (as passed, for the errors)
    one = p.ndim == 1 and p.size == 4  # one predicted box, (4,): a 0-d result
    p = p.reshape(-1, 4) if p.ndim == 1 and p.size in (0, 4) else p  # ([] is no predictions)
    g = g.reshape(-1, 4) if g.ndim == 1 and g.size in (0, 4) else g  # ([] is no ground truth, a (4,) box one)
    for name, arr in (("pred_boxes", p), ("gt_boxes", g)):
        if arr.ndim < 1 or arr.shape[-1] != 4:
            raise ValueError(f"{name}: last dimension must be 4 ({fmt} boxes), got shape {arr.shape}")
    try:  # the batch axes, before (N, 4) and (M, 4) (the iou kernel named its own pred, target; NumPy nothing)
        np.broadcast_shapes(p.shape[:-2], g.shape[:-2])
    except ValueError:
        raise ValueError(f"pred_boxes (..., N, 4) and gt_boxes (..., M, 4): the batch axes (before the last two) are "
                         f"not broadcastable: pred_boxes {given[0]}, gt_boxes {given[1]}") from None
    if np.isnan(p).any():
        index = tuple(int(i) for i in np.argwhere(np.isnan(p))[0])
        raise ValueError(f"pred_boxes: must not be NaN; pred_boxes[{', '.join(map(str, index))}] = nan")
    check_finite("gt_boxes", g)
    if fmt != "xyxy":
        p, g = box_convert(p, fmt, "xyxy"), box_convert(g, fmt, "xyxy")
    check_boxes("gt_boxes", g)
    # a predicted box with an infinite coordinate (a decoded size e^t that overflowed: t_w = 90 in float32) has
    # IoU 0 with every finite ground truth (its union is infinite): not ignored; the iou kernel refused it as
    # "pred: must be finite"
    finite = np.isfinite(p).all(axis=-1)
    p = np.where(finite[..., None], p, 0.0)
    check_boxes("pred_boxes", p)  # (the finite ones; an infinite box's corners may be -inf, +inf either way)
    if g.shape[-2] == 0 or p.shape[-2] == 0:
        mask = np.zeros(np.broadcast_shapes(p.shape[:-1], g.shape[:-2] + (1,)), bool)  # (..., N)
        return mask.reshape(()) if one else mask
    ious = loss_named("iou")(p[..., :, None, :], g[..., None, :, :])
    ious = np.where(finite[..., :, None] & ~np.isnan(ious), ious, 0.0)  # (NaN: 0/0 of two empty boxes)
    mask = ious.max(axis=-1) > threshold
    return mask.reshape(()) if one else mask
