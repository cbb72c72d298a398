"""The whole YOLO losses, v1 to v4: ``yolov1_loss``, ``yolov2_loss``, ``yolov3_loss``, ``yolov4_loss``,
and their assignments ``yolov1_assign`` and ``yolo_assign``.

Every term is a generated kernel already in refloss (``yolov1_box_loss``, ``mse``,
``bce_with_logits``, ``ciou_loss``, ``iou``, ``yolo_decode``/``yolo_encode``,
``yolo_ignore_mask``) called through ``_detection.weighted_term``; what is written here is the
assignment, the masks, the weights and the normalisation.  docs/yolo-losses.md writes every sum
out, with the papers (YOLOv1 arXiv:1506.02640, YOLOv2 arXiv:1612.08242, YOLOv3
arXiv:1804.02767, YOLOv4 arXiv:2004.10934) and where darknet differs.

Ground truth everywhere: per image a (G_i, 4) array of boxes (cx, cy, w, h) normalised by the
image size (centre in [0, 1], 0 < w, h), and a (G_i,) array of integer labels in [0, C).
Anchors: (B_k, 2) sizes (w, h), also normalised by the image size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._detection import DetectionLoss, detection_result, weighted_term
from ._loss import loss_named
from ._validate import as_real_array, check_finite, reject_autograd, result_dtypes
from ._yolo import positive_number, unit_interval, yolo_decode, yolo_encode, yolo_ignore_mask

NORMALIZE = ("batch", "sum")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------

def _targets(boxes, labels, n_images: int, num_classes: int, dt) -> tuple[list, list]:
    """Ground truth per image as (G_i, 4) arrays of ``dt`` and (G_i,) int64 labels; ValueError
    naming the image and box for a wrong shape, a non-finite value, a centre outside [0, 1], a
    degenerate size (w <= 0 or h <= 0) or a label outside [0, num_classes)."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 3:
        boxes = list(boxes)
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        labels = list(labels)
    if not isinstance(boxes, (list, tuple)) or len(boxes) != n_images:
        raise ValueError(f"gt_boxes: must be a list of {n_images} arrays (one per image), got "
                         f"{len(boxes) if isinstance(boxes, (list, tuple)) else type(boxes).__name__}")
    if not isinstance(labels, (list, tuple)) or len(labels) != n_images:
        raise ValueError(f"gt_labels: must be a list of {n_images} arrays (one per image), got "
                         f"{len(labels) if isinstance(labels, (list, tuple)) else type(labels).__name__}")
    out_b, out_l = [], []
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        name = f"gt_boxes[{i}]"
        b = _gt_array(name, b, dt)
        lname = f"gt_labels[{i}]"
        lab = np.asarray(lab)
        if lab.size == 0:
            lab = lab.reshape(0).astype(np.int64)
        if lab.dtype.kind not in "iu":
            raise TypeError(f"{lname}: must be integer class indices, got dtype {lab.dtype}")
        if lab.shape != (b.shape[0],):
            raise ValueError(f"{lname}: must have shape ({b.shape[0]},) like {name}, got shape {lab.shape}")
        bad = np.argwhere((lab < 0) | (lab >= num_classes))
        if bad.size:
            g = int(bad[0, 0])
            raise ValueError(f"{lname}[{g}] = {int(lab[g])}: must lie in [0, {num_classes}) (C = {num_classes})")
        out_b.append(b)
        out_l.append(lab.astype(np.int64))
    return out_b, out_l


def _gt_array(name: str, b, dt) -> np.ndarray:
    """One image's ground-truth boxes as a (G, 4) array; ValueError naming the box for a wrong
    shape, a non-finite value, a centre outside [0, 1] or a degenerate size (w <= 0 or h <= 0)."""
    reject_autograd((name,), (b,), gradient=False)
    b = as_real_array(name, b, dt)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name}: must have shape (G, 4) (cx, cy, w, h normalised), got shape {b.shape}")
    check_finite(name, b)
    bad = np.argwhere((b[:, 0] < 0) | (b[:, 0] > 1) | (b[:, 1] < 0) | (b[:, 1] > 1))
    if bad.size:
        g = int(bad[0, 0])
        raise ValueError(f"{name}[{g}] = {b[g].tolist()}: the centre (cx, cy) must lie in [0, 1] (boxes are "
                         "cx, cy, w, h normalised by the image size)")
    bad = np.argwhere(~((b[:, 2] > 0) & (b[:, 3] > 0)))
    if bad.size:
        g = int(bad[0, 0])
        raise ValueError(f"{name}[{g}] = {b[g].tolist()}: a degenerate box, w and h must be > 0")
    return b


def _head(name: str, value, dt, ndim: int, what: str) -> np.ndarray:
    arr = as_real_array(name, value, dt)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: must have shape {what}, got shape {arr.shape}")
    check_finite(name, arr)
    return arr


def _weight(name: str, value, dt) -> float:
    """A term's weight lambda: a real number, 0 <= lambda, finite in the computation's dtype ``dt`` (lambda_noobj =
    1e39 with float32 heads was inf there: total nan with overflow warnings)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: must be a real number, got {value!r}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: must satisfy 0 <= {name} (finite), got {value!r}")
    if dt == np.float32 and float(value) > _FLOAT32_MAX:  # (the kernels' own parameter check says the same)
        raise ValueError(f"{name}: {value!r} is beyond float32's range ({_FLOAT32_MAX:.4g}), and this call computes "
                         "in float32 (float32 or float16 inputs, or dtype=float32); pass float64 inputs or "
                         "dtype=numpy.float64")
    return float(value)


def _weights(dt, **lambdas) -> tuple:
    """The weights, each checked by :func:`_weight`, in the order given."""
    return tuple(_weight(name, value, dt) for name, value in lambdas.items())


def _choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name}: must be one of {options}, got {value!r}")
    return value


def _cell(centre: np.ndarray, size: int) -> np.ndarray:
    """The cell index floor(centre * size) of normalised centres, a centre at 1 in the last cell."""
    return np.minimum(np.floor(centre * size).astype(np.int64), size - 1)


def _xyxy(b: np.ndarray) -> np.ndarray:
    """cxcywh -> xyxy (in b's dtype)."""
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _scale(dt, n_images: int, normalize: str):
    """The factor of every part: 1/N ("batch", N images; 1 for N = 0) or 1 ("sum")."""
    return dt.type(1) if normalize == "sum" else dt.type(1) / dt.type(max(n_images, 1))


# ----------------------------------------------------------------------------------------------
# YOLOv1
# ----------------------------------------------------------------------------------------------

@dataclass
class YoloV1Assignment:
    """Which predictor answers for which ground truth (see :func:`yolov1_assign`).

    ``cell_gt`` (N, S, S) int: the ground truth (index into that image's boxes) whose centre
    is in the cell, -1 for none; ``responsible`` (N, S, S, B) bool: 1^obj_ij; ``iou`` (N, S, S):
    the IoU of the responsible predictor's box with its ground truth (0 where no object);
    ``dropped``: (image, gt) pairs whose cell was already taken by an earlier box."""

    cell_gt: np.ndarray
    responsible: np.ndarray
    iou: np.ndarray
    dropped: list


def _v1_boxes(head: np.ndarray, num_boxes: int, size_output: str) -> np.ndarray:
    """The B predicted boxes of every cell as (N, S, S, B, 4) normalised cxcywh."""
    n, s = head.shape[0], head.shape[1]
    p = head[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    rows = np.arange(s, dtype=head.dtype)[:, None, None]
    cols = np.arange(s, dtype=head.dtype)[None, :, None]
    wh = p[..., 2:4] ** 2 if size_output == "sqrt" else p[..., 2:4]
    return np.concatenate([((cols + p[..., 0]) / s)[..., None], ((rows + p[..., 1]) / s)[..., None], wh], axis=-1)


def _check_v1(head_outputs, num_boxes, size_output, dtype):
    reject_autograd(("head_outputs",), (head_outputs,))
    dt = result_dtypes((head_outputs,), dtype)[0]
    head = _head("head_outputs", head_outputs, dt, 4, "(N, S, S, 5B + C)")
    if isinstance(num_boxes, bool) or not isinstance(num_boxes, (int, np.integer)) or num_boxes < 1:
        raise ValueError(f"num_boxes: must be an integer >= 1, got {num_boxes!r}")
    n, s, s2, depth = head.shape
    if s != s2 or s == 0:
        raise ValueError(f"head_outputs: the grid must be square (N, S, S, 5B + C) with at least one cell, got shape "
                         f"{head.shape}")
    if depth <= 5 * num_boxes:
        raise ValueError(f"head_outputs: the last dimension {depth} must be 5B + C with B = num_boxes = "
                         f"{num_boxes} and C >= 1")
    _choice("size_output", size_output, ("w", "sqrt"))
    if size_output == "w":
        wh = head[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)[..., 2:4]
        bad = np.argwhere(wh < 0)
        if bad.size:
            i = tuple(int(v) for v in bad[0])
            raise ValueError(f"head_outputs[{i[0]}, {i[1]}, {i[2]}, {5 * i[3] + 2 + i[4]}] = "
                             f"{float(wh[i])!r}: a predicted {'wh'[i[4]]} < 0, where the paper's sqrt({'wh'[i[4]]}) "
                             "is undefined (size_output='sqrt' reads the channel as sqrt(w), as darknet does)")
    return head, dt


def yolov1_assign(head_outputs, gt_boxes, gt_labels, num_boxes=2, size_output="w", *, dtype=None):
    """The YOLOv1 assignment (Redmon et al., arXiv:1506.02640, section 2.2): the cell holding a
    ground truth's centre answers for it, and of its B predictors the one whose predicted box
    has the highest IoU with the ground truth is responsible (1^obj_ij = 1).

    Cell: (row, col) = (floor(cy S), floor(cx S)), a centre at 1 in the last cell.  Ties: two
    predictors with the same IoU -> the lower index j; two ground truths in one cell -> the
    first (lower index) keeps the cell and the others are listed in ``dropped`` (the paper's
    cells hold one object; darknet's fill_truth_region also keeps the first, of the boxes in a
    shuffled order).  Predicted boxes:
    centre ((col + x)/S, (row + y)/S), size (w, h) (size_output="w") or (s_w^2, s_h^2)
    (size_output="sqrt").  Returns a :class:`YoloV1Assignment`.
    """
    head, dt = _check_v1(head_outputs, num_boxes, size_output, dtype)
    n, s = head.shape[0], head.shape[1]
    num_classes = head.shape[3] - 5 * num_boxes
    boxes, labels = _targets(gt_boxes, gt_labels, n, num_classes, dt)
    cell_gt = np.full((n, s, s), -1, np.int64)
    responsible = np.zeros((n, s, s, num_boxes), bool)
    iou = np.zeros((n, s, s), dt)
    dropped = []
    pred = _v1_boxes(head, num_boxes, size_output)
    for i, b in enumerate(boxes):
        for g in range(len(b)):
            r, c = int(_cell(b[g, 1], s)), int(_cell(b[g, 0], s))
            if cell_gt[i, r, c] >= 0:
                dropped.append((i, g))
                continue
            cell_gt[i, r, c] = g
            ious = np.asarray(loss_named("iou")(_xyxy(pred[i, r, c]), _xyxy(b[g])[None], dtype=dt))
            j = int(np.argmax(ious))  # the first maximum: the lower predictor index wins a tie
            responsible[i, r, c, j] = True
            iou[i, r, c] = ious[j]
    return YoloV1Assignment(cell_gt, responsible, iou, dropped)


def _check_assigned(boxes: list, i: int, g: int, cell: tuple, grid: tuple, where: str, dt) -> None:
    """ValueError unless image i has a ground truth g whose centre lies in ``cell`` of a ``grid`` (H, W) grid, the
    cell an assignment of these ground truths gives it (a given assignment of other ground truths raised
    IndexError, or used the wrong boxes); the cell computed in ``dt``, as the assignment's function computes it."""
    if g >= len(boxes[i]):
        raise ValueError(f"assignment: {where} answers for gt_boxes[{i}][{g}], but image {i} has {len(boxes[i])} "
                         f"ground-truth box{'' if len(boxes[i]) == 1 else 'es'}: an assignment of other ground "
                         "truth (pass the one computed from these)")
    b = np.asarray(boxes[i][g], dt)
    at = (int(_cell(b[1], grid[0])), int(_cell(b[0], grid[1])))
    if not all(_same_cell(float(x), n, a, want) for x, n, a, want in zip((b[1], b[0]), grid, at, cell)):
        raise ValueError(f"assignment: {where} answers for gt_boxes[{i}][{g}] = {b.tolist()}, whose centre is in cell "
                         f"{at}: an assignment of other ground truth (pass the one computed from these)")


def _same_cell(centre: float, size: int, at: int, want: int) -> bool:
    """Whether a centre in cell ``at`` (of ``size``) may be assigned to cell ``want``: the same cell, or the neighbour
    across a border it lies on to float32's resolution (an assignment made from the float64 boxes, used with float32
    heads: a centre k/size on a border rounds to either side; a review found 82 such centres on grids of 7-76)."""
    if at == want:
        return True
    edge = max(at, want)
    return abs(at - want) == 1 and abs(centre * size - edge) <= 8 * float(np.finfo(np.float32).eps) * max(1.0, edge)


def _check_v1_assignment(assignment, boxes: list, n: int, s: int, num_boxes: int) -> None:
    """ValueError unless ``assignment`` is a YoloV1Assignment of these head outputs and ground truths: its shapes,
    one responsible predictor in each cell with a ground truth (none elsewhere), each cell's ground truth there."""
    if not isinstance(assignment, YoloV1Assignment) or np.shape(assignment.responsible) != (n, s, s, num_boxes) \
            or np.shape(assignment.cell_gt) != (n, s, s) or np.shape(assignment.iou) != (n, s, s):
        raise ValueError("assignment: must be a YoloV1Assignment of these head outputs (from yolov1_assign)")
    cell_gt = np.asarray(assignment.cell_gt)
    count = np.asarray(assignment.responsible).sum(axis=-1)
    bad = np.argwhere(count != (cell_gt >= 0))
    if bad.size:
        i, r, c = (int(v) for v in bad[0])
        raise ValueError(f"assignment: cell ({r}, {c}) of image {i} has {int(count[i, r, c])} responsible "
                         f"predictors and {'a' if cell_gt[i, r, c] >= 0 else 'no'} ground truth: one responsible "
                         "predictor in each cell with a ground truth, none elsewhere (from yolov1_assign)")
    for i, r, c in np.argwhere(cell_gt >= 0):
        _check_assigned(boxes, int(i), int(cell_gt[i, r, c]), (int(r), int(c)), (s, s), f"cell ({r}, {c}) of image {i}",
                        boxes[i].dtype)


def _yolov1(with_grad, head_outputs, gt_boxes, gt_labels, num_boxes=2, *, lambda_coord=5.0, lambda_noobj=0.5,
            lambda_obj=1.0, lambda_class=1.0, obj_target="iou", size_output="w", normalize="batch",
            assignment=None, dtype=None):
    head, dt = _check_v1(head_outputs, num_boxes, size_output, dtype)
    lambda_coord, lambda_noobj, lambda_obj, lambda_class = _weights(
        dt, lambda_coord=lambda_coord, lambda_noobj=lambda_noobj, lambda_obj=lambda_obj, lambda_class=lambda_class)
    _choice("obj_target", obj_target, ("iou", "one"))
    _choice("normalize", normalize, NORMALIZE)
    n, s, _, depth = head.shape
    num_classes = depth - 5 * num_boxes
    boxes, labels = _targets(gt_boxes, gt_labels, n, num_classes, dt)
    if assignment is None:
        assignment = yolov1_assign(head, boxes, labels, num_boxes, size_output, dtype=dt)
    else:
        _check_v1_assignment(assignment, boxes, n, s, num_boxes)
    p = head[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    gp = np.zeros_like(p) if with_grad else None
    # the responsible predictors, one per cell with an object, in (image, row, col) order
    ni, ri, ci, ji = np.nonzero(assignment.responsible)
    gi = assignment.cell_gt[ni, ri, ci]
    gt = np.stack([boxes[i][g] for i, g in zip(ni, gi)]) if len(ni) else np.zeros((0, 4), dt)
    cls = np.array([labels[i][g] for i, g in zip(ni, gi)], np.int64)
    target = np.concatenate([gt[:, :1] * s - ci[:, None], gt[:, 1:2] * s - ri[:, None], gt[:, 2:]], axis=1).astype(dt)
    pred = p[ni, ri, ci, ji, :4]
    parts = {}
    if lambda_coord == 0:  # an ablation: no coordinate term (the generated kernel's domain is lambda_coord > 0)
        parts["coord"], g_coord = dt.type(0), np.zeros_like(pred)
    elif size_output == "w":  # the paper's coordinate term, the generated kernel
        parts["coord"], g_coord = _term(loss_named("yolov1_box_loss"), (pred, target), dt.type(1), with_grad,
                                        dt, lambda_coord=lambda_coord)
    else:  # the channels are sqrt(w), sqrt(h): the same sum of squares on (x, y, s_w, s_h)
        target = np.concatenate([target[:, :2], np.sqrt(target[:, 2:])], axis=1)
        parts["coord"], g_coord = _term(loss_named("mse"), (pred, target), dt.type(lambda_coord), with_grad, dt)
    conf = p[..., 4]
    conf_target = np.zeros_like(conf)
    if obj_target == "iou":  # a target, not differentiated (as darknet's delta)
        conf_target[ni, ri, ci, ji] = assignment.iou[ni, ri, ci]
    else:
        conf_target[ni, ri, ci, ji] = 1
    resp = assignment.responsible.astype(dt)
    parts["obj"], g_obj = _term(loss_named("mse"), (conf, conf_target), dt.type(lambda_obj) * resp, with_grad, dt)
    parts["noobj"], g_noobj = _term(loss_named("mse"), (conf, conf_target), dt.type(lambda_noobj) * (1 - resp),
                                    with_grad, dt)
    obj_cells = assignment.cell_gt >= 0
    cell_n, cell_r, cell_c = np.nonzero(obj_cells)
    onehot = np.zeros((len(cell_n), num_classes), dt)
    cell_labels = np.array([labels[i][assignment.cell_gt[i, r, c]] for i, r, c in zip(cell_n, cell_r, cell_c)],
                           np.int64)
    onehot[np.arange(len(cell_n)), cell_labels] = 1
    probs = head[cell_n, cell_r, cell_c, 5 * num_boxes:]
    parts["class"], g_cls = _term(loss_named("mse"), (probs, onehot), dt.type(lambda_class), with_grad, dt)
    scale = _scale(dt, n, normalize)
    parts = {k: v * scale for k, v in parts.items()}
    total = sum(parts.values(), dt.type(0))
    details = {"assignment": assignment, "cell_gt": assignment.cell_gt, "responsible": assignment.responsible,
               "iou": assignment.iou, "labels": cls, "normalizer": n if normalize == "batch" else 1}
    out_dt = result_dtypes((head_outputs,), dtype)[2]
    result = detection_result(total, parts, details, out_dt)
    if not with_grad:
        return result
    gp[ni, ri, ci, ji, :4] += g_coord
    gp[..., 4] += g_obj + g_noobj
    grad = np.zeros_like(head)
    grad[..., :5 * num_boxes] = gp.reshape(n, s, s, 5 * num_boxes)
    grad[cell_n, cell_r, cell_c, 5 * num_boxes:] += g_cls
    return result, (grad * scale).astype(out_dt, copy=False)


def _term(loss, inputs, weights, with_grad, dt, **params):
    """weighted_term on the first input only: (value, its gradient or None); 0 for no elements."""
    if inputs[0].size == 0:
        return dt.type(0), np.zeros_like(inputs[0])
    if not with_grad:
        return weighted_term(loss, inputs, weights, False, dtype=dt, **params), None
    value, grads = weighted_term(loss, inputs, weights, True, dtype=dt, **params)
    return value, grads[0]


# ----------------------------------------------------------------------------------------------
# YOLOv2 - v4: anchors
# ----------------------------------------------------------------------------------------------

@dataclass
class YoloAssignment:
    """The anchor assignment of YOLOv2-v4 (see :func:`yolo_assign`), one array per scale k:

    ``matched`` (N, H_k, W_k, B_k) int: the ground truth (index into that image's boxes) that
    the anchor predicts, -1 for none (positives are matched >= 0); ``ignore`` (N, H_k, W_k, B_k)
    bool: not positive, and the best IoU of the anchor's decoded box with the image's ground
    truths exceeds the ignore threshold (neither positive nor negative); ``negative`` = neither.
    ``dropped``: (image, gt) pairs that found every anchor they would take already taken."""

    matched: list
    ignore: list
    dropped: list

    @property
    def positive(self) -> list:
        return [m >= 0 for m in self.matched]

    @property
    def negative(self) -> list:
        return [(m < 0) & ~ig for m, ig in zip(self.matched, self.ignore)]


def _shape_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes of sizes wh (G, 2) and anchors (A, 2) sharing a centre: (G, A)."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    return inter / (wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter)


def _grid_shapes(grid_shapes) -> list:
    """[(H_k, W_k), ...] of positive ints; errors name the argument (an int for a pair raised 'cannot unpack')."""
    try:
        shapes = [(int(h), int(w)) for h, w in grid_shapes]
        ok = all(h >= 1 and w >= 1 and (h, w) == tuple(hw) for (h, w), hw in zip(shapes, grid_shapes))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"grid_shapes: must be a list of (H_k, W_k) pairs of positive ints, one per scale, got "
                         f"{grid_shapes!r}")
    return shapes


def _pred_boxes(pred_boxes, shapes) -> list:
    """pred_boxes as float64 arrays, one (N, H_k, W_k, B_k, 4) a scale, checked whole before the ignore test: its
    errors name the scale and the full index (they named a per-image reshape's, or raised IndexError)."""
    if not isinstance(pred_boxes, (list, tuple)) or len(pred_boxes) != len(shapes):
        raise ValueError(f"pred_boxes: must be a list of {len(shapes)} (N, H, W, B, 4) arrays, one per scale, got "
                         f"{type(pred_boxes).__name__} of {len(pred_boxes) if hasattr(pred_boxes, '__len__') else 1}")
    out = []
    for k, (pb, shape) in enumerate(zip(pred_boxes, shapes)):
        reject_autograd((f"pred_boxes[{k}]",), (pb,), gradient=False)
        arr = as_real_array(f"pred_boxes[{k}]", pb, np.dtype(np.float64))
        if arr.shape != shape + (4,):
            raise ValueError(f"pred_boxes[{k}]: must have shape (N, H, W, B, 4) = {shape + (4,)}, got {arr.shape}")
        if np.isnan(arr).any():
            index = tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])
            raise ValueError(f"pred_boxes[{k}]: must not be NaN; pred_boxes[{k}][{', '.join(map(str, index))}] = nan")
        out.append(arr)
    return out


def yolo_assign(grid_shapes, anchors, gt_boxes, pred_boxes=None, *, ignore_threshold=0.5,
                pos_iou_threshold=None):
    """The YOLOv2/v3 assignment: best anchor by shape IoU, in the cell holding the centre.

    ``grid_shapes``: (H_k, W_k) per scale; ``anchors``: (B_k, 2) normalised sizes per scale;
    ``gt_boxes``: per image (G_i, 4) normalised cxcywh (checked by the losses); ``pred_boxes``:
    per scale (N, H_k, W_k, B_k, 4) decoded boxes, normalised xyxy (for the ignore mask; None:
    nothing ignored).

    1. For each ground truth, in order, the anchor of highest shape IoU (IoU of (w, h) and
       (p_w, p_h) with a common centre) over all scales' anchors, ties to the lowest
       (scale, anchor) index (YOLOv3, arXiv:1804.02767 section 2.1: "one bounding box prior for
       each ground truth object"); it is positive in cell (floor(cy H_k), floor(cx W_k)) of its
       scale (a centre at 1 in the last cell).  An anchor already taken stays with the earlier
       ground truth (darknet's layers write the later ground truth's targets over it).
    2. With ``pos_iou_threshold`` t: every further anchor with shape IoU > t also takes the
       ground truth in its scale's centre cell, if still free (after all step-1 claims).
    3. Ignore: an anchor that is not positive and whose decoded box has IoU > ignore_threshold
       with some ground truth of its image (``yolo_ignore_mask``).
    Returns a :class:`YoloAssignment`.
    """
    ignore_threshold = unit_interval("ignore_threshold", ignore_threshold)
    if pos_iou_threshold is not None:
        pos_iou_threshold = unit_interval("pos_iou_threshold", pos_iou_threshold)
    if not isinstance(gt_boxes, (list, tuple)):
        raise ValueError(f"gt_boxes: must be a list of (G_i, 4) arrays, one per image, got {type(gt_boxes).__name__}")
    gt_boxes = [_gt_array(f"gt_boxes[{i}]", b, np.dtype(np.float64)) for i, b in enumerate(gt_boxes)]
    grid_shapes = _grid_shapes(grid_shapes)
    if not isinstance(anchors, (list, tuple)) or len(grid_shapes) != len(anchors):
        raise ValueError(f"anchors: must be a list of {len(grid_shapes)} (B_k, 2) arrays, one per scale of "
                         f"grid_shapes, got {len(anchors) if isinstance(anchors, (list, tuple)) else type(anchors)}")
    # (the losses' check: an infinite anchor took the ground truth, a string raised NumPy's bare error)
    anchors = [_anchors(f"anchors[{k}]", a, np.dtype(np.float64)) for k, a in enumerate(anchors)]
    n = len(gt_boxes)
    flat = np.concatenate(anchors)
    owner = np.concatenate([np.full(len(a), k) for k, a in enumerate(anchors)])
    local = np.concatenate([np.arange(len(a)) for a in anchors])
    matched = [np.full((n, h, w, len(a)), -1, np.int64) for (h, w), a in zip(grid_shapes, anchors)]
    claims = []  # (step, image, gt, flat anchor)
    for i, b in enumerate(gt_boxes):
        if len(b) == 0:
            continue
        ious = _shape_iou(np.asarray(b[:, 2:], np.float64), flat)
        best = np.argmax(ious, axis=1)  # the first maximum: the lowest (scale, anchor) index
        claims += [(0, i, g, int(best[g])) for g in range(len(b))]
        if pos_iou_threshold is not None:
            claims += [(1, i, g, int(a)) for g in range(len(b)) for a in np.nonzero(ious[g] > pos_iou_threshold)[0]
                       if a != best[g]]
    got = set()
    for step, i, g, a in sorted(claims, key=lambda c: c[0]):  # stable: gt order within a step
        k, j = int(owner[a]), int(local[a])
        h, w = grid_shapes[k]
        b = gt_boxes[i][g]
        r, c = int(_cell(b[1], h)), int(_cell(b[0], w))
        if matched[k][i, r, c, j] < 0:
            matched[k][i, r, c, j] = g
            got.add((i, g))
    dropped = [(i, g) for i, b in enumerate(gt_boxes) for g in range(len(b)) if (i, g) not in got]
    ignore = []
    if pred_boxes is not None:
        pred_boxes = _pred_boxes(pred_boxes, [m.shape for m in matched])
    for k, m in enumerate(matched):
        mask = np.zeros(m.shape, bool)
        if pred_boxes is not None:
            for i, b in enumerate(gt_boxes):
                if len(b):
                    mask[i] = yolo_ignore_mask(pred_boxes[k][i].reshape(-1, 4), _xyxy(np.asarray(b, np.float64)),
                                               ignore_threshold).reshape(m.shape[1:])
        ignore.append(mask & (m < 0))
    return YoloAssignment(matched, ignore, dropped)


def _anchors(name: str, a, dt) -> np.ndarray:
    """One scale's anchors as a (B, 2) array of ``dt``, B >= 1, finite sizes > 0; errors name the argument."""
    reject_autograd((name,), (a,), gradient=False)
    a = as_real_array(name, a, dt)
    if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
        raise ValueError(f"{name}: must have shape (B, 2) (normalised anchor sizes), got shape {a.shape}")
    check_finite(name, a)
    if not (a > 0).all():
        raise ValueError(f"{name}: anchor sizes must be > 0, got {a.tolist()}")
    return a


def _heads(version, head_outputs, anchors, dtype):
    """(heads (N, H, W, B, 5 + C) per scale, anchors (B, 2) per scale, dt, C)."""
    many = version != "v2"
    if many:
        if not isinstance(head_outputs, (list, tuple)) or not len(head_outputs):
            raise ValueError("head_outputs: must be a list over scales of (N, H_k, W_k, B_k, 5 + C) arrays")
        if not isinstance(anchors, (list, tuple)) or len(anchors) != len(head_outputs):
            raise ValueError(f"anchors: must be a list of {len(head_outputs)} (B_k, 2) arrays, one per scale")
        names = [f"head_outputs[{k}]" for k in range(len(head_outputs))]
        raw, raw_anchors = list(head_outputs), list(anchors)
    else:
        names, raw, raw_anchors = ["head_outputs"], [head_outputs], [anchors]
    reject_autograd(names, raw)
    dt, _, out_dt = result_dtypes(raw, dtype)
    heads, anchor_list = [], []
    for k, (name, h, a) in enumerate(zip(names, raw, raw_anchors)):
        a = _anchors(f"anchors[{k}]" if many else "anchors", a, dt)
        arr = as_real_array(name, h, dt)
        if not many and arr.ndim == 4:  # (N, S, S, B (5 + C)): darknet's channel layout, anchor-major
            if arr.shape[3] % len(a):
                raise ValueError(f"{name}: the last dimension {arr.shape[3]} must be B (5 + C) with B = "
                                 f"{len(a)} anchors")
            arr = arr.reshape(arr.shape[:3] + (len(a), arr.shape[3] // len(a)))
        if arr.ndim != 5 or arr.shape[3] != len(a) or arr.shape[4] < 6 or 0 in arr.shape[1:3]:
            raise ValueError(f"{name}: must have shape (N, H, W, B, 5 + C) with B = {len(a)} anchors, C >= 1 and a "
                             f"grid of at least one cell, got shape {arr.shape}")
        check_finite(name, arr)
        heads.append(arr)
        anchor_list.append(a)
    c = heads[0].shape[4] - 5
    for k, h in enumerate(heads):
        if h.shape[0] != heads[0].shape[0] or h.shape[4] != c + 5:
            raise ValueError(f"head_outputs[{k}]: shape {h.shape} disagrees with head_outputs[0] "
                             f"{heads[0].shape} in N or 5 + C")
    return heads, anchor_list, dt, out_dt, c


def _check_inside(offsets, images, gts, scale_xy):
    """ValueError for a ground-truth centre where the t-space target is infinite: offset u in the
    cell with (u + (s - 1)/2)/s not in (0, 1) (s = scale_xy; for s = 1 a centre on a cell border)."""
    u = (offsets + (scale_xy - 1) / 2) / scale_xy
    bad = np.argwhere(~((u > 0) & (u < 1)))
    if bad.size:
        p = int(bad[0, 0])
        raise ValueError(f"gt_boxes[{int(images[p])}][{int(gts[p])}]: its centre lies on a cell border (offset "
                         f"{float(offsets[p, bad[0, 1]])!r} in its cell), where the paper's target t^ = "
                         "logit(offset) is infinite; use xy_loss='sigmoid' (darknet's squared error on "
                         "sigma(t)), which is finite there")


def _check_decoded_finite(pred: np.ndarray, head: np.ndarray, k: int, index: tuple, dt) -> None:
    """ValueError naming the head output of the first positive anchor whose decoded box is not finite: a size
    p e^t that overflowed (t_w = 90 in float32, 710 in float64).  The CIoU box term of that box is not computed
    (the iou kernel refused it naming its internal argument, "pred: must be finite")."""
    bad = np.argwhere(~np.isfinite(pred))
    if not bad.size:
        return
    p, col = int(bad[0, 0]), int(bad[0, 1])
    channel = 2 if col in (0, 2) else 3  # x1, x2 come from the width (t_w), y1, y2 from the height (t_h)
    at = tuple(int(i[p]) for i in index) + (channel,)
    size, t, prior = ("width", "t_w", "p_w") if channel == 2 else ("height", "t_h", "p_h")
    raise ValueError(f"head_outputs[{k}][{', '.join(map(str, at))}] = {float(head[at])!r}: the predicted box "
                     f"{size} {prior} e^{t} of this positive anchor overflows {dt.name}, and the CIoU box term "
                     "of an infinitely large box is not computed"
                     + ("; dtype=numpy.float64 holds it up to t of about 709" if dt == np.float32 else ""))


def _grid(h: int, w: int, dt) -> np.ndarray:
    """(H, W, 1, 2) cell corners (c_x, c_y) = (col, row)."""
    cols, rows = np.meshgrid(np.arange(w, dtype=dt), np.arange(h, dtype=dt))
    return np.stack([cols, rows], axis=-1)[:, :, None, :]


def _anchor_yolo(version, with_grad, head_outputs, anchors, gt_boxes, gt_labels, *, lambda_coord, lambda_noobj,
                 lambda_obj, lambda_class, obj_target, xy_loss, size_weight, ignore_threshold, pos_iou_threshold,
                 scale_xy, normalize, assignment, box_params, dtype):
    heads, anchor_list, dt, out_dt, num_classes = _heads(version, head_outputs, anchors, dtype)
    box = {"lambda_box" if version == "v4" else "lambda_coord": lambda_coord}  # (v4's name for it)
    lambda_coord, lambda_noobj, lambda_obj, lambda_class = _weights(
        dt, **box, lambda_noobj=lambda_noobj, lambda_obj=lambda_obj, lambda_class=lambda_class)
    _choice("obj_target", obj_target, ("iou", "one"))
    _choice("xy_loss", xy_loss, ("t", "sigmoid"))
    _choice("normalize", normalize, NORMALIZE)
    if not isinstance(size_weight, (bool, np.bool_)):
        raise TypeError(f"size_weight: must be True or False, got {size_weight!r}")
    n = heads[0].shape[0]
    boxes, labels = _targets(gt_boxes, gt_labels, n, num_classes, dt)
    variant = "v4" if version == "v4" else ("v2" if version == "v2" else "v3")
    if isinstance(scale_xy, (list, tuple)):  # one per scale
        if len(scale_xy) != len(heads):
            raise ValueError(f"scale_xy: one value or one per scale ({len(heads)}), got {len(scale_xy)}")
        scales = [positive_number(f"scale_xy[{k}]", s) for k, s in enumerate(scale_xy)]
    else:  # (checked as yolo_decode checks it: "1.2", True and arrays were taken, or failed in float())
        scales = [positive_number("scale_xy", scale_xy)] * len(heads)
    kw = [{"scale_xy": s} if variant == "v4" else {} for s in scales]
    # decoded boxes per scale, in grid units (anchors scaled to the grid) and normalised xyxy
    anchors_grid, norm, decoded = [], [], []
    for k, (h, a) in enumerate(zip(heads, anchor_list)):
        rows, cols = h.shape[1], h.shape[2]
        g = _grid(rows, cols, dt)
        ag = a * np.array([cols, rows], dt)
        b = yolo_decode(h[..., :4], ag, g, variant=variant, dtype=dt, **kw[k])
        anchors_grid.append(ag)
        norm.append(np.array([cols, rows, cols, rows], dt))
        decoded.append(_xyxy(b) / norm[-1])
    if assignment is None:
        assignment = yolo_assign([h.shape[1:3] for h in heads], anchor_list, boxes, decoded,
                                 ignore_threshold=ignore_threshold, pos_iou_threshold=pos_iou_threshold)
    elif not isinstance(assignment, YoloAssignment) or [np.shape(m) for m in assignment.matched] != \
            [h.shape[:4] for h in heads] or [np.shape(m) for m in assignment.ignore] != [h.shape[:4] for h in heads]:
        raise ValueError("assignment: must be a YoloAssignment of these head outputs (from yolo_assign)")
    else:
        for k, m in enumerate(assignment.matched):
            hname = "head_outputs" if version == "v2" else f"head_outputs[{k}]"
            for i, r, c, a in np.argwhere(np.asarray(m) >= 0):
                _check_assigned(boxes, int(i), int(m[i, r, c, a]), (int(r), int(c)), m.shape[1:3],
                                f"{hname}'s anchor {a} in cell ({r}, {c}) of image {i}", np.float64)
    coord_name = "box" if version == "v4" else "coord"
    parts = {coord_name: dt.type(0), "obj": dt.type(0), "noobj": dt.type(0), "class": dt.type(0)}
    grads = [np.zeros_like(h) for h in heads] if with_grad else None
    for k, h in enumerate(heads):
        matched = assignment.matched[k]
        ni, ri, ci, ai = np.nonzero(matched >= 0)
        gi = matched[ni, ri, ci, ai]
        gt = np.stack([boxes[i][g] for i, g in zip(ni, gi)]) if len(ni) else np.zeros((0, 4), dt)
        cls = np.array([labels[i][g] for i, g in zip(ni, gi)], np.int64)
        t = h[ni, ri, ci, ai, :4]
        grid_p = np.stack([ci, ri], axis=1).astype(dt)
        anch_p = anchors_grid[k][ai]
        wts = (2 - gt[:, 2] * gt[:, 3]) if size_weight else np.ones(len(ni), dt)  # darknet's (2 - w h)
        wts = wts.astype(dt)
        d_t = np.zeros_like(t)
        if version == "v4":  # CIoU on the decoded, normalised boxes; its gradient back through the decoding
            pred = decoded[k][ni, ri, ci, ai]
            _check_decoded_finite(pred, h, k, (ni, ri, ci, ai), dt)
            value, g_box = _term(loss_named("ciou_loss"), (pred, _xyxy(gt)), dt.type(lambda_coord) * wts,
                                 with_grad, dt, **(box_params or {}))
            parts[coord_name] += value
            if with_grad and len(ni):
                d_t += yolo_decode.value_and_grad(t, anch_p, grid_p, variant=variant, fmt="xyxy", dtype=dt,
                                                  cotangent=g_box / norm[k], **kw[k])[1]
        else:
            gt_grid = gt * norm[k]  # cxcywh in grid units
            if xy_loss == "t":
                _check_inside(gt_grid[:, :2] - grid_p, ni, gi, kw[k].get("scale_xy", 1.0))
                enc = gt_grid
            else:  # only the size targets are used: the centre is put in the cell's middle
                enc = np.concatenate([grid_p + dt.type(0.5), gt_grid[:, 2:]], axis=1)
            target_t = yolo_encode(enc, anch_p, grid_p, variant=variant, dtype=dt, **kw[k]) if len(ni) \
                else np.zeros((0, 4), dt)
            lam = dt.type(lambda_coord) * wts[:, None]
            if xy_loss == "t":  # the YOLOv3 paper: t* - t on all four coordinates
                value, g_xy = _term(loss_named("mse"), (t[:, :2], target_t[:, :2]), lam, with_grad, dt)
                if with_grad:
                    d_t[:, :2] += g_xy
            else:  # darknet: the decoded centre (sigma(t) + c) against the ground truth's, in grid units
                centre = yolo_decode(t, anch_p, grid_p, variant=variant, dtype=dt, **kw[k])[:, :2] \
                    if len(ni) else np.zeros((0, 2), dt)
                value, g_c = _term(loss_named("mse"), (centre, gt_grid[:, :2]), lam, with_grad, dt)
                if with_grad and len(ni):
                    ct = np.concatenate([g_c, np.zeros_like(g_c)], axis=1)
                    # the centre's gradient only: the sizes' cotangent is 0 and the Jacobian diagonal, and 0 times
                    # an overflowed size's derivative (t_w = 90 in float32) is NaN
                    d_t[:, :2] += yolo_decode.value_and_grad(t, anch_p, grid_p, variant=variant, dtype=dt,
                                                             cotangent=ct, **kw[k])[1][:, :2]
            parts[coord_name] += value
            value, g_wh = _term(loss_named("mse"), (t[:, 2:], target_t[:, 2:]), lam, with_grad, dt)
            parts[coord_name] += value
            if with_grad:
                d_t[:, 2:] += g_wh
        if with_grad:
            grads[k][ni, ri, ci, ai, :4] += d_t
        # objectness
        pos = (matched >= 0).astype(dt)
        neg = assignment.negative[k].astype(dt)
        logit = h[..., 4]
        obj_t = pos.copy()
        if version == "v2":  # squared error on sigma(t_o) (YOLOv1's confidence, per anchor)
            if obj_target == "iou" and len(ni):
                # a decoded size that overflowed (t_w = 90 in float32) is an infinitely large box: its IoU with the
                # (finite) ground truth is 0, the target's limit (the iou kernel refused it, "pred: must be finite")
                pb = decoded[k][ni, ri, ci, ai]
                finite = np.isfinite(pb).all(axis=1)
                if finite.any():
                    obj_t[ni[finite], ri[finite], ci[finite], ai[finite]] = \
                        loss_named("iou")(pb[finite], _xyxy(gt)[finite], dtype=dt)
                obj_t[ni[~finite], ri[~finite], ci[~finite], ai[~finite]] = 0
            sig = _sigmoid(logit)
            dsig = sig * (1 - sig)
            v_obj, g_obj = _term(loss_named("mse"), (sig, obj_t), dt.type(lambda_obj) * pos, with_grad, dt)
            v_no, g_no = _term(loss_named("mse"), (sig, obj_t), dt.type(lambda_noobj) * neg, with_grad, dt)
            if with_grad:
                grads[k][..., 4] += (g_obj + g_no) * dsig
        else:  # binary cross-entropy on t_o, target 1 for positives, 0 for negatives, ignored ones left out
            v_obj, g_obj = _term(loss_named("bce_with_logits"), (logit, obj_t), dt.type(lambda_obj) * pos,
                                 with_grad, dt)
            v_no, g_no = _term(loss_named("bce_with_logits"), (logit, obj_t), dt.type(lambda_noobj) * neg,
                               with_grad, dt)
            if with_grad:
                grads[k][..., 4] += g_obj + g_no
        parts["obj"] += v_obj
        parts["noobj"] += v_no
        # classes of the positives
        onehot = np.zeros((len(ni), num_classes), dt)
        onehot[np.arange(len(ni)), cls] = 1
        z = h[ni, ri, ci, ai, 5:]
        if version == "v2":  # softmax probabilities against the one-hot target, squared error (as YOLOv1)
            zmax = z.max(axis=1, keepdims=True) if len(ni) else z
            e = np.exp(z - zmax)
            prob = (e / e.sum(axis=1, keepdims=True)).astype(dt, copy=False)
            value, g_p = _term(loss_named("mse"), (prob, onehot), dt.type(lambda_class), with_grad, dt)
            if with_grad and len(ni):  # through the softmax: dL/dz = p (g - <g, p>)
                grads[k][ni, ri, ci, ai, 5:] += prob * (g_p - (g_p * prob).sum(axis=1, keepdims=True))
        else:
            value, g_z = _term(loss_named("bce_with_logits"), (z, onehot), dt.type(lambda_class), with_grad, dt)
            if with_grad:
                grads[k][ni, ri, ci, ai, 5:] += g_z
        parts["class"] += value
    scale = _scale(dt, n, normalize)
    parts = {key: dt.type(v * scale) for key, v in parts.items()}
    total = sum(parts.values(), dt.type(0))
    details = {"assignment": assignment, "matched": assignment.matched, "positive": assignment.positive,
               "ignore": assignment.ignore, "negative": assignment.negative, "pred_boxes": decoded,
               "normalizer": n if normalize == "batch" else 1}
    result = detection_result(total, parts, details, out_dt)
    if not with_grad:
        return result
    grads = [(g * scale).astype(out_dt, copy=False) for g in grads]
    if version == "v2":
        return result, grads[0].reshape(np.shape(head_outputs))
    return result, grads


def _yolov2(with_grad, head_outputs, anchors, gt_boxes, gt_labels, *, lambda_coord=5.0, lambda_noobj=0.5,
            lambda_obj=1.0, lambda_class=1.0, obj_target="iou", xy_loss="sigmoid", size_weight=False,
            ignore_threshold=0.6, pos_iou_threshold=0.3, normalize="batch", assignment=None, dtype=None):
    return _anchor_yolo("v2", with_grad, head_outputs, anchors, gt_boxes, gt_labels, lambda_coord=lambda_coord,
                        lambda_noobj=lambda_noobj, lambda_obj=lambda_obj, lambda_class=lambda_class,
                        obj_target=obj_target, xy_loss=xy_loss, size_weight=size_weight,
                        ignore_threshold=ignore_threshold, pos_iou_threshold=pos_iou_threshold, scale_xy=1.0,
                        normalize=normalize, assignment=assignment, box_params=None, dtype=dtype)


def _yolov3(with_grad, head_outputs, anchors, gt_boxes, gt_labels, *, lambda_coord=1.0, lambda_noobj=0.5,
            lambda_obj=1.0, lambda_class=1.0, xy_loss="t", size_weight=False, ignore_threshold=0.5,
            pos_iou_threshold=None, normalize="batch", assignment=None, dtype=None):
    return _anchor_yolo("v3", with_grad, head_outputs, anchors, gt_boxes, gt_labels, lambda_coord=lambda_coord,
                        lambda_noobj=lambda_noobj, lambda_obj=lambda_obj, lambda_class=lambda_class,
                        obj_target="one", xy_loss=xy_loss, size_weight=size_weight,
                        ignore_threshold=ignore_threshold, pos_iou_threshold=pos_iou_threshold, scale_xy=1.0,
                        normalize=normalize, assignment=assignment, box_params=None, dtype=dtype)


def _yolov4(with_grad, head_outputs, anchors, gt_boxes, gt_labels, *, lambda_box=1.0, lambda_noobj=0.5,
            lambda_obj=1.0, lambda_class=1.0, scale_xy=1.1, ignore_threshold=0.5, pos_iou_threshold=None,
            normalize="batch", assignment=None, box_params=None, dtype=None):
    return _anchor_yolo("v4", with_grad, head_outputs, anchors, gt_boxes, gt_labels, lambda_coord=lambda_box,
                        lambda_noobj=lambda_noobj, lambda_obj=lambda_obj, lambda_class=lambda_class,
                        obj_target="one", xy_loss="t", size_weight=False, ignore_threshold=ignore_threshold,
                        pos_iou_threshold=pos_iou_threshold, scale_xy=scale_xy, normalize=normalize,
                        assignment=assignment, box_params=box_params, dtype=dtype)


_COMMON = """
    Normalisation: ``normalize="batch"`` (default) divides every part by the number of images N
    (darknet sums over the batch and divides the learning rate by the batch size, which is the
    same step); ``"sum"`` leaves the sums.  ``assignment``: a precomputed assignment (else it is
    computed from the head outputs and the ground truth).  ``dtype``: the computation's
    precision (default: the head outputs'); float32 in, float32 out; float16 computed in float32 and
    returned as float16.

    Returns a :class:`DetectionResult` (``total``, ``parts``, ``details``: the assignment and its
    masks, the normaliser); ``.value_and_grad(...)`` returns ``(result, grad)`` with ``grad`` the
    gradient of ``total`` with respect to the head output(s), of the same shape(s).  See
    docs/yolo-losses.md for every sum written out and a worked example.
"""

yolov1_loss = DetectionLoss("yolov1_loss", _yolov1, """The YOLOv1 loss (Redmon et al., arXiv:1506.02640, eq. 3).

    ``yolov1_loss(head_outputs, gt_boxes, gt_labels, num_boxes=2, *, lambda_coord=5.0,
    lambda_noobj=0.5, lambda_obj=1.0, lambda_class=1.0, obj_target="iou", size_output="w",
    normalize="batch", assignment=None, dtype=None)``

    head_outputs (N, S, S, 5B + C): per cell, predictor j at channels 5j .. 5j + 4 = (x, y, w, h,
    C) with (x, y) the centre's offset in the cell and (w, h) normalised by the image, then the
    C class probabilities; the final layer is linear (no activation).  gt_boxes, gt_labels: per
    image (G_i, 4) normalised cxcywh and (G_i,) ints.  With 1^obj_ij from :func:`yolov1_assign`::

        L = lambda_coord sum_ij 1^obj_ij [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
          + lambda_obj   sum_ij 1^obj_ij (C_ij - C^_ij)^2
          + lambda_noobj sum_ij (1 - 1^obj_ij) C_ij^2
          + lambda_class sum_i 1^obj_i sum_c (p_i(c) - p^_i(c))^2

    parts "coord" (the generated ``yolov1_box_loss``), "obj", "noobj", "class".  C^ is the IoU
    of the responsible box with its ground truth (``obj_target="iou"``, the paper's; a target,
    not differentiated) or 1 (``"one"``).  ``size_output="sqrt"`` reads the w, h channels as
    sqrt(w), sqrt(h) (darknet's ``sqrt=1``; the paper's text "we predict the square root"): the
    same sums with sqrt(w) replaced by the channel, defined for negative outputs too.
""" + _COMMON)

yolov2_loss = DetectionLoss("yolov2_loss", _yolov2, """The YOLOv2 loss (Redmon & Farhadi, arXiv:1612.08242): YOLOv1's
    sums of squares per anchor.

    ``yolov2_loss(head_outputs, anchors, gt_boxes, gt_labels, *, lambda_coord=5.0, lambda_noobj=0.5,
    lambda_obj=1.0, lambda_class=1.0, obj_target="iou", xy_loss="sigmoid", size_weight=False,
    ignore_threshold=0.6, pos_iou_threshold=0.3, normalize="batch", assignment=None, dtype=None)``

    head_outputs (N, S, S, B, 5 + C) or (N, S, S, B (5 + C)) (anchor-major, darknet's layout):
    (t_x, t_y, t_w, t_h, t_o, class logits); anchors (B, 2) normalised sizes (darknet's v2 cfg
    gives them in cells of the 13 x 13 grid: divide by 13).  Boxes decode as b = sigma(t) + c,
    p e^t (``yolo_decode`` variant "v2").  With positives P, negatives Q from :func:`yolo_assign`
    (the best anchor, plus anchors of shape IoU > pos_iou_threshold = 0.3, the seed's
    "positives at IoU > 0.3"; ignored: decoded IoU > ignore_threshold = 0.6, darknet's ``thresh``)::

        L = lambda_coord sum_P [(sigma(t_x) - (x^ S - c_x))^2 + (.. y ..)^2 + (t_w - ln(w^/p_w))^2 + (.. h ..)^2]
          + lambda_obj   sum_P (sigma(t_o) - IoU)^2 + lambda_noobj sum_Q sigma(t_o)^2
          + lambda_class sum_P sum_c (softmax(z)_c - 1[c = label])^2

    parts "coord", "obj", "noobj", "class".  The paper gives no loss formula; these are YOLOv1's
    terms per anchor (the seed, and darknet's region layer for the coordinates and objectness).
    darknet differs in its class term (its delta p - y is the softmax cross-entropy gradient)
    and in a prior-matching term for the first 12,800 images, neither of which is here.
""" + _COMMON)

yolov3_loss = DetectionLoss("yolov3_loss", _yolov3, """The YOLOv3 loss (Redmon & Farhadi, arXiv:1804.02767).

    ``yolov3_loss(head_outputs, anchors, gt_boxes, gt_labels, *, lambda_coord=1.0, lambda_noobj=0.5,
    lambda_obj=1.0, lambda_class=1.0, xy_loss="t", size_weight=False, ignore_threshold=0.5,
    pos_iou_threshold=None, normalize="batch", assignment=None, dtype=None)``

    head_outputs: a list over scales of (N, H_k, W_k, B_k, 5 + C); anchors: a list of (B_k, 2)
    normalised sizes (darknet's pixels / image size).  With P, Q from :func:`yolo_assign` (one
    best anchor per ground truth over all scales; ignored: decoded IoU > 0.5)::

        L = lambda_coord sum_P [(t_x - t^_x)^2 + (t_y - t^_y)^2] + lambda_coord sum_P [(t_w - t^_w)^2 + (t_h - t^_h)^2]
          + lambda_obj sum_P BCE(t_o, 1) + lambda_noobj sum_Q BCE(t_o, 0)
          + lambda_class sum_P sum_c BCE(z_c, 1[c = label])

    parts "coord" (``mse``), "obj", "noobj", "class" (``bce_with_logits``).  t^ = ``yolo_encode``
    of the ground truth in its cell and anchor (the paper: "t^* - t*"; a centre on a cell border
    has t^_x = -inf and is a ValueError there); ``xy_loss="sigmoid"`` is darknet's
    (sigma(t_x) - (x^ W - c_x))^2, finite everywhere; ``size_weight=True`` darknet's weight
    2 - w^ h^.  darknet's defaults: all lambdas 1, ignore_thresh 0.7.
""" + _COMMON)

yolov4_loss = DetectionLoss("yolov4_loss", _yolov4, """The YOLOv4 loss (Bochkovskiy et al., arXiv:2004.10934): YOLOv3's
    with the box term replaced by CIoU on the decoded boxes.

    ``yolov4_loss(head_outputs, anchors, gt_boxes, gt_labels, *, lambda_box=1.0, lambda_noobj=0.5,
    lambda_obj=1.0, lambda_class=1.0, scale_xy=1.1, ignore_threshold=0.5, pos_iou_threshold=None,
    normalize="batch", assignment=None, box_params=None, dtype=None)``

    As :data:`yolov3_loss`, but::

        L_box = lambda_box sum_P (1 - CIoU(b, b^)),   b = decode(t) (``yolo_decode`` variant "v4",
        centre scale_xy sigma(t) - (scale_xy - 1)/2 + c: the paper's grid-sensitivity fix; 1.1 as
        the seed gives; one value or one per scale)

    on normalised xyxy boxes, the gradient back through the decoding.  ``box_params`` go to
    ``ciou_loss`` (e.g. ``{"alpha_grad": True}``; the default treats alpha as a constant, as the
    official code).  darknet's yolov4.cfg: iou_normalizer 0.07, scale_x_y 1.2/1.1/1.05,
    ignore_thresh 0.7, iou_thresh 0.213 (= pos_iou_threshold).
""" + _COMMON)
