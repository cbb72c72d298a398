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
from ._boxes import box_convert
from ._focal_eiou import FocalEIoULoss
from ._loss import Loss
from ._yolo import yolo_decode, yolo_encode, yolo_ignore_mask
from ._registry import ALL_LOSSES, BOX_LOSSES, CLASSIFICATION_LOSSES, ELEMENTWISE_LOSSES, METRICS

__version__ = "0.1.0"

l1 = Loss("l1")
mse = Loss("mse")
smooth_l1 = Loss("smooth_l1")
huber = Loss("huber")
balanced_l1 = Loss("balanced_l1")
focal_l1 = Loss("focal_l1")

iou_loss = Loss("iou_loss")
log_iou_loss = Loss("log_iou_loss")
giou_loss = Loss("giou_loss")
diou_loss = Loss("diou_loss")
ciou_loss = Loss("ciou_loss")
eiou_loss = Loss("eiou_loss")
focal_eiou_loss = FocalEIoULoss("focal_eiou_loss")
focal_l1_eiou_loss = Loss("focal_l1_eiou_loss")  # Focal-EIoU v1: Focal-L1 of the EIoU loss

iou = Loss("iou")
giou = Loss("giou")
diou = Loss("diou")
ciou = Loss("ciou")

bce_with_logits = Loss("bce_with_logits")
sigmoid_focal_loss = Loss("sigmoid_focal_loss")

yolov1_box_loss = Loss("yolov1_box_loss")

__all__ = ["Loss", "ALL_LOSSES", "ELEMENTWISE_LOSSES", "BOX_LOSSES", "METRICS", "CLASSIFICATION_LOSSES", "box_convert",
           "yolo_decode", "yolo_encode", "yolo_ignore_mask", *ALL_LOSSES]
