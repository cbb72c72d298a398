"""The CIoU metric 1 - CIoU loss (Zheng et al., arXiv:1911.08287), with gradients."""
from . import _boxes as B
from . import ciou_loss as C
from refloss._info import Properties

NAME = "ciou"


def derive():
    checks = []
    k = C.kernel(-1, checks)
    return B.box_spec(NAME, "CIoU (metric)", "CIoU = IoU - rho^2/(c^2 + eps) - alpha*v (see ciou_loss).",
                      ["Z. Zheng et al., arXiv:1911.08287"], C.PARAMS, {p: k for p in ("f64", "f32")},
                      C.doc_steps(metric=True),
                      [B.slide_plot("CIoU", reference="IoU", value_title="CIoU", note=C.slide_note(True))],
                      C.CONVENTIONS, "", checks, kind="metric", variants=C.VARIANTS,
                      aspect={"reference": "IoU", "value_title": "CIoU", "note": C.aspect_note(True)},
                      properties=Properties(value_range=(-2.0, 1.0),
                                            true_derivative={"alpha_grad": True, "darknet": False}, gate="alpha_gate"))
