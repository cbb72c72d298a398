"""Which generated losses exist; one line per loss (its derivation is derivations/<name>.py)."""

ELEMENTWISE_LOSSES = ("l1", "mse", "smooth_l1", "huber", "balanced_l1", "focal_l1")
BOX_LOSSES = ("iou_loss", "log_iou_loss", "giou_loss", "diou_loss", "ciou_loss", "eiou_loss", "focal_eiou_loss",
              "focal_l1_eiou_loss")
METRICS = ("iou", "giou", "diou", "ciou")
CLASSIFICATION_LOSSES = ("bce_with_logits", "sigmoid_focal_loss")
YOLO_LOSSES = ("yolov1_box_loss",)
ALL_LOSSES = ELEMENTWISE_LOSSES + BOX_LOSSES + METRICS + CLASSIFICATION_LOSSES + YOLO_LOSSES
XYWH_LOSSES = YOLO_LOSSES  # box inputs as (x, y, w, h) rather than xyxy
