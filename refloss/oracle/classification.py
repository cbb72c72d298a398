"""Oracle for the classification losses on logits (mpmath, 50 digits), from the papers.

Each function takes a logit x and a (soft) target y in [0, 1] as floats (converted
exactly) and returns ``(value, d/dlogit, d/dtarget)`` as mpf.  Gradients are written
out by hand from the definitions (no automatic differentiation).
"""
from __future__ import annotations

from mpmath import mp

from .elementwise import DPS
from .rounding import exact_mpf


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _bce(x, y):
    """(CE, dCE/dx, dCE/dy) of CE = -[y ln p + (1 - y) ln(1 - p)], p = sigmoid(x)."""
    # ln p = -ln(1 + e^-x), ln(1 - p) = -ln(1 + e^x), exact at any magnitude in mpmath
    ce = y * mp.log1p(mp.exp(-x)) + (1 - y) * mp.log1p(mp.exp(x))
    # sigma(x) - y written as (1 - y) sigma(x) - y sigma(-x): the same number, but each term is
    # exact at 50 digits even when sigma(x) rounds to 1 there (x ~ 180 gives a gradient ~1e-78)
    return ce, (1 - y) * _sigmoid(x) - y * _sigmoid(-x), -x


def bce_with_logits(logit, target):
    """Binary cross-entropy of sigmoid(x) against y (PyTorch binary_cross_entropy_with_logits)."""
    with mp.workdps(DPS):
        x, y = exact_mpf(logit), exact_mpf(target)
        return _bce(x, y)


def sigmoid_focal_loss(logit, target, alpha=0.25, gamma=2.0):
    """Focal loss (Lin et al., arXiv 1708.02002), soft targets as torchvision:
    alpha_t (1 - p_t)^gamma CE with p_t = p y + (1 - p)(1 - y),
    alpha_t = alpha y + (1 - alpha)(1 - y); alpha None or negative: alpha_t = 1.

    d/dtarget is a sum of three terms that can cancel by far more than 50 digits (alpha 0.25,
    gamma 1, target 1: their leading parts cancel exactly and the result is e^-|x| of them): it is
    evaluated again with the digits its terms lost added, until 40 remain (up to 2,000 digits)."""
    dps = DPS
    while True:
        with mp.workdps(dps):
            value, d_x, d_y, terms = _focal(exact_mpf(logit), exact_mpf(target), alpha, gamma)
            lost = int(mp.log10(terms / abs(d_y))) if d_y != 0 and terms != 0 else (0 if terms == 0 else dps)
        if dps - lost >= 40 or dps >= 2000:
            return value, d_x, d_y
        dps = min(2000, dps + lost + 20)


def _focal(x, y, alpha, gamma):
    """(value, d/dx, d/dy, the largest of d/dy's terms) at the working precision."""
    g = exact_mpf(gamma)
    p, q = _sigmoid(x), _sigmoid(-x)
    ce, dce_dx, dce_dy = _bce(x, y)
    m = y * q + (1 - y) * p  # 1 - p_t
    dm_dx = p * q * (1 - 2 * y)  # d/dx [y q + (1-y) p], dp/dx = p q, dq/dx = -p q
    dm_dy = -mp.tanh(x / 2)  # q - p, without the cancellation of the difference at small x
    mg = m**g
    dmg = g * m ** (g - 1) if g != 0 else mp.zero
    if alpha is None or alpha < 0:
        at, dat_dy = mp.one, mp.zero
    else:
        a = exact_mpf(alpha)
        at, dat_dy = a * y + (1 - a) * (1 - y), 2 * a - 1
    value = at * mg * ce
    d_x = at * (dmg * dm_dx * ce + mg * dce_dx)
    terms = (dat_dy * mg * ce, at * dmg * dm_dy * ce, at * mg * dce_dy)
    return value, d_x, sum(terms), max(abs(t) for t in terms)


def _scales(x, y, gamma, alpha):
    """(scale_dx, scale_dy) of the focal loss (gamma None: plain BCE) at mpf x, y."""
    p, q = _sigmoid(x), _sigmoid(-x)
    dce_scale = (1 - y) * p + y * q
    if gamma is None:
        return dce_scale, abs(x)
    g = exact_mpf(gamma)
    ce = y * mp.log1p(mp.exp(-x)) + (1 - y) * mp.log1p(mp.exp(x))
    m = y * q + (1 - y) * p
    mg = m**g
    dmg = g * m ** (g - 1) if g != 0 and m > 0 else mp.zero
    at = mp.one if alpha is None or alpha < 0 else exact_mpf(alpha) * y + (1 - exact_mpf(alpha)) * (1 - y)
    dat = mp.zero if alpha is None or alpha < 0 else abs(2 * exact_mpf(alpha) - 1)
    sx = at * (dmg * p * q * abs(1 - 2 * y) * ce + mg * dce_scale)
    sy = dat * mg * ce + at * (dmg * abs(mp.tanh(x / 2)) * ce + mg * abs(x))
    return sx, sy


def bce_gradient_scale(logit, target, dtype):
    """Magnitudes of the terms each gradient of :func:`bce_with_logits` is a signed sum of,
    (scale_dx, scale_dy): where the terms cancel (a soft target near the optimum sigma(x) = y),
    no float evaluation can match the result relative to itself, only relative to this scale."""
    with mp.workdps(DPS):
        return _scales(exact_mpf(logit), exact_mpf(target), None, None)


def focal_gradient_scale(logit, target, dtype, alpha=0.25, gamma=2.0):
    """As :func:`bce_gradient_scale`, for :func:`sigmoid_focal_loss`; inf (the point is not
    measured) at the documented limit gamma < 1 where 1 - p_t underflows in ``dtype`` (its
    gamma - 1 < 0 power is then taken as 0)."""
    import numpy as np

    with mp.workdps(DPS):
        x, y = exact_mpf(logit), exact_mpf(target)
        if gamma < 1 and y / (1 + mp.exp(x)) + (1 - y) / (1 + mp.exp(-x)) < float(np.finfo(dtype).tiny):
            return mp.inf, mp.inf
        return _scales(x, y, gamma, alpha)


def _softmax_ce(logits, targets, label_smoothing=0.0):
    """(-log softmax_j per class, softmax_j per class, Y, targets) at 50 digits of a row of logits
    z and targets y: -log softmax_j = log(1 + sum_{i != j} e^(z_i - z_j)), which keeps every digit
    of a tiny -log softmax_j (lse(z) - z_j formed as a difference would cancel them)."""
    z = [exact_mpf(v) for v in logits]
    e = exact_mpf(label_smoothing)  # torch: y -> (1 - e) y + e / C
    y = [(1 - e) * exact_mpf(v) + e / len(z) for v in targets]
    others = [mp.fsum(mp.exp(zi - zj) for i, zi in enumerate(z) if i != j) for j, zj in enumerate(z)]
    return [mp.log1p(o) for o in others], [1 / (1 + o) for o in others], mp.fsum(y), y


def _flush(v):
    """0 for a magnitude below 2^-1100 (e.g. e^(-2e30) from logits 1e30 apart), which rounds to 0
    in float64 and float32 alike but whose exponent is too large for the rounding code."""
    return mp.zero if abs(v) < mp.mpf(2) ** -1100 else v


def softmax_cross_entropy(logits, targets, label_smoothing=0.0):
    """Softmax cross-entropy of a row: L = -sum_j y_j log softmax_j(z), softmax_j = e^{z_j} / sum_i e^{z_i}
    (PyTorch cross_entropy with probability targets; SSD's confidence loss, arXiv 1512.02325).
    Returns (L, (dL/dz_j)_j, (dL/dy_j)_j): dL/dz_j = sum_i y_i softmax_j - y_j (from
    d log softmax_i / dz_j = [i = j] - softmax_j), dL/dy_j = -log softmax_j; with label_smoothing e
    (torch's), y_j is (1 - e) y_j + e / C throughout and dL/dy_j has the factor 1 - e."""
    with mp.workdps(DPS):
        neg_log_p, p, total, y = _softmax_ce(logits, targets, label_smoothing)
        keep = 1 - exact_mpf(label_smoothing)
        value = mp.fsum(yj * nl for yj, nl in zip(y, neg_log_p))
        return (_flush(value), tuple(_flush(total * pj - yj) for pj, yj in zip(p, y)),
                tuple(_flush(keep * v) for v in neg_log_p))


def softmax_gradient_scale(logits, targets, dtype, label_smoothing=0.0):
    """Per gradient output, the magnitude of the terms it is a difference of: max(Y softmax_j, y_j)
    for dL/dz_j (cancelling where the prediction matches the target), 0 for dL/dy_j (a sum of
    non-negative terms, measured relative to itself)."""
    with mp.workdps(DPS):
        _, p, total, y = _softmax_ce(logits, targets, label_smoothing)
        return tuple(_flush(max(total * pj, yj)) for pj, yj in zip(p, y)) + (mp.zero,) * len(y)


# ------------------------------------------------------------------ issue 15: QFL and VFL (arXiv 2006.04388,
# arXiv 2008.13367), written from the papers' formulas with their derivatives by hand


def _qfl_parts(x, y, b):
    """(L, dL/dx, dL/dy, D, CE) of the Quality Focal Loss -|y - sigma|^b ((1-y) ln(1-sigma) + y ln sigma)."""
    s, sn = _sigmoid(x), _sigmoid(-x)
    d = y * sn - (1 - y) * s  # y - sigma, each term exact at 50 digits (no cancellation at y = 0, 1)
    ce, dce_dx, dce_dy = _bce(x, y)
    ad = abs(d)
    w = ad**b if ad > 0 or b > 0 else mp.one
    # d|D|^b/dD = b |D|^(b-1) sign(D): 0 at D = 0 (the kernels' convention where b < 1 makes it infinite)
    dw = b * ad ** (b - 1) * mp.sign(d) if ad > 0 and b != 0 else mp.zero
    dd_dx = -s * sn  # d(y - sigma)/dx
    return w * ce, dw * dd_dx * ce + w * dce_dx, dw * ce + w * dce_dy, d, ce


def qfl_loss(logit, target, beta=2.0):
    """Quality Focal Loss (Li et al., Generalized Focal Loss, arXiv 2006.04388, eq. 5):
    QFL(sigma) = -|y - sigma|^beta ((1 - y) log(1 - sigma) + y log(sigma)), sigma = sigmoid(x).
    dL/dx = beta |D|^(beta-1) sign(D) (-sigma (1 - sigma)) CE + |D|^beta (sigma - y),
    dL/dy = beta |D|^(beta-1) sign(D) CE - x |D|^beta, with D = y - sigma and CE the bracket's negative."""
    with mp.workdps(DPS):
        x, y, b = exact_mpf(logit), exact_mpf(target), exact_mpf(beta)
        return _qfl_parts(x, y, b)[:3]


def qfl_gradient_scale(logit, target, dtype, beta=2.0):
    """Magnitudes of what the QFL gradients are formed from: y - sigma is a difference of the
    non-negative terms y sigma(-x) and (1 - y) sigma(x) (near the optimum sigma = y it cancels in
    any evaluation from the inputs), so the gradients are measured against their value with |D|
    replaced by the sum T of those terms (and the cross-entropy's own derivatives by their
    terms' magnitudes, as for BCE).  The value too: D's error is about u T (u the dtype's unit
    roundoff), and the value's is beta |D|^(beta-1) u T CE to first order and (u T)^beta CE where |D|
    is below u T (a soft target within an ulp of sigma(x): the first order alone, 0 at D = 0, then
    asks for more than the inputs hold), so it is measured against beta T (|D| + u T)^(beta-1) CE.
    For 0 < beta <= 1 the gradients are not measured (inf) where |D| <= 4 u T: there D's sign is not
    determined by an evaluation from a rounded sigma, and beta |D|^(beta-1) sign(D) jumps (beta = 1) or
    is unbounded (beta < 1) at D = 0 (the documented limit of the loss's accuracy notes).  Except
    float32 at beta = 1: the float32 kernel forms D in float64 from the float32 inputs, whose sign is
    then exact unless |D| < ~2^-52 T (for a float32 target and logit, a chance of ~2^-28 a point even
    where the target is the float32 nearest sigma(x)), and the jump is bounded: measured there."""
    import numpy as np

    with mp.workdps(DPS):
        x, y, b = exact_mpf(logit), exact_mpf(target), exact_mpf(beta)
        s, sn = _sigmoid(x), _sigmoid(-x)
        t = y * sn + (1 - y) * s
        u = exact_mpf(float(np.finfo(dtype).eps) / 2)
        d = abs(y * sn - (1 - y) * s)
        ad = d + u * t
        ce = _bce(x, y)[0]
        w = t**b
        dw = b * t ** (b - 1) if b != 0 else mp.zero
        value = b * t * ad ** (b - 1) * ce if b != 0 and ad > 0 else mp.zero
        if 0 < b <= 1 and d <= 4 * u * t and not (b == 1 and np.dtype(dtype) == np.float32):
            return value, mp.inf, mp.inf
        return value, dw * s * sn * ce + w * t, dw * ce + w * abs(x)


def varifocal_loss(logit, target, alpha=0.75, gamma=2.0, detach_weight=False, iou_weighted=True):
    """Varifocal Loss (Zhang et al., VarifocalNet, arXiv 2008.13367, eq. 2), p = sigmoid(x):
    q > 0: -q (q log p + (1 - q) log(1 - p));  q = 0: -alpha p^gamma log(1 - p).
    Gradients of the formula (detach_weight=False) or with the weight (q, alpha p^gamma) held
    constant (detach_weight=True: the weight times the cross-entropy's gradient).  At q = 0,
    dL/dq is the weight times dCE/dq = -x (the peers' BCE(x, q) * weight).  iou_weighted=False
    (mmdetection's option): the positives' weight is 1, L = CE(x, q)."""
    with mp.workdps(DPS):
        x, q = exact_mpf(logit), exact_mpf(target)
        a, g = exact_mpf(alpha), exact_mpf(gamma)
        p = _sigmoid(x)
        ce, dce_dx, dce_dy = _bce(x, q)
        if q > 0:
            if not iou_weighted:
                return ce, dce_dx, dce_dy
            value = q * ce
            return value, q * dce_dx, q * dce_dy + (0 if detach_weight else ce)
        w = a * p**g
        log1mp = -mp.log1p(mp.exp(x))  # log(1 - p), exact at any magnitude
        value = -w * log1mp
        # d/dx of alpha p^g: alpha g p^(g-1) p (1 - p) = g w (1 - p)
        dw_dx = g * w * _sigmoid(-x)
        d_x = w * p + (0 if detach_weight else dw_dx * (-log1mp))
        return value, d_x, w * -x


def varifocal_gradient_scale(logit, target, dtype, alpha=0.75, gamma=2.0, detach_weight=False, iou_weighted=True):
    """Magnitudes of the terms the VFL gradients are signed sums of: q (sigma - q) and CE - q x on
    positives (both cancel near the optimum sigma = q); the negatives' gradients have no cancellation."""
    with mp.workdps(DPS):
        x, q = exact_mpf(logit), exact_mpf(target)
        if q == 0:
            return mp.zero, mp.zero
        ce = _bce(x, q)[0]
        if not iou_weighted:
            return (1 - q) * _sigmoid(x) + q * _sigmoid(-x), abs(x)
        return q * ((1 - q) * _sigmoid(x) + q * _sigmoid(-x)), q * abs(x) + (0 if detach_weight else ce)


def dfl_loss(logits, target, clamp=None):
    """Distribution Focal Loss (Li et al., Generalized Focal Loss, arXiv 2006.04388, eq. 6) of a row of
    logits z over the bins 0..n-1 and a continuous target y in [0, n - 1]:
    DFL = -((y_r - y) log S_{y_l} + (y - y_l) log S_{y_r}), S = softmax(z), y_l = floor(y), y_r = y_l + 1;
    at y = n - 1 the bin y_r = n does not exist and its weight y - y_l is 0.  clamp=c: y is first
    clamped to at most n - 1 - c (ultralytics, D-FINE).
    Returns (L, (dL/dz_k)_k, dL/dy): dL/dz_k = S_k - w_k (w the two weights at their bins);
    dL/dy = log S_{y_l} - log S_{y_r} on the piece [y_l, y_l + 1] (the right derivative at an
    integer y, the left one at y = n - 1), 0 where the clamp is active or at its bounds (torch's
    clamp) or for a single bin."""
    with mp.workdps(DPS):
        nb = len(logits)
        y = exact_mpf(target)
        active = False
        if clamp is not None:
            hi = (nb - 1) - exact_mpf(clamp)
            active = y >= hi or y <= 0  # torch 2.14.1's clamp: no gradient at its bounds either
            y = min(max(y, mp.zero), hi)
        neg_log_p, p, _, _ = _softmax_ce(logits, [0.0] * nb)
        yl = int(mp.floor(y))
        w = [mp.zero] * nb
        w[yl] += (yl + 1) - y
        if yl + 1 < nb:
            w[yl + 1] += y - yl
        value = sum(wk * nl for wk, nl in zip(w, neg_log_p))
        lo = min(yl, nb - 2)  # the piece [lo, lo + 1]: the left one at y = n - 1
        d_y = mp.zero if nb < 2 or active else neg_log_p[lo + 1] - neg_log_p[lo]
        return _flush(value), [_flush(pk - wk) for pk, wk in zip(p, w)], d_y


def dfl_gradient_scale(logits, target, dtype, clamp=None):
    """Per gradient output the magnitude of the terms it is a difference of: max(S_k, w_k) for
    dL/dz_k (they cancel where the distribution matches the target's two weights); dL/dy has none."""
    with mp.workdps(DPS):
        _, grads, _ = dfl_loss(logits, target, clamp)
        _, p, _, _ = _softmax_ce(logits, [0.0] * len(logits))
        return [_flush(max(pk, abs(pk - g))) for pk, g in zip(p, grads)] + [mp.zero]


def dfl_decode(logits, cotangent=1.0):
    """The expectation sum_i i S_i of S = softmax(z) over the bins 0..n-1 (Generalized Focal Loss,
    arXiv 2006.04388, sec. 3.3), and its vector-Jacobian product c S_j (j - sum_i i S_i), from
    dS_i/dz_j = S_i ([i = j] - S_j).  j - y_hat is summed as sum_i S_i (j - i), not formed from y_hat: at the
    peak bin of a row whose other bins are e^-200 below it, j - y_hat ~ 1e-87 is below 50 digits of y_hat (the
    oracle gave 0 there)."""
    with mp.workdps(DPS):
        _, p, _, _ = _softmax_ce(logits, [0.0] * len(logits))
        value = mp.fsum(i * pi for i, pi in enumerate(p))
        c = exact_mpf(cotangent)
        return value, [c * pj * mp.fsum(pi * (j - i) for i, pi in enumerate(p)) for j, pj in enumerate(p)]
