"""The public loss objects: broadcasting, validation, reductions, dispatch to kernels.

A loss ``L`` is called as ``L(pred, target, **params, reduction="none", dtype=None,
device="cpu", validate=True)`` and ``L.value_and_grad(...)`` returns
``(value, (d_pred, d_target))``: each gradient has the shape of its input and is the
gradient of the reduced value (for ``"none"``, of the sum: each element's own
gradient, summed over the axes that input was broadcast along).
"""
from __future__ import annotations

import importlib
from functools import lru_cache

import numpy as np

from . import _cpu
from ._registry import XYWH_LOSSES
from ._validate import (REDUCTIONS, as_real_array, broadcast_shape, check_input, check_reduction, param_floats,
                        precision_of)

_OPTIONS = ("reduction", "dtype", "device", "validate")
_META_ATTRS = ("_meta", "_inputs", "_widths", "_params", "_defaults", "_default_values", "_input_rules", "_layouts")


def _sum_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient over the axes its input was broadcast along."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


_COORDINATES = {"xyxy": " (x1, y1, x2, y2)", "xywh": " (x, y, w, h)"}


def _lead_shape(names, widths, arrays, layouts=None) -> tuple:
    """The broadcast shape of the elements (for boxes: of all but the last axis of size 4).
    ``layouts`` (per input "xyxy", "xywh" or None) names the coordinates in errors."""
    first = tuple(arrays[0].shape)  # (a tuple: the CUDA simulator's shapes take no negative index)
    if widths[0] == 1 and all(w == 1 and a.shape == first for w, a in zip(widths, arrays)):
        return first  # the common case, without building anything
    shapes = {}
    for k, (n, w, a) in enumerate(zip(names, widths, arrays)):
        shape = tuple(a.shape)
        if w == 1:
            shapes[n] = shape
        elif not shape or shape[-1] != w:
            coords = _COORDINATES.get(layouts[k], "") if layouts else ""
            raise ValueError(f"{n}: last dimension must be {w}{coords}, got shape {shape}")
        else:
            shapes[n] = shape[:-1]
    first = next(iter(shapes.values()))
    for v in shapes.values():
        if v != first:
            return broadcast_shape(shapes)
    return first


def _flat(a: np.ndarray, shape: tuple, width: int = 1) -> np.ndarray:
    """``a`` broadcast to ``shape`` (+ (width,) for boxes) as a C-contiguous (n,) or
    (n, width) array, a view when possible."""
    full = shape if width == 1 else shape + (width,)
    if a.shape != full:
        a = np.broadcast_to(a, full)
    if width == 1:
        return a if a.ndim == 1 and a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
    return a if a.ndim == 2 and a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1, width)


def _reduce(values: np.ndarray, reduction: str):
    if reduction == "none":
        return values
    total = values.sum(dtype=values.dtype)
    if reduction == "sum":
        return total
    return total / values.dtype.type(values.size) if values.size else values.dtype.type(np.nan)


def _docstring(meta) -> str:
    lines = [f"{meta.TITLE}.", "", meta.FORMULA, "", "Parameters", "----------",
             "pred, target : array_like", "    Real arrays of broadcastable shapes."]
    for p in meta.PARAMS:
        kind = {"bool": "bool", "optional": "float or None"}.get(p.kind, "float")
        lines += [f"{p.name} : {kind}, default {p.default!r}", f"    {p.doc}; ``{p.rule}``."]
    lines += [
        'reduction : {"none", "mean", "sum"}, default "none"',
        "dtype : numpy.float64 (default) or numpy.float32",
        "    Precision of the computation and of the results.",
        'device : {"cpu", "cuda"}, default "cpu"',
        "validate : bool, default True",
        "    Check inputs for finiteness (parameters are always checked).",
        "", "Conventions", "-----------", meta.CONVENTIONS,
        "", "``.value_and_grad(...)`` takes the same arguments and returns "
        "``(value, (d_pred, d_target))``.",
        "", "References", "----------", *meta.REFERENCES,
        "", f"Derivation: docs/derivations/{meta.NAME}.md",
    ]
    return "\n".join(lines)


class Loss:
    """A generated loss: callable for the value, ``.value_and_grad`` for both."""

    def __init__(self, name: str):
        # Nothing is imported here: the generated module (metadata, constants, scalar
        # kernels) loads on first use, so `import refloss` stays light.
        self._name = name
        self.__name__ = self.__qualname__ = name
        self.__module__ = "refloss"
        self._kernel_args = lru_cache(maxsize=1024)(self._kernel_args_uncached)
        self.value_and_grad = _ValueAndGrad(self)

    def __getattr__(self, attr):
        """Load the generated metadata on first access of any of its attributes."""
        if attr in _META_ATTRS:
            self._load_meta()
            return self.__dict__[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def _load_meta(self) -> None:
        meta = importlib.import_module(f"refloss._generated.{self._name}")
        d = self.__dict__
        d["_meta"] = meta
        d["_inputs"] = meta.INPUTS
        d["_widths"] = meta.WIDTHS
        d["_params"] = meta.PARAMS
        d["_defaults"] = {p.name: p.default for p in meta.PARAMS}
        d["_default_values"] = tuple(d["_defaults"].values())
        layout = "xywh" if self._name in XYWH_LOSSES else "xyxy"
        # per input: (box layout "xyxy", "xywh" or None, (lo, hi) range or None)
        d["_input_rules"] = tuple((layout if w == 4 else None, meta.INPUT_RANGES.get(n))
                                  for n, w in zip(meta.INPUTS, meta.WIDTHS))
        d["_layouts"] = tuple(layout for layout, _ in d["_input_rules"])

    @property
    def __doc__(self):  # noqa: D105 - built from the generated metadata on demand
        return _docstring(self._meta)

    @property
    def __signature__(self):
        import inspect

        P = inspect.Parameter
        return inspect.Signature(
            [P(n, P.POSITIONAL_OR_KEYWORD) for n in self._inputs]
            + [P(p.name, P.KEYWORD_ONLY, default=p.default) for p in self._params]
            + [P("reduction", P.KEYWORD_ONLY, default="none"), P("dtype", P.KEYWORD_ONLY, default=None),
               P("device", P.KEYWORD_ONLY, default="cpu"), P("validate", P.KEYWORD_ONLY, default=True)]
        )

    def __repr__(self) -> str:
        return f"refloss.{self._name}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def inputs(self) -> tuple:
        return self._inputs

    @property
    def params(self) -> tuple:
        """The parameters' descriptions (name, default, domain, doc)."""
        return self._params

    def _kernel_args_uncached(self, values: tuple, precision: str) -> tuple:
        """Kernel arguments after the inputs: float for f64 (fastest to pass), float32 for f32."""
        constants = self._meta.constants(*param_floats(self._params, values))
        return tuple(np.float32(c) for c in constants) if precision == "f32" else constants

    def _param_values(self, params: dict) -> tuple:
        unknown = set(params) - set(self._defaults)
        if unknown:
            raise TypeError(f"{self._name}() got unexpected keyword argument(s) {sorted(unknown)}; "
                            f"parameters are {list(self._defaults)}")
        return tuple(params.get(k, d) for k, d in self._defaults.items())

    def __call__(self, *inputs, reduction="none", dtype=None, device="cpu", validate=True, **params):
        return self._evaluate(False, inputs, params, reduction, dtype, device, validate)

    def _evaluate(self, with_grad, inputs, params, reduction, dtype, device, validate):
        # This is the per-call fixed cost (a few microseconds): keep it lean.
        if len(inputs) != len(self._inputs):
            raise TypeError(f"{self._name}() takes {len(self._inputs)} arrays ({', '.join(self._inputs)}), "
                            f"got {len(inputs)}")
        dt, precision = precision_of(dtype)
        if reduction not in REDUCTIONS:
            check_reduction(reduction)
        values = self._param_values(params) if params else self._default_values
        try:
            args = self._kernel_args(values, precision)
        except TypeError:  # unhashable parameter value: check it without the cache
            args = self._kernel_args_uncached(values, precision)
        if device != "cpu":
            return self._evaluate_elsewhere(with_grad, inputs, args, reduction, dt, precision, device, validate)
        arrays = [as_real_array(n, v, dt) for n, v in zip(self._inputs, inputs)]
        shape = _lead_shape(self._inputs, self._widths, arrays, self._layouts)
        flat = [_flat(a, shape, w) for a, w in zip(arrays, self._widths)]
        size = flat[0].shape[0]
        out = np.empty(size, dt)
        if not with_grad:
            bad = _cpu.driver(self._name, "value", precision)(*flat, out, *args)
            if bad and validate:
                self._raise_bad_input(arrays)
            return _reduce(out.reshape(shape), reduction)
        grads = [np.empty(f.shape, dt) for f in flat]
        divisor = dt.type(size if reduction == "mean" and size else 1)
        bad = _cpu.driver(self._name, "value_and_grad", precision)(*flat, out, *grads, divisor, *args)
        if bad and validate:
            self._raise_bad_input(arrays)
        value = _reduce(out.reshape(shape), reduction)
        return value, tuple([_sum_to_shape(g.reshape(shape + g.shape[1:]), a.shape) for g, a in zip(grads, arrays)])

    def _evaluate_elsewhere(self, with_grad, inputs, args, reduction, dt, precision, device, validate):
        if device != "cuda":
            raise ValueError(f"device: must be 'cpu' or 'cuda', got {device!r}")
        from . import _cuda

        return _cuda.evaluate(self._name, precision, dt, self._inputs, self._widths, inputs, args, reduction,
                              self._input_rules, validate, with_grad)

    def _raise_bad_input(self, arrays) -> None:
        """The kernels count bad elements as they go; only then look for the first one."""
        for n, a, (layout, bounds) in zip(self._inputs, arrays, self._input_rules):
            check_input(n, a, layout, bounds)

class _ValueAndGrad:
    """``loss.value_and_grad(...)``: value and the gradient w.r.t. every array input."""

    def __init__(self, loss: Loss):
        self._loss = loss
        self.__name__ = "value_and_grad"
        self.__qualname__ = f"{loss.name}.value_and_grad"

    @property
    def __doc__(self):
        loss = self._loss
        return (f"Value and gradients of refloss.{loss.name}: returns (value, (d_" + ", d_".join(loss.inputs)
                + f")).\n\nSame arguments as refloss.{loss.name}; each gradient has its input's shape.\n\n"
                + loss.__doc__)

    @property
    def __signature__(self):
        return self._loss.__signature__

    def __repr__(self) -> str:
        return f"refloss.{self._loss.name}.value_and_grad"

    def __call__(self, *inputs, reduction="none", dtype=None, device="cpu", validate=True, **params):
        return self._loss._evaluate(True, inputs, params, reduction, dtype, device, validate)
