"""The families of losses: for each, the battery ``refloss verify`` runs, how a loss of the
family is evaluated and its oracle called, and the one error measure that applies.

Every exact or computed result is a row of outputs per point: the value(s) first
(``LossInfo.value_width`` of them), then the gradient with respect to every array input in
order, coordinate by coordinate (for ``yolo_decode``: the four box coordinates, then the
vector-Jacobian product).  Imports no oracle (mpmath) unless reference values are computed.
"""
from __future__ import annotations

import importlib

import numpy as np

from . import _fd, _measures
from . import box_cases, cases, logit_cases, rotated_cases, yolo_cases


def _flatten(result) -> list:
    out = []
    for r in result:
        if isinstance(r, (tuple, list)):
            out.extend(r)
        else:
            out.append(r)
    return out


def oracle_function(dotted: str):
    """``"module.function"`` of :mod:`refloss.oracle` (imports mpmath)."""
    module, _, fn = dotted.rpartition(".")
    return getattr(importlib.import_module(f"refloss.oracle.{module}"), fn)


class Family:
    """The element-wise family; the others change what differs."""

    name = "elementwise"
    measure = "ulp"  # errors in ULPs ("ulp") or the box measure ("abs/rel")
    finite_differences = True  # verify compares float64 gradients with differences of the kernel's values
    excluded = {}  # dtype -> {group: why the group is not measured there}

    def battery(self, loss, params: dict, dtype, n_random: int):
        """(group name per point, input arrays) in ``dtype``."""
        names, pred, target = cases.elementwise_battery(dtype, loss.info.kink_points(self._floats(loss, params)),
                                                        n_random)
        return names, (pred, target)

    @staticmethod
    def _floats(loss, params) -> dict:
        from ._validate import param_floats

        values = loss._param_values(params)
        return dict(zip((p.name for p in loss.params), param_floats(loss.params, values)))

    def call(self, loss, inputs, params, dtype, backend) -> np.ndarray:
        """The loss's values and gradients, (n, outputs) as float64."""
        value, grads = loss.value_and_grad(*inputs, dtype=dtype, device=backend, **params)
        cols = [np.asarray(value, np.float64).reshape(len(inputs[0]), -1)]
        cols += [np.asarray(g, np.float64).reshape(len(inputs[0]), -1) for g in grads]
        return np.concatenate(cols, axis=1)

    def exact(self, oracle, floor, point: tuple, params: dict, dtype) -> tuple:
        """(exact outputs as mpf, their floors or None) at one point; ``point`` holds each input's
        element (a float, or a tuple for an input with a last axis)."""
        values = _flatten(oracle(*point, **params))
        floors = None
        if floor is not None:  # one per gradient output: the value(s) have none
            scales = [float(s) for s in floor(*point, dtype, **params)]
            floors = [0.0] * (len(values) - len(scales)) + scales
        return values, floors

    def errors(self, loss, got, hi, lo, floor, inputs, dtype) -> tuple:
        """Per point: (error of the value(s), error of the gradients), in the family's measure."""
        errs = _measures.ulp_error(got, hi, lo, dtype, floor)
        w = loss.info.value_width
        return errs[:, :w].max(axis=1), errs[:, w:].max(axis=1, initial=0.0)

    def fd_error(self, loss, params, names, inputs, got) -> float | None:
        """Largest relative difference of the float64 gradients from extrapolated central
        differences of the kernel's own value, away from kinks (None: not checked)."""
        if not self.finite_differences:
            return None
        pred, target = inputs
        x = pred - target
        kinks = loss.info.kink_points(self._floats(loss, params))
        mask = np.array([g not in cases.KINK_GROUPS for g in names]) & (np.abs(x) > 0)
        mask &= ~cases.near_kink(x, kinks + (0.0,), rel=1e-2)
        # the step is 1e-3 |x|; rounding pred +- h perturbs the step by ~eps*|pred|, a relative
        # error eps*|pred|/h in the difference quotient: keep points where that is far below 1e-10
        scale = np.maximum(np.abs(pred), np.abs(target))
        mask &= 2.2e-16 * scale / (1e-3 * np.abs(x) + 1e-300) <= 1e-10
        sub = (pred[mask], target[mask])
        worst = 0.0
        for k in (0, 1):
            fd, _ = _fd.gradient(lambda p, t: loss(p, t, **params), sub, k, 1e-3 * np.abs(x[mask]))
            g = got[mask, 1 + k]
            s = np.maximum(np.abs(g), np.abs(fd))
            rel = np.where(s > 0, np.abs(fd - g) / np.where(s > 0, s, 1), 0.0)
            worst = max(worst, float(rel.max(initial=0.0)))
        return worst

    def describe(self, loss, names, inputs, i: int) -> str:
        return f"{names[i]}: " + ", ".join(f"{n}={a[i].tolist()!r}" for n, a in zip(loss.inputs, inputs))

    def reference(self, loss):
        """What ``check_loss`` and the golden vectors compare with: the loss itself."""
        return loss


class Classification(Family):
    name = "classification"
    finite_differences = False
    cases = staticmethod(logit_cases.logits_cases)  # (dtype, n_random) -> (names, logits, targets)

    def battery(self, loss, params, dtype, n_random):
        names, x, y = self.cases(dtype, n_random)
        return names, (x, y)


class Softmax(Classification):
    """Softmax cross-entropy: rows of C classes (the last axis), values and gradients per row."""

    name = "softmax"
    cases = staticmethod(logit_cases.softmax_cases)


class Distribution(Classification):
    """Distribution focal loss: rows of bins (the last axis) and one continuous target per row."""

    name = "distribution"
    cases = staticmethod(logit_cases.dfl_cases)


class Boxes(Family):
    name = "box"
    finite_differences = False
    measure = "abs/rel"
    # float32 cannot hold these: coordinates spanning 1e10 at box sizes 1e5 make the rho^2/c^2
    # gradient a difference of terms 1e4 times larger than itself (float64 keeps 12 digits there)
    excluded = {"float32": {"far_apart": "float32 cancellation in the rho^2/c^2 gradient (coordinates ~1e10, "
                                         "sizes ~1e5)"}}

    def battery(self, loss, params, dtype, n_random):
        names, pred, target = box_cases.box_battery(dtype, n_random=n_random // 2)
        return names, (pred, target)

    def errors(self, loss, got, hi, lo, floor, inputs, dtype):
        return _measures.box_errors(got[:, 0], got[:, 1:], hi[:, 0], hi[:, 1:], *inputs)

class Rotated(Family):
    """Rotated boxes (cx, cy, w, h, angle): the box measure, with 1/(the larger of the sides and the
    centre offset) as the gradient floor."""

    name = "rotated"
    finite_differences = False
    measure = "abs/rel"

    def battery(self, loss, params, dtype, n_random):
        names, pred, target = rotated_cases.rotated_battery(dtype, n_random=n_random // 2)
        return names, (pred, target)

    def errors(self, loss, got, hi, lo, floor, inputs, dtype):
        return _measures.box_errors(got[:, 0], got[:, 1:], hi[:, 0], hi[:, 1:], *inputs,
                                    size=_measures.rotated_extent(*inputs))


class Yolo(Family):
    """YOLO box terms on (x, y, w, h) boxes."""

    name = "yolo"
    finite_differences = False

    def battery(self, loss, params, dtype, n_random):
        names, p, t = yolo_cases.xywh_cases(dtype, n_random)
        return names, (p, t)

class Coding(Family):
    """``yolo_decode``: the boxes are the values, the VJP with a random cotangent the gradient."""

    name = "coding"
    finite_differences = False

    def battery(self, loss, params, dtype, n_random):
        names, t, anchors, grid, ct = yolo_cases.decode_cases(dtype, n_random)
        return names, (t, anchors, grid, ct)

    def call(self, loss, inputs, params, dtype, backend):
        from ._yolo import yolo_decode

        t, anchors, grid, ct = inputs
        boxes, d_t = yolo_decode.value_and_grad(t, anchors, grid, cotangent=ct, dtype=dtype, device=backend, **params)
        return np.concatenate([np.asarray(boxes, np.float64), np.asarray(d_t, np.float64)], axis=1)

    def describe(self, loss, names, inputs, i):
        return f"{names[i]}: " + ", ".join(f"{n}={a[i].tolist()!r}" for n, a in
                                           zip(("t", "anchors", "grid", "cotangent"), inputs))

    def reference(self, loss):
        from ._yolo import DecodeReference

        return DecodeReference(loss.info)


FAMILIES = {f.name: f for f in (Family(), Boxes(), Classification(), Softmax(), Distribution(), Yolo(), Coding(),
                                 Rotated())}
