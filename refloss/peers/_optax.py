"""optax.losses (JAX): huber_loss, squared_error, sigmoid_binary_cross_entropy, sigmoid_focal_loss."""
from __future__ import annotations

from . import PeerCheck, function_of, requirement


require = requirement("optax", "jax optax")


def _f(name, **kw):
    return function_of("optax.losses", name, **kw)


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("optax", function, loss, params, make, framework="jax", note=note, known=known)


def _hard_labels(at_logit_2):
    """The known text of optax's focal loss, with its figures at logit 2, label 1 (jax.grad, then optax's own
    finite difference and refloss: they differ with alpha)."""
    return ("the gradient with respect to hard labels (exactly 0 or 1) is wrong: log(1 - p_t) is a logsumexp "
            "with weights (1 - y, y), and JAX's logsumexp masks a zero weight, dropping its derivative "
            f"(logit 2, label 1: jax.grad gives {at_logit_2[0]}, optax's own finite difference and refloss "
            f"{at_logit_2[1]}); values, logit gradients and soft labels agree")


CHECKS = (
    _check("losses.squared_error", "mse", {}, _f("squared_error")),
    _check("losses.huber_loss(delta=1)", "huber", {"delta": 1.0}, _f("huber_loss", delta=1.0)),
    _check("losses.huber_loss(delta=2.5)", "huber", {"delta": 2.5}, _f("huber_loss", delta=2.5)),
    _check("losses.sigmoid_binary_cross_entropy", "bce_with_logits", {}, _f("sigmoid_binary_cross_entropy")),
    _check("losses.sigmoid_focal_loss(alpha=0.25)", "sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0},
           _f("sigmoid_focal_loss", alpha=0.25, gamma=2.0), known=_hard_labels(("-0.00710", "-0.01377"))),
    _check("losses.sigmoid_focal_loss (alpha=None)", "sigmoid_focal_loss", {"alpha": None, "gamma": 2.0},
           _f("sigmoid_focal_loss"), known=_hard_labels(("-0.0248", "-0.0515"))),
)
