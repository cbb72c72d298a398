"""The GIoU metric (Rezatofighi et al., arXiv:1902.09630), with gradients."""
from . import _boxes as B
from .giou_loss import penalty
from .iou_loss import EPS
from refloss._derive.core import Step
from refloss._info import Properties

NAME = "giou"
NOTE_SLIDE = ("GIoU keeps a non-zero derivative where the boxes do not overlap: moving away enlarges the enclosing box "
              "$C$ and lowers GIoU, while IoU is flat at 0 there.")
NOTE_ASPECT = ("GIoU differs from IoU only where the boxes cross (height 0.5 with width > 1, height 2 with width < 1), "
               "where the enclosing box is larger than the union; elsewhere $C = U$ and GIoU = IoU (the dashed IoU lies "
               "on the height 0.5 curve up to width 1).")


def derive():
    checks = []
    # numeric_proof: sympy.simplify does not show the forms equal (it gave up after 2 minutes on 2026-12-02, 58% of
    # the time of `python -m derivations`); the forms are proved equal at 60 digits, as before
    kernel = B.box_kernel([(None, B.iou - penalty, B.iou_plus_union_over_enclose - 1, "")], args=(B.eps,), checks=checks,
                          numeric_proof=True)
    return B.box_spec(NAME, "GIoU (metric)", "GIoU = IoU - (C - U) / (C + eps).",
                      ["H. Rezatofighi et al., arXiv:1902.09630"], [EPS], {p: kernel for p in ("f64", "f32")},
                      B.ENCLOSING_STEPS + [Step("With $C = c_w c_h$ the area of the enclosing box:", "\\mathrm{GIoU}",
                            "\\mathrm{IoU} - \\frac{C - U}{C + \\epsilon}")],
                      [B.slide_plot("GIoU", reference="IoU", value_title="GIoU", note=NOTE_SLIDE)], "", "", checks,
                      kind="metric", aspect={"reference": "IoU", "value_title": "GIoU", "note": NOTE_ASPECT},
                      properties=Properties(value_range=(-1.0, 1.0)))
