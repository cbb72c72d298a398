"""Generalized IoU loss (Rezatofighi et al., arXiv:1902.09630) on xyxy boxes."""

from . import _boxes as B
from refloss._derive.core import Step, Variant
from .iou_loss import EPS
from refloss._info import Properties

NAME = "giou_loss"
NOTE_SLIDE = ("GIoU loss keeps a non-zero derivative where the boxes do not overlap: moving away enlarges the enclosing "
              "box $C$ and with it the penalty $(C - U)/C$, while 1 - IoU is flat there.")
NOTE_ASPECT = ("GIoU loss differs from 1 - IoU only where the boxes cross (height 0.5 with width > 1, height 2 with "
               "width < 1), where the enclosing box is larger than the union; elsewhere $C = U$ (the dashed 1 - IoU lies "
               "on the height 0.5 curve up to width 1).")
# C - U from coordinate differences (see _boxes): accurate where C and U nearly coincide; the
# denominator C + eps formed as (C - U) + U + eps, so that the computed ratio never exceeds 1 (the
# numerator and c_w c_h rounded apart gave (C - U)/C = 1 + 2^-23 in float32 for a point box 6e3 from
# a unit box: GIoU -1.0000001, below its range; found by the property tests)
penalty = B.enclose_minus_union / (B.enclose_minus_union + B.union + B.eps)
# differentiated as 1 - (U + eps)/(C + eps), with IoU + (U + eps)/(C + eps) differentiated as one by the
# hand-written rule of _boxes._giou_sum_derivative: both (C - U)/(C + eps) and (U + eps)/(C + eps)
# differentiated by the quotient rule give two terms of size 1/box that cancel, for boxes far apart
# (3.7e-3 of the largest component in float32) and for one box inside the other (1.1e-12 in float64);
# and IoU's and the penalty's gradients cancel each other at tied coordinates where C ~ U (1.3e-4)
penalty_diff = 1 - B.union_over_enclose  # (the penalty alone; the losses use the sum below)
diff_form = 2 - B.iou_plus_union_over_enclose  # 1 - (IoU - penalty)


def derive():
    checks = []
    # numeric_proof: sympy.simplify does not show the forms equal (it gave up after 2 minutes on 2026-12-02, 58% of
    # the time of `python -m derivations`); the forms are proved equal at 60 digits, as before
    kernel = B.box_kernel([(None, B.one_minus_iou + penalty, diff_form, "")], args=(B.eps,),
                          checks=checks,
                          numeric_proof=True)
    return B.box_spec(
        NAME, "GIoU loss", "L = 1 - GIoU = 1 - IoU + (C - U) / (C + eps), C the area of the smallest enclosing box.",
        ["H. Rezatofighi et al., Generalized Intersection over Union, arXiv:1902.09630"], [EPS],
        {p: kernel for p in ("f64", "f32")},
        B.ENCLOSING_STEPS + [
            Step("With $C$ its area, computed as $C - U$ from coordinate differences in the kernel (accurate where "
                 "$C$ and $U$ nearly coincide):", "C", "c_w\\, c_h"),
            Step("", "L", "1 - \\mathrm{IoU} + \\frac{C - U}{C + \\epsilon}")],
        [B.slide_plot("GIoU loss", note=NOTE_SLIDE)], "", "", checks, aspect={"note": NOTE_ASPECT},
        variants=[Variant("diou_giou_mixup", "DIoU, not GIoU", loss="diou_loss")],
        properties=Properties(value_range=(0.0, 2.0), strict_upper=True))
