"""What each loss is checked against, written by hand on purpose (as SciPy's FuncData tables):
its independent oracle, the parameter sets ``refloss verify`` runs, and the accuracy bar.

Everything else generic code knows about a loss comes from its derivation (the generated
index, :mod:`refloss._info`).  A test holds the two together: every derived loss has a row
here, and every row a derived loss and stored reference values.

``oracle`` names a function of :mod:`refloss.oracle` ("module.function"), imported only when
reference values are computed (it needs mpmath): per point it returns the exact value and
gradients, in the family's order (:mod:`refloss._families`).  ``floor`` optionally names a
function giving, per gradient, the magnitude of the terms that cancel (errors are measured in
ULPs of the larger of that and the exact result).  Bars are in the units of the family's
error measure: ULPs, or for boxes the value's absolute error and the gradient's error relative
to the pair's largest component (float32: the same number of float32 epsilons).
"""
from __future__ import annotations

from typing import NamedTuple, Optional


class Bar(NamedTuple):
    value: float
    grad: float
    fd: Optional[float] = None  # element-wise float64: analytic vs extrapolated finite differences
    per_epsilon: bool = False  # the bar is float64's; float32's is the same number of its epsilons

    def at(self, dtype: str) -> tuple:
        """(value bar, gradient bar) for ``dtype`` ("float64" or "float32")."""
        if self.per_epsilon and dtype == "float32":
            return self.value / 2.0**-52 * 2.0**-23, self.grad / 2.0**-52 * 2.0**-23
        return self.value, self.grad


class Reference(NamedTuple):
    oracle: str
    param_sets: tuple
    bar: Bar
    floor: Optional[str] = None


# element-wise: values and gradients within 4 ULP of the correctly rounded result; float64
# gradients within 1e-8 of extrapolated finite differences of the kernel's own value
ULP4 = Bar(4.0, 4.0, fd=1e-8)
# focal loss is a product of up to five correctly rounded factors (alpha_t, CE, (1-p_t)^gamma, ...)
ULP8 = Bar(8.0, 8.0)
# QFL: the focal loss's bar plus beta times the ~1 ULP of y - sigma, for the beta <= 4 it is run at
QFL_ULP = Bar(12.0, 12.0)
# a box coordinate is a product/sum of up to four correctly rounded results
YOLO_ULP8 = Bar(8.0, 8.0)
# the box bar (issue 4): float64 value error <= 1e-14 absolute, gradient error <= 1e-13 relative to
# the pair's largest exact component; float32 the same number of float32 epsilons
BOX = Bar(1e-14, 1e-13, per_epsilon=True)

_EPS = ({}, {"eps": 1e-7})

REFERENCES = {
    "l1": Reference("elementwise.l1", ({},), ULP4),
    "mse": Reference("elementwise.mse", ({},), ULP4),
    "smooth_l1": Reference("elementwise.smooth_l1", ({"beta": 1.0}, {"beta": 1 / 9}, {"beta": 0.0}, {"beta": 2.5}),
                           ULP4),
    "huber": Reference("elementwise.huber", ({"delta": 1.0}, {"delta": 0.5}, {"delta": 3.0}), ULP4),
    "balanced_l1": Reference("elementwise.balanced_l1", (
        {"beta": 1.0, "alpha": 0.5, "gamma": 1.5}, {"beta": 1 / 9, "alpha": 0.5, "gamma": 1.5},
        {"beta": 0.11, "alpha": 0.5, "gamma": 1.5}, {"beta": 2.0, "alpha": 1.0, "gamma": 1.0}), ULP4),
    "focal_l1": Reference("elementwise.focal_l1", ({"beta": 0.8}, {"beta": 0.5}, {"beta": 1.0}, {"beta": 0.37}), ULP4),
    "iou": Reference("boxes.iou", _EPS, BOX),
    "iou_loss": Reference("boxes.iou_loss", _EPS, BOX),
    "log_iou_loss": Reference("boxes.log_iou_loss", ({},), BOX),
    "giou": Reference("boxes.giou", ({},), BOX),
    "giou_loss": Reference("boxes.giou_loss", _EPS, BOX),
    "diou": Reference("boxes.diou", ({},), BOX),
    "diou_loss": Reference("boxes.diou_loss", _EPS, BOX),
    "ciou": Reference("boxes.ciou", ({},), BOX),
    "ciou_loss": Reference("boxes.ciou_loss", ({}, {"alpha_grad": True}, {"alpha_gate": 0.5}, {"darknet": True}), BOX),
    "eiou_loss": Reference("boxes.eiou_loss", ({},), BOX),
    "focal_eiou_loss": Reference("boxes.focal_eiou_loss", ({}, {"weight_grad": True}), BOX),
    "focal_l1_eiou_loss": Reference("boxes.focal_l1_eiou_loss", ({}, {"beta": 0.5}, {"beta": 1.0}), BOX),
    "bce_with_logits": Reference("classification.bce_with_logits", ({},), ULP8,
                                 floor="classification.bce_gradient_scale"),
    "sigmoid_focal_loss": Reference("classification.sigmoid_focal_loss", (
        {"alpha": 0.25, "gamma": 2.0}, {"alpha": None, "gamma": 2.0}, {"alpha": 0.5, "gamma": 0.5},
        {"alpha": 0.25, "gamma": 0.0}), ULP8, floor="classification.focal_gradient_scale"),
    "softmax_cross_entropy": Reference("classification.softmax_cross_entropy", ({}, {"label_smoothing": 0.1}), ULP8,
                                       floor="classification.softmax_gradient_scale"),
    "yolov1_box_loss": Reference("yolo.yolov1_box_loss", ({},), YOLO_ULP8),
    "yolo_decode": Reference("yolo.decode_vjp", (
        {"variant": "v3", "stride": 8.0}, {"variant": "v4", "scale_xy": 1.2, "stride": 8.0},
        {"variant": "scaled", "stride": 8.0}), YOLO_ULP8),
    # issue 15: SIoU (the paper's distance sign and mmdetection's) and Wise-IoU v1/v2/v3
    "siou_loss": Reference("boxes.siou_loss", ({}, {"positive_exponent": True}, {"theta": 2.0, "eps": 1e-7}), BOX),
    "wiou_loss": Reference("boxes.wiou_loss", (
        {}, {"enclosing_grad": True, "eps": 1e-7}, {"version": 2, "iou_mean": 0.6}, {"version": 3, "iou_mean": 0.4}),
        BOX),
    # issue 15: products of a few correctly rounded factors, as the focal loss; QFL's |y - sigma|^beta
    # multiplies the rounding error of y - sigma (~1.5 ULP) by beta: 8.4 ULP measured at beta = 3.5
    "qfl_loss": Reference("classification.qfl_loss", ({"beta": 2.0}, {"beta": 1.0}, {"beta": 0.0}, {"beta": 3.5}),
                          QFL_ULP,
                          floor="classification.qfl_gradient_scale"),
    "varifocal_loss": Reference("classification.varifocal_loss", (
        {"alpha": 0.75, "gamma": 2.0}, {"alpha": 0.75, "gamma": 2.0, "detach_weight": True},
        {"alpha": 0.25, "gamma": 0.5}, {"iou_weighted": False}), ULP8, floor="classification.varifocal_gradient_scale"),
    # clamps whose bound (n - 1) - clamp is exact in binary (0.25, 2^-7) and the peers' (ultralytics 0.01, D-FINE
    # 0.1), which are not: the kernels decide and weight the held target exactly (docs/accuracy.md); a float32
    # kernel takes the clamp at its float32 value, whose bound lies within 2e-10 of the oracle's (no float32
    # target between them in the battery)
    "dfl_loss": Reference("classification.dfl_loss", ({}, {"clamp": 0.25}, {"clamp": 2.0**-7}, {"clamp": 0.01},
                                                      {"clamp": 0.1}), ULP8,
                          floor="classification.dfl_gradient_scale"),
    # issue 15: IoU variants
    "alpha_iou_loss": Reference("boxes.alpha_iou_loss", ({}, {"alpha": 0.5, "form": "giou"}, {"form": "diou"},
                                                         {"alpha": 1.0, "eps": 1e-7}, {"form": "ciou"},
                                                         {"alpha": 0.5, "form": "ciou"},
                                                         {"form": "ciou", "beta_grad": True}), BOX),
    "nwd_loss": Reference("boxes.nwd_loss", ({}, {"c": 1.0}, {"eps": 1e-7}), BOX),
    "mpdiou_loss": Reference("boxes.mpdiou_loss", ({"image_size": (640, 640)}, {"image_size": (3.0, 2.0), "eps": 1e-7}),
                             BOX),
    "inner_iou_loss": Reference("boxes.inner_iou_loss", ({}, {"ratio": 1.25}, {"ratio": 1.0, "eps": 1e-7}), BOX),
    "shape_iou_loss": Reference("boxes.shape_iou_loss", ({}, {"scale": 4.0}, {"scale": 0.5, "eps": 1e-7}), BOX),
    # issue 15: rotated boxes (cx, cy, w, h, angle)
    "probiou_loss": Reference("rotated.probiou_loss", ({}, {"mode": "bd"}), BOX),
    "kld_loss": Reference("rotated.kld_loss", ({}, {"fun": "sqrt"}, {"tau": 2.0}, {"reverse": True}), BOX),
    "gwd_loss": Reference("rotated.gwd_loss", ({}, {"fun": "sqrt"}, {"tau": 2.0}), BOX),
    "obb_angle_loss": Reference("rotated.obb_angle_loss", ({}, {"lam": 1.0}, {"eps": 1e-9}), BOX),
}
