"""torch.nn.functional: l1_loss, mse_loss, smooth_l1_loss, huber_loss, binary_cross_entropy_with_logits."""
from __future__ import annotations

from . import PeerCheck, function_of, requirement


require = requirement("torch", "torch")


def _f(name, **kw):
    return function_of("torch.nn.functional", name, reduction="none", **kw)


def _check(function, loss, params, name, **kw):
    return PeerCheck("torch", function, loss, params, _f(name, **kw))


CHECKS = (
    _check("F.l1_loss", "l1", {}, "l1_loss"),
    _check("F.mse_loss", "mse", {}, "mse_loss"),
    _check("F.smooth_l1_loss(beta=1)", "smooth_l1", {"beta": 1.0}, "smooth_l1_loss", beta=1.0),
    _check("F.smooth_l1_loss(beta=1/9)", "smooth_l1", {"beta": 1 / 9}, "smooth_l1_loss", beta=1 / 9),
    _check("F.smooth_l1_loss(beta=0)", "smooth_l1", {"beta": 0.0}, "smooth_l1_loss", beta=0.0),
    _check("F.huber_loss(delta=1)", "huber", {"delta": 1.0}, "huber_loss", delta=1.0),
    _check("F.huber_loss(delta=2.5)", "huber", {"delta": 2.5}, "huber_loss", delta=2.5),
    _check("F.binary_cross_entropy_with_logits", "bce_with_logits", {}, "binary_cross_entropy_with_logits"),
)
