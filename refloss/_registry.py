"""Which generated losses exist; one line per loss (its derivation is derivations/<name>.py)."""

ELEMENTWISE_LOSSES = ("l1", "mse", "smooth_l1", "huber", "balanced_l1", "focal_l1")
ALL_LOSSES = ELEMENTWISE_LOSSES
