"""mmrotate 1.0.0rc1 (``mmrotate.models.losses``): the Gaussian losses of oriented boxes, KLD and GWD, as
``GDLoss`` (``gaussian_dist_loss.py``) and ``GDLoss_v1`` (``gaussian_dist_loss_v1.py``) compute them, on boxes
(cx, cy, w, h, angle in radians) turned into Gaussians by the module's own ``xy_wh_r_2_xy_sigma`` (covariance
R diag(w²/4, h²/4) Rᵀ), per pair (``reduction='none'``).

mmrotate 1.0.0rc1 asserts mmdet < 3.1 on import and its model packages import mmcv's compiled ops; the two loss
modules are plain torch. Where ``mmrotate.models.losses`` does not import, they are loaded on their own as
mmdetection's are (:func:`refloss.peers._mmdet.import_without_inits`): ``mmrotate``, ``mmrotate.models`` and
``mmrotate.models.losses`` as directories only, ``mmdet.models.losses.utils`` (``weighted_loss``) through
``refloss.peers._mmdet``. Install: ``pip install mmrotate==1.0.0rc1 mmdet==3.3.0 mmengine "mmcv-lite<2.2"``.

Only the configurations with a refloss equivalent are checked; the others (``GDLoss``'s defaults: √ of the
divergence before log1p, GWD normalised by (w_p h_p w_t h_t)^{1/4}; ``GDLoss_v1``'s KLD, twice the divergence)
are described in docs/peers.md.
"""
from __future__ import annotations

from functools import partial

from . import PeerCheck
from ._mmdet import import_without_inits
from ._mmdet import losses as mmdet_losses

_SKIPPED_INITS = ("mmrotate", "mmrotate.models", "mmrotate.models.losses")


def require():
    import importlib
    import importlib.util

    try:
        for name in ("torch", "mmengine", "mmdet"):
            importlib.import_module(name)
        if importlib.util.find_spec("mmrotate") is None:
            raise ImportError("mmrotate")
    except ImportError as e:
        raise ImportError('peer mmrotate: pip install torch mmrotate==1.0.0rc1 mmdet==3.3.0 mmengine '
                          '"mmcv-lite<2.2"') from e


def losses(name: str):
    """The module ``mmrotate.models.losses.<name>``, imported normally where mmrotate imports, else on its own
    (module docstring)."""
    def utils():  # gaussian_dist_loss imports weighted_loss from mmdet.models.losses.utils
        mmdet_losses("utils")

    return import_without_inits(f"mmrotate.models.losses.{name}", _SKIPPED_INITS, utils,
                                errors=(ImportError, AssertionError))


def _gaussian(module: str, name: str, **kw):
    """mmrotate.models.losses.<module>.<name>(xy_wh_r_2_xy_sigma(pred), xy_wh_r_2_xy_sigma(target), **kw) per
    pair, on boxes of any leading shape (flattened: the module's bmm wants (N, 2, 2))."""
    def make():
        m = losses(module)
        fn = getattr(m, name)
        extra = {"reduction": "none"} if module == "gaussian_dist_loss" else {}  # v1's functions have no reduction

        def loss(pred, target):
            shape = pred.shape[:-1]
            p, t = m.xy_wh_r_2_xy_sigma(pred.reshape(-1, 5)), m.xy_wh_r_2_xy_sigma(target.reshape(-1, 5))
            return fn(p, t, **kw, **extra).reshape(shape)

        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        loss.__qualname__ = f"mmrotate {module}.{name}({args})"
        return loss

    return make


_check = partial(PeerCheck, "mmrotate")  # (function, loss, params, make, note=..., known=...)


SIDES = ("xy_wh_r_2_xy_sigma clamps w and h to [1e-7, 1e7] before forming the covariance: boxes with a side outside "
         "differ (and that side has no gradient)")
KLD_MATRIX = (SIDES + "; elsewhere float64 agrees. The divergence is formed from the matrices (Σ_p⁻¹ by its adjugate "
              "over det Σ_p, ln det Σ_p − ln det Σ_t), which loses the digits of thin boxes in float32")
CLAMP_KLD = (SIDES + "; postprocess's sqrt clamps the divergence at 1e-7: nearly equal boxes (D < 1e-7) have no "
             "gradient and equal ones give 1 − 1/(τ + 3.2e-4), not 1 − 1/τ")
CLAMP_GWD = (SIDES + "; W² is formed from the matrices, tr Σ_p + tr Σ_t − 2 √(tr Σ_pΣ_t + 2 √(det Σ_p det Σ_t)), "
             "with det Σ_p det Σ_t floored at 1e-7 — so every pair with w_p h_p w_t h_t < 16·10^-3.5 = 5.1e-3 (sides "
             "below ~0.27, e.g. boxes in normalised coordinates) gets a wrong W — and W² itself floored at 1e-7: "
             "nearly equal boxes have no gradient")
CLAMP_GWD_V1 = (SIDES + "; W² from the matrices as GDLoss's (the inner square roots' arguments floored at 0), then "
                "floored at 1e-6: nearly equal boxes (W² < 1e-6) have no gradient and equal ones differ")

CHECKS = (
    _check("GDLoss kld_loss(fun='log1p', tau=1.0, sqrt=False)", "kld_loss", {"reverse": True},
           _gaussian("gaussian_dist_loss", "kld_loss", fun="log1p", tau=1.0, sqrt=False),
           note="KL(N_t ‖ N_p): the prediction's covariance inverted; the 'stable' configs", known=KLD_MATRIX),
    _check("GDLoss kld_loss(fun='sqrt', tau=2.0, sqrt=False)", "kld_loss", {"reverse": True, "fun": "sqrt", "tau": 2.0},
           _gaussian("gaussian_dist_loss", "kld_loss", fun="sqrt", tau=2.0, sqrt=False),
           note="the KLD authors' DOTA setting (√, τ = 2)", known=CLAMP_KLD),
    _check("GDLoss gwd_loss(fun='none', tau=1.0, normalize=False)", "gwd_loss", {"fun": "sqrt", "tau": 1.0},
           _gaussian("gaussian_dist_loss", "gwd_loss", fun="none", tau=1.0, normalize=False),
           note="1 − 1/(τ + W₂): GDLoss takes √ of W² itself, so fun='none' is the paper's √", known=CLAMP_GWD),
    _check("GDLoss_v1 gwd_loss(fun='sqrt', tau=2.0)", "gwd_loss", {"fun": "sqrt", "tau": 2.0},
           _gaussian("gaussian_dist_loss_v1", "gwd_loss", fun="sqrt", tau=2.0), note="GDLoss_v1's defaults",
           known=CLAMP_GWD_V1),
    _check("GDLoss_v1 gwd_loss(fun='log1p', tau=1.0)", "gwd_loss", {},
           _gaussian("gaussian_dist_loss_v1", "gwd_loss", fun="log1p", tau=1.0), known=CLAMP_GWD_V1),
)
