"""SymPy derivations of the refloss losses; ``python -m derivations`` regenerates
``refloss/_generated/`` and ``docs/derivations/`` from them."""

# One module per loss; adding a loss = one file here + one line in this tuple.
LOSSES = ("l1", "mse", "smooth_l1", "huber", "balanced_l1", "focal_l1",
          "iou", "iou_loss", "log_iou_loss", "giou", "giou_loss", "diou", "diou_loss", "ciou", "ciou_loss",
          "eiou_loss", "focal_eiou_loss", "focal_l1_eiou_loss",
          "bce_with_logits", "sigmoid_focal_loss", "yolo_decode",
          "yolov1_box_loss")
