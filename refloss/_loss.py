"""The public loss objects: broadcasting, validation, reductions, dispatch to kernels.

A loss ``L`` is called as ``L(pred, target, **params, reduction="none", dtype=None,
device="cpu", validate=True)`` and ``L.value_and_grad(...)`` returns
``(value, (d_pred, d_target))``: each gradient has the shape of its input and is the
gradient of the reduced value (for ``"none"``, of the sum: each element's own
gradient, summed over the axes that input was broadcast along).

Everything a loss object knows about its loss comes from its :class:`refloss._info.LossInfo`
(generated from the derivation); its kernels come from :meth:`Loss._module`, which a loss
whose modules are not in ``refloss._generated`` (``refloss.design``) overrides.
"""
from __future__ import annotations

import importlib
import math
import os
import sys
from functools import lru_cache

import numpy as np

from . import _arrays, _backends, _cpu, _out
from ._info import RESCALE_EXPONENT, LossInfo, cuda_rescaled, length_params, rescalable
from ._validate import (DTYPES, REDUCTIONS, as_real_array, broadcast_shape, check_index_column, check_input,
                        check_reduction, param_floats, reject_autograd, result_dtypes)

_MODULE_SUFFIX = {"scalar": "", "cpu": "_cpu", "cuda": "_cuda"}


_LAYOUTS = {"xyxy": "boxes (x1, y1, x2, y2), x2 >= x1 and y2 >= y1",
            "xywh": "boxes (x, y, w, h): centre and size, w, h >= 0",
            "xywhr": "rotated boxes (cx, cy, w, h, angle): centre, size (w, h >= 0) and angle in radians"}


def _input_lines(info: LossInfo) -> list:
    """The numpydoc lines of the array inputs: their shape, layout and range."""
    groups = {}  # inputs described alike share one entry
    for n, w, layout in zip(info.inputs, info.widths, info.layouts):
        shape = "array_like (..., C)" if w is None else f"array_like (..., {w})" if w > 1 else "array_like"
        text = (shape, _LAYOUTS.get(layout), info.ranges.get(n))
        groups.setdefault(text, []).append(n)
    lines = []
    for (shape, layout, bounds), names in groups.items():
        hi = "C - 1 (a bin index of the rows)" if bounds and bounds[1] == "row" else f"{bounds[1]:g}" if bounds else ""
        what = layout or ("real values" + (f" in [{bounds[0]:g}, {hi}]" if bounds else "")
                          + (", rows of C along the last axis" if shape.endswith("C)") else "")
                          + (", or integer class indices in [0, C) of the rows' shape (no gradient: None)"
                             if set(names) & set(info.indices) else ""))
        lines += [f"{', '.join(names)} : {shape}", f"    {what[0].upper() + what[1:]}; broadcast with the other "
                  + ("inputs over the leading axes." if shape != "array_like" else "inputs.")]
    return lines


def _docstring(info: LossInfo, page: str | None = None) -> str:
    lines = [f"{info.title}.", "", info.formula, "", "Parameters", "----------"]
    lines += _input_lines(info)
    for p in info.params:
        kind = {"bool": "bool", "optional": "float or None", "int": "int", "choice": "str",
                "size": "(float, float), required"}.get(p.kind, "float")
        lines += [f"{p.name} : {kind}, default {p.default!r}", f"    {p.doc}; ``{p.rule}``."]
    lines += [
        'reduction : {"none", "mean", "sum"}, default "none"',
        "dtype : None, numpy.float64 or numpy.float32",
        "    Precision of the computation and of the results. None: NumPy's result type of the",
        "    inputs (Python numbers do not widen arrays; integers give float64; float16 is",
        "    computed in float32 and returned as float16).",
        'device : {"cpu", "cuda"}, default "cpu"',
        "validate : bool, default True",
        "    Check inputs for finiteness (parameters are always checked).",
        "out : numpy.ndarray or tuple, optional",
        "    Arrays to write the results into (CPU): the elementwise values (reduction \"none\"); for",
        "    ``.value_and_grad``, (value, d_<input>, ...) with None for an output to allocate (the value",
        "    of \"sum\" and \"mean\" is None). Each of the result's shape and dtype; returned as given.",
        "", "Conventions", "-----------", info.conventions,
        "", "``.value_and_grad(...)`` takes the same arguments and returns "
        f"``(value, (d_{', d_'.join(info.inputs)}))``.",
        "", "References", "----------", *info.references,
        "", f"Derivation: {page or f'docs/derivations/{info.name}.md'}",
    ]
    return "\n".join(lines)


# the keywords of a call besides the loss's parameters (Loss.__call__, ValueAndGrad.__call__)
CALL_OPTIONS = ("reduction", "dtype", "device", "validate", "out")


def _not_an_argument(name: str, options) -> str:
    """'is not an argument (did you mean X=?)', the guess the one of ``options`` that differs only in case,
    else the closest (an error path only: difflib is imported here)."""
    import difflib

    options = list(options)
    close = [o for o in options if o.lower() == name.lower()] or difflib.get_close_matches(name, options, 1)
    return "is not an argument" + (f" (did you mean {close[0]}=?)" if close else "")



def _key_type(value):
    """A parameter value's type for the cache's key: a tuple's or list's the types of its elements too."""
    return (type(value), *map(type, value)) if isinstance(value, (tuple, list)) else type(value)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(params, floats: tuple, values: tuple) -> None:
    """ValueError for a parameter beyond float32's range in a call computed in float32 (inf there: eps = 1e300 gave
    NaN).  A parameter that float32 rounds onto or past a bound of its domain is not refused: the bounds themselves
    are not all float32 numbers (inner_iou_loss's ratio 0.01), and some losses take such a parameter through constants
    computed from it exactly (balanced_l1's gamma 1e-300); the kernel computes at the rounded value (docs/accuracy.md,
    "Parameters in a float32 kernel")."""
    for p, f, v in zip(params, floats, values):
        # (a size's float is width^2 + height^2, which mpdiou_loss's float32 kernel takes as inf beyond the range)
        if p.kind not in ("real", "optional") or (p.kind == "optional" and v is None):
            continue
        if abs(f) > _FLOAT32_MAX:
            raise ValueError(f"{p.name}: {v!r} is beyond float32's range ({_FLOAT32_MAX:.4g}), and this call computes "
                             "in float32 (float32 or float16 inputs, or dtype=float32); pass float64 inputs or "
                             "dtype=numpy.float64")

class Loss:
    """A generated loss: callable for the value, ``.value_and_grad`` for both."""

    def __init__(self, info: LossInfo):
        # Nothing is imported here: the generated modules (constants, scalar kernels,
        # drivers) load on first use, so `import refloss` stays light.
        self._info = info
        self._name = info.name
        self.__name__ = self.__qualname__ = info.name
        self.__module__ = "refloss"
        self._defaults = {p.name: p.default for p in info.params}
        self._default_values = tuple(self._defaults.values())
        # per input: (box layout "xyxy", "xywh" or None, (lo, hi) range or None)
        self._input_rules = tuple((layout, info.ranges.get(n)) for n, layout in zip(info.inputs, info.layouts))
        self._modules = {}
        # keyed on the values' types too (a pair's, its elements'): True == 1 and hash(True) == hash(1), so a key of
        # values alone let version=True (or beta=True, image_size=(True, 8)) through unvalidated once version=1
        # (beta=1, image_size=(1, 8)) was cached
        self._kernel_args = lru_cache(maxsize=1024)(lambda values, precision, _types:
                                                    self._kernel_args_uncached(values, precision))
        # (a pair's element types only where a parameter is a pair: type() alone is cheaper on the fast path)
        self._key_type = _key_type if any(p.kind == "size" for p in info.params) else type
        # the fast path (_fast): every input of one width (None: not taken), and its drivers once looked up
        widths = set(info.widths)
        self._fast_width = widths.pop() if len(widths) == 1 and None not in widths and not info.indices else None
        self._fast_drivers = {}
        self._default_args = {}
        # where a box pair beyond 2^+-RESCALE_EXPONENT is computed again scaled (_rescale): the box losses whose
        # value and gradients follow their boxes' scale exactly (with their parameters in the boxes' units, at
        # _lengths_at), and an eps (the position of eps among the parameter values; None: not rescaled)
        self._eps_at = (list(self._defaults).index("eps") if rescalable(info.family, info.properties, info.params)
                        else None)
        self._lengths_at = length_params(info.properties, info.params)
        self._cuda_rescaled = cuda_rescaled(info.family, info.properties, info.params)
        self.value_and_grad = _ValueAndGrad(self)

    def _module(self, which: str):
        """The generated module: "scalar" (constants, plain-Python kernels), "cpu" or "cuda" (drivers)."""
        mod = self._modules.get(which)
        if mod is None:
            mod = self._modules[which] = importlib.import_module(
                f"refloss._generated.{self._name}{_MODULE_SUFFIX[which]}")
        return mod

    def __reduce__(self):  # pickled and copied as a reference: refloss.<name> itself (its compiled kernels stay)
        return loss_named, (self._name,)

    @property
    def __doc__(self):  # noqa: D105 - built from the generated metadata on demand
        return _docstring(self._info)

    @property
    def __signature__(self):
        import inspect

        P = inspect.Parameter
        return inspect.Signature(
            [P(n, P.POSITIONAL_OR_KEYWORD) for n in self._info.inputs]
            + [P(p.name, P.KEYWORD_ONLY, default=p.default) for p in self._info.params]
            + [P("reduction", P.KEYWORD_ONLY, default="none"), P("dtype", P.KEYWORD_ONLY, default=None),
               P("device", P.KEYWORD_ONLY, default="cpu"), P("validate", P.KEYWORD_ONLY, default=True),
               P("out", P.KEYWORD_ONLY, default=None)]
        )

    def __repr__(self) -> str:
        return f"refloss.{self._name}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def info(self) -> LossInfo:
        """What refloss knows about the loss (family, inputs, parameters, kinks, variants)."""
        return self._info

    @property
    def inputs(self) -> tuple:
        return self._info.inputs

    @property
    def grad_inputs(self) -> tuple:
        """The inputs ``value_and_grad`` gives a gradient for (all of them)."""
        return self._info.grad_inputs

    @property
    def params(self) -> tuple:
        """The parameters' descriptions (name, default, domain, doc)."""
        return self._info.params

    def _kernel_args_uncached(self, values: tuple, precision: str) -> tuple:
        """Kernel arguments after the inputs: float for f64 (fastest to pass), float32 for f32."""
        floats = param_floats(self._info.params, values)
        if precision != "f32":
            return self._module("scalar").constants(*floats)
        _check_float32_range(self._info.params, floats, values)
        constants = self._module("scalar").constants(*floats)
        with np.errstate(over="ignore"):  # a constant beyond float32's range is inf there, which its kernel handles
            return tuple(np.float32(c) for c in constants)

    def _checked_args(self, values: tuple, precision: str) -> tuple:
        """The parameters checked and converted (cached; an unhashable value is checked without the cache)."""
        try:
            return self._kernel_args(values, precision, tuple(map(self._key_type, values)))
        except TypeError:  # unhashable parameter value
            return self._kernel_args_uncached(values, precision)

    def kernel_args(self, params: dict, precision: str = "f64") -> tuple:
        """The scalar kernels' arguments after the inputs for these parameters (defaults for
        the rest), as floats of ``precision`` ("f64" or "f32")."""
        return self._kernel_args_uncached(self._param_values(params), precision)

    def _param_values(self, params: dict, options: tuple = CALL_OPTIONS) -> tuple:
        """The parameters' values in order (defaults for the rest); ``options``: the call's own keywords
        (named in the error for an unknown keyword, and guessed from: ``reducton=`` is ``reduction=``)."""
        if not params.keys() <= self._defaults.keys():
            unknown = set(params) - set(self._defaults)
            hints = "".join(f"; {k}= {_not_an_argument(k, [*self._defaults, *options])}" for k in sorted(unknown))
            raise TypeError(f"{self._name}() got unexpected keyword argument(s) {sorted(unknown)}; "
                            f"parameters are {list(self._defaults)}, and the call's "
                            f"{', '.join(o + '=' for o in options)}{hints}")
        return tuple(params.get(k, d) for k, d in self._defaults.items())

    def __call__(self, *inputs, reduction="none", dtype=None, device="cpu", validate=True, out=None, **params):
        if out is not None:
            return self._into(False, inputs, params, reduction, dtype, device, validate, out)
        return self._evaluate(False, inputs, params, reduction, dtype, device, validate)

    def _into(self, with_grad, inputs, params, reduction, dtype, device, validate, out):
        """A call with ``out=`` (refloss/_out.py): the kernels write into the arrays given where the common call's
        fast path can (:meth:`_fast`), else the result is computed as without them and copied in."""
        if reduction not in REDUCTIONS:
            check_reduction(reduction)
        if device != "cpu":
            self._check_device(device)
        value_out, grad_outs = _out.parse(out, with_grad, self._info.inputs, reduction)
        if device != "cpu":
            if value_out is None and not any(o is not None for o in grad_outs):  # nothing to write into
                return self._evaluate(with_grad, inputs, params, reduction, dtype, device, validate)
            raise ValueError(f"out: the results of device={device!r} are device arrays; out= is for the CPU "
                             "(device='cpu')")
        info = self._info
        if (dtype is None and self._fast_width is not None and len(inputs) == len(info.inputs)
                and reduction in REDUCTIONS and (reduction != "mean" or info.mean_weight is None)):
            result = self._fast(with_grad, inputs, params, reduction, validate, (value_out, grad_outs))
            if result is not None:
                return result
        result = self._evaluate(with_grad, inputs, params, reduction, dtype, device, validate)
        return _out.store(result, value_out, grad_outs, info.inputs)

    def _bind(self, inputs: tuple, params: dict) -> tuple:
        """(arrays in order, parameters): arrays may be given by position or by name."""
        names = self._info.inputs
        if len(inputs) > len(names):
            raise TypeError(f"{self._name}() takes {len(names)} arrays ({', '.join(names)}), got {len(inputs)}")
        given = dict(zip(names, inputs))
        for n in names[len(inputs):]:
            if n in params:
                given[n] = params.pop(n)
        twice = [n for n in names[:len(inputs)] if n in params]
        if twice:
            raise TypeError(f"{self._name}() got multiple values for {', '.join(twice)}")
        missing = [n for n in names if n not in given]
        if missing:
            stray = [k for k in params if k not in self._defaults]  # e.g. targets= for target=
            hint = "".join(f"; {k}= {_not_an_argument(k, names)}" for k in stray)
            raise TypeError(f"{self._name}() missing array argument(s) {', '.join(missing)} (it takes "
                            f"{', '.join(names)}){hint}")
        return tuple(given[n] for n in names), params

    def _fast(self, with_grad, inputs, params, reduction, validate, outs=None):
        """The common call, C-contiguous NumPy arrays of one float dtype and one shape, on few operations (the
        fixed cost of a call on a small batch); None where it does not apply, for the general path.  Its
        results are those of the general path: the same drivers on the same memory.  ``outs``: ``out=``'s
        arrays (value, gradients; refloss/_out.py), written into where they allow it."""
        first = inputs[0]
        if type(first) is not np.ndarray:
            return None
        dt, shape = first.dtype, first.shape
        precision = DTYPES.get(dt)
        if precision is None:
            return None
        for a in inputs:
            if type(a) is not np.ndarray or a.dtype != dt or a.shape != shape or not a.flags.c_contiguous:
                return None
        width = self._fast_width
        if width == 1:
            lead = shape
        elif not shape or shape[-1] != width:
            return None  # the general path names the shape error
        else:
            lead = shape[:-1]
        if params:
            if not params.keys().isdisjoint(self._info.inputs):
                return None
            args = self._checked_args(self._param_values(params), precision)
        else:
            args = self._default_args.get(precision)
            if args is None:
                args = self._default_args[precision] = self._checked_args(self._default_values, precision)
        flat_shape = (-1,) if width == 1 else (-1, width)
        reshape = first.ndim != len(flat_shape)  # (one shape for all)
        flat = []
        for a in inputs:  # read-only views, as _cpu.read_only makes them (inline: this is the hot path)
            v = a.reshape(flat_shape) if reshape else a.view()
            v.setflags(write=False)
            flat.append(v)
        key = (with_grad, precision)
        driver = self._fast_drivers.get(key)
        if driver is None:
            driver = self._fast_drivers[key] = getattr(self._module("cpu"),
                                                       f"value_and_grad_{precision}" if with_grad else
                                                       f"value_{precision}")
        # out=: the drivers write into each array given that is C-contiguous and overlaps no input (the inputs are
        # read again after the loop where it counted a bad element), into a new array copied in after otherwise
        out = None if outs is None else _out.direct("value", outs[0], lead, dt, inputs)
        if out is None:
            out = np.empty(lead, dt)
        out_flat = out.reshape(-1) if reshape else out
        if not with_grad:
            if driver(*flat, out_flat, *args):
                self._after_bad(inputs, validate, precision, params, flat, out_flat)
            value = out if reduction == "none" else _arrays.reduce(out, reduction)
            return value if outs is None else _out.store(value, outs[0], (), self._info.inputs)
        if outs is None:
            grads = [np.empty(shape, dt) for a in inputs]
        else:
            grads = [_out.direct("d_" + n, o, shape, dt, inputs) for n, o in zip(self._info.inputs, outs[1])]
            grads = [np.empty(shape, dt) if g is None else g for g in grads]
        size = len(out_flat)
        divisor = dt.type(size if reduction == "mean" and size else 1)
        flat_grads = [g.reshape(flat_shape) for g in grads] if reshape else grads
        if driver(*flat, out_flat, *flat_grads, divisor, *args):
            self._after_bad(inputs, validate, precision, params, flat, out_flat, flat_grads, divisor)
        value = out if reduction == "none" else _arrays.reduce(out, reduction)
        return (value, tuple(grads)) if outs is None else _out.store((value, tuple(grads)), outs[0], outs[1],
                                                                      self._info.inputs)

    def _after_bad(self, inputs, validate, precision, params, flat, out, grads=None, divisor=1) -> None:
        """A driver counted bad elements: a bad input (raised, naming it, when ``validate``), or a box pair beyond
        the range where the kernels keep their scale invariance (computed again, scaled: :meth:`_rescale`)."""
        if validate:
            self._raise_bad_input(inputs)
        if self._eps_at is not None:
            values = params if isinstance(params, tuple) else self._param_values(params) if params else \
                self._default_values
            self._rescale(precision, values, flat, out, grads, divisor)

    def _rescale(self, precision, values, flat, out, grads, divisor) -> None:
        """Box pairs whose largest |coordinate| is beyond 2^+-RESCALE_EXPONENT (480 in float64, 56 in float32),
        where areas and products of lengths leave the float range: sides beyond about 2^+-512 in float64 and
        2^+-64 in float32 gave NaN, or lost their digits (docs/accuracy.md).  The loss is a function of the
        boxes' shapes, L(s p, s t) = L(p, t) and grad L(p, t) = s grad L(s p, s t), and scaling by a power of
        two is exact: such a pair is computed again at s = 2^-e, e the exponent of its largest |coordinate|, and
        its gradients scaled back by 2^-e (one rounding, where they are subnormal).  eps is 0 there: at those
        scales it is below 2^-900 (float64; float32 2^-100) of the areas it is added to, and moves no digit.  A
        pair of tiny boxes (scaled up) is computed again only where eps is 0: otherwise eps decides its value.
        A parameter in the boxes' units (NWD's c, MPDIoU's image size) is scaled with them, L(p, t; c) =
        L(s p, s t; s c): one launch a scale, and none where it would leave the normal numbers."""
        dt = out.dtype
        big = np.ldexp(1.0, RESCALE_EXPONENT[precision])
        with np.errstate(invalid="ignore"):
            top = np.max([np.max(np.abs(f), axis=1) for f in flat], axis=0)  # (NaN where a coordinate is NaN)
            take = (top > big) & np.isfinite(top)
            if values[self._eps_at] == 0:
                take |= (top < 1 / big) & (top > 0)
        where = np.flatnonzero(take)
        if not where.size:
            return
        e = np.frexp(top[where])[1]  # top = m 2^e, 1/2 <= m < 1
        values = values[:self._eps_at] + (0.0,) + values[self._eps_at + 1:]
        module = self._module("cpu")
        # one launch a scale where a parameter is in the boxes' units (scaled with them), else one for all
        for ex in (np.unique(e) if self._lengths_at else (None,)):
            at = where if ex is None else where[e == ex]
            shift = e[:, None] if ex is None else int(ex)
            args = self._scaled_args(values, precision, ex)
            if args is None:  # such a parameter leaves the float range at this scale: the pairs stay as computed
                continue
            scaled = [np.ldexp(np.asarray(f[at]), -shift).astype(dt) for f in flat]
            value = np.empty(len(at), dt)
            if grads is None:
                _cpu.launch(module, f"value_{precision}", scaled, [value], args)
            else:
                scaled_grads = [np.empty_like(a) for a in scaled]
                _cpu.launch(module, f"value_and_grad_{precision}", scaled, [value, *scaled_grads, divisor], args)
                for g, sg in zip(grads, scaled_grads):
                    g[at] = np.ldexp(sg, -shift).astype(dt)
            out[at] = value

    def _cuda_args(self, values: tuple, precision: str, args: tuple) -> tuple:
        """The arguments of the CUDA drivers after the outputs: the kernel's ``args``, and where the drivers
        rescale out-of-range pairs (refloss._info.cuda_rescaled) those of eps 0, whether tiny pairs are
        rescaled (eps is 0), as :meth:`_rescale` decides on the CPU, and each "size" parameter's width and height
        as floats (float64: the drivers scale them and sum their squares, as :meth:`_scaled_args` does)."""
        if not self._cuda_rescaled:
            return args
        zero = values[:self._eps_at] + (0.0,) + values[self._eps_at + 1:]
        sizes = [float(x) for p, v in zip(self._info.params, values) if p.kind == "size" for x in v]
        return (*args, *self._checked_args(zero, precision), bool(values[self._eps_at] == 0), *sizes)

    def _scaled_args(self, values: tuple, precision: str, ex):
        """The kernel arguments with the parameters in the boxes' units scaled by 2^-ex (exactly: None where one
        would leave the normal numbers of the precision)."""
        args = self._checked_args(values, precision)  # (the values as given checked first: scaled, (True, 8) passed)
        if ex is None:
            return args
        ft = np.float32 if precision == "f32" else np.float64
        info = np.finfo(ft)
        values = list(values)
        for k in self._lengths_at:
            v = values[k]
            pair = self._info.params[k].kind == "size"  # (a tuple, list or array of two)
            # each length as the kernel has it (float32's value in a float32 call), scaled where its scaled value is
            # a normal number: decided on frexp's exponent (m 2^k, 1/2 <= m < 1), as the CUDA drivers decide, and
            # never by a scaling that underflowed to 0 (which the parameter's rule refused: c = 1e-300 at 2^600)
            xs = [float(x) for x in v] if pair else [float(ft(v))]  # (a pair's squares are summed after scaling)
            if not all(x == 0 or info.minexp + 1 <= math.frexp(x)[1] - int(ex) <= info.maxexp for x in xs):
                return None
            scaled = [math.ldexp(x, -int(ex)) for x in xs]
            values[k] = tuple(scaled) if pair else scaled[0]
        return self._checked_args(tuple(values), precision)

    def _evaluate(self, with_grad, inputs, params, reduction, dtype, device, validate):
        # This is the per-call fixed cost (a few microseconds): keep it lean.
        info = self._info
        if (device == "cpu" and dtype is None and self._fast_width is not None and len(inputs) == len(info.inputs)
                and reduction in REDUCTIONS and (reduction != "mean" or info.mean_weight is None)):
            result = self._fast(with_grad, inputs, params, reduction, validate)
            if result is not None:
                return result
        if len(inputs) != len(info.inputs) or (params and not params.keys().isdisjoint(info.inputs)):
            inputs, params = self._bind(inputs, dict(params))
        reject_autograd(info.inputs, inputs)
        if info.indices:
            given = [k for k, n in enumerate(info.inputs) if n in info.indices and _is_integer(n, inputs[k])]
            if given:
                return self._from_indices(with_grad, inputs, given, params, reduction, dtype, device, validate)
        dt, precision, out_dt = result_dtypes(inputs, dtype)
        if reduction not in REDUCTIONS:
            check_reduction(reduction)
        values = self._param_values(params) if params else self._default_values
        if out_dt != dt:  # float16: computed in float32, returned as float16 (NumPy's result type), rounded once
            result = self._evaluate(with_grad, inputs, params, reduction, dt, device, validate)
            return _cast(result, out_dt)
        if reduction == "mean" and info.mean_weight is not None:  # (float16: its sums and quotient in float32 above)
            return self._weighted_mean(with_grad, inputs, values, dtype, device, validate)
        args = self._checked_args(values, precision)
        if device != "cpu":
            self._check_device(device)
            if info.row_params:
                self._check_row_params(values, inputs)
            return _backends.cuda().evaluate(self._module("cuda"), precision, dt, info.inputs, info.widths, inputs,
                                             self._cuda_args(values, precision, args), reduction, self._input_rules,
                                             validate, with_grad)
        arrays = [as_real_array(n, v, dt, validate) for n, v in zip(info.inputs, inputs)]
        return self._cpu_evaluate(with_grad, arrays, dt, precision, args, reduction, validate, values)

    def _check_device(self, device) -> None:
        """A ValueError where ``device`` is not one this loss runs on ("cpu", "cuda")."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: must be 'cpu' or 'cuda', got {device!r}")

    def _cpu_evaluate(self, with_grad, arrays, dt, precision, args, reduction, validate, values=None):
        """The CPU drivers on ``arrays`` (NumPy arrays of dtype ``dt``, bound and converted) with the
        kernel arguments ``args`` of ``precision`` (from the parameter ``values``, a tuple; None: the
        defaults): what ``_evaluate`` ends with, and what ``refloss.torch`` calls on views of its tensors."""
        if values is None:
            values = self._default_values
        info = self._info
        shape = _arrays.lead_shape(info.inputs, info.widths, arrays, info.layouts)
        if info.row_params:
            self._check_row_params(values, arrays)
        flat = [_arrays.flat(a, shape, w) for a, w in zip(arrays, info.widths)]
        size = flat[0].shape[0]
        out = np.empty(size, dt)
        drivers = self._module("cpu")
        if not with_grad:
            bad = _cpu.launch(drivers, f"value_{precision}", flat, [out], args)
            if bad:
                self._after_bad(arrays, validate, precision, values, flat, out)
            return _arrays.reduce(out.reshape(shape), reduction)
        grads = [np.empty(f.shape, dt) for f in flat]
        divisor = dt.type(size if reduction == "mean" and size else 1)
        bad = _cpu.launch(drivers, f"value_and_grad_{precision}", flat, [out, *grads, divisor], args)
        if bad:
            self._after_bad(arrays, validate, precision, values, flat, out, grads, divisor)
        value = _arrays.reduce(out.reshape(shape), reduction)
        return value, tuple([_arrays.sum_to_shape(g.reshape(shape + g.shape[1:]), a.shape)
                             for g, a in zip(grads, arrays)])

    def _from_indices(self, with_grad, inputs, given, params, reduction, dtype, device, validate):
        """Inputs ``given`` (positions) are integer class indices (``LossInfo.indices``): one-hot rows
        as wide as the first other row input, in the result dtype of the other inputs; their
        gradient is None."""
        info = self._info
        others = [v for k, v in enumerate(inputs) if k not in given]
        out_dt = result_dtypes(others, dtype)[2]
        rows = [k for k, w in enumerate(info.widths) if w is None and k not in given]
        ref = as_real_array(info.inputs[rows[0]], inputs[rows[0]], out_dt)
        if ref.ndim == 0 or ref.shape[-1] == 0:
            raise ValueError(f"{info.inputs[rows[0]]}: needs a last axis of at least one element (the row: "
                             f"classes), got shape {ref.shape}")
        for k in given:  # integer rows of the rows' own shape (one-hot ints) are not indices: say so (as torch's
            # cross_entropy refuses integer targets of the input's shape; a square batch would have broadcast)
            shape = np.shape(inputs[k])
            if shape == ref.shape and len(shape) > 1 and shape[-1] > 1:
                raise ValueError(
                    f"{info.inputs[k]}: integer values are class indices, one per row of {info.inputs[rows[0]]} "
                    f"{ref.shape} (shape {ref.shape[:-1]}), got the rows' own shape {shape}; for one-hot or "
                    f"probability rows pass floats, e.g. {info.inputs[k]}.astype(float)")
            check_index_column(info.inputs[k], shape, info.inputs[rows[0]], ref.shape)
        # (the kernels take the index as a float of the rows' dtype: exact below 2^24 classes in float32, 2^53 in
        # float64; wider float32 rows keep the one-hot rows)
        if device == "cpu" and len(given) == 1 and len(rows) == 1 and len(inputs) == 2 and out_dt == ref.dtype and \
                out_dt.type in (np.float32, np.float64) and hasattr(self._module("cpu"), "value_index_f64") and \
                ref.shape[-1] <= 2 ** (np.finfo(out_dt).nmant + 1):
            result = self._index_rows(with_grad, ref, rows[0], given[0], np.asarray(inputs[given[0]]), params,
                                      reduction, validate)
            if result is not None:
                return result  # (None: a bad input, which the one-hot rows' call below names)
        inputs = list(inputs)
        for k in given:
            inputs[k] = _arrays.one_hot(info.inputs[k], np.asarray(inputs[k]), ref.shape[-1], out_dt,
                                        info.inputs[rows[0]])
        result = self._evaluate(with_grad, tuple(inputs), params, reduction, dtype, device, validate)
        if not with_grad:
            return result
        value, grads = result
        return value, tuple(None if k in given else g for k, g in enumerate(grads))

    def _index_rows(self, with_grad, ref, row, given, indices, params, reduction, validate):
        """A row loss with its class-index input given as integers, on the CPU: the generated ``*_index``
        drivers (the index one float a row; the same values and gradients as the one-hot rows, without
        building them, and no gradient for the indices).  None where the drivers counted a bad input and
        ``validate``: the caller's one-hot path raises the error that names it."""
        info = self._info
        _arrays.check_indices(info.inputs[given], indices, ref.shape[-1], info.inputs[row])
        dt = ref.dtype
        precision = "f32" if dt == np.float32 else "f64"
        if reduction not in REDUCTIONS:
            check_reduction(reduction)
        values = self._param_values(params) if params else self._default_values
        args = self._checked_args(values, precision)
        names = (info.inputs[row], info.inputs[given])
        shape = broadcast_shape({names[0]: ref.shape[:-1], names[1]: indices.shape},
                                {names[0]: ref.shape, names[1]: indices.shape})
        logits = _arrays.flat(ref, shape, None)
        index = _arrays.flat(indices.astype(dt), shape)
        flat = [logits, index] if row == 0 else [index, logits]
        size = logits.shape[0]
        out = np.empty(size, dt)
        drivers = self._module("cpu")
        if not with_grad:
            bad = _cpu.launch(drivers, f"value_index_{precision}", flat, [out], args)
        else:
            grad = np.empty(logits.shape, dt)
            divisor = dt.type(size if reduction == "mean" and size else 1)
            bad = _cpu.launch(drivers, f"value_and_grad_index_{precision}", flat, [out, grad, divisor], args)
        if bad and validate:
            return None
        value = _arrays.reduce(out.reshape(shape), reduction)
        if not with_grad:
            return value
        g = _arrays.sum_to_shape(grad.reshape(shape + grad.shape[1:]), ref.shape)
        return value, tuple(g if k == row else None for k in range(2))

    def _weighted_mean(self, with_grad, inputs, values, dtype, device, validate):
        """reduction="mean" for a loss that weights its elements (``LossInfo.mean_weight``):
        the sum divided by the sum of the weights w = metric**exponent; the weights carry a
        gradient (through the metric's kernel) when the ``differentiate`` parameter is set."""
        mw = self._info.mean_weight
        params = dict(zip(self._defaults, values))
        metric = loss_named(mw.metric)
        shared = {k: params[k] for k in mw.shared}
        common = dict(dtype=dtype, device=device, validate=validate)
        differentiate = bool(params[mw.differentiate]) and with_grad
        result = self._evaluate(with_grad, inputs, params, "sum", dtype, device, validate)
        if differentiate:
            # the metric's gradient per element (inputs broadcast first), weighted, then summed to each input
            full = np.broadcast_arrays(*(np.asarray(a) for a in inputs))
            m, dm = metric.value_and_grad(*full, **shared, **common)
            m, dm = np.asarray(m), tuple(np.asarray(d) for d in dm)
        else:
            m = np.asarray(metric(*inputs, **shared, **common))
        exponent = m.dtype.type(params[mw.exponent])
        weights = m**exponent
        norm = _arrays.reduce(weights, "sum")
        if not weights.size:  # an empty batch: NaN, as every mean of nothing; gradients: sums over nothing (0)
            nan = norm.dtype.type(np.nan)
            return (nan, result[1]) if with_grad else nan
        # every weight 0 (focal_eiou_loss: every pair disjoint): the quotient 0/0, NaN, as the mean of nothing above
        # (no element carries weight; the formula's own result, what its peers' autograd gives), without NumPy's
        # warnings
        with np.errstate(divide="ignore", invalid="ignore"):
            if not with_grad:
                return result / norm
            total, grads = result
            value = total / norm
            grads = tuple(np.asarray(g) / norm for g in grads)
            if differentiate:  # d(m^e)/dm, 0 where m = 0
                dw = np.where(m > 0, exponent * m ** (exponent - 1), 0)[..., None]
                grads = tuple(g - value / norm * _arrays.sum_to_shape(dw * d, g.shape) for g, d in zip(grads, dm))
        return value, grads

    def _check_row_params(self, values: tuple, inputs) -> None:
        """ValueError for a parameter above the rows' last index C - 1 (``LossInfo.row_params``: DFL's clamp, in
        bins; a larger one leaves no target in [0, C - 1 - clamp]); C from ``inputs`` as given (arrays, device
        arrays, tensors, nested lists)."""
        row = _given_row_width(self._info.widths, inputs)
        if row is None:
            return
        for p, v in zip(self._info.params, values):
            if p.name in self._info.row_params and v is not None and float(v) > row - 1:
                raise ValueError(f"{p.name}: must satisfy {p.rule} with C = {row} (the rows' last axis), got {v!r}")

    def _raise_bad_input(self, arrays) -> None:
        """The kernels count bad elements as they go; only then look for the first one."""
        row = _arrays.row_width(self._info.widths, arrays)
        for n, a, (layout, bounds) in zip(self._info.inputs, arrays, self._input_rules):
            check_input(n, a, layout, bounds, row)


def _given_row_width(widths, inputs) -> int | None:
    """The rows' width C from inputs as given (arrays, device arrays, tensors, nested lists); None where it cannot
    be read (a ragged list: the input checks that follow name it)."""
    for v, w in zip(inputs, widths):
        if w is None:
            try:
                shape = tuple(getattr(v, "shape", None) or np.shape(v))
            except ValueError:
                return None
            return int(shape[-1]) if shape else None
    return None


def _is_integer(name: str, v) -> bool:
    """Whether ``v`` is an integer array (class indices); TypeError for one on a CUDA device."""
    if _arrays.is_device_array(v):
        if np.dtype(v.dtype).kind in "iu":
            raise TypeError(f"{name}: integer class indices must be a host array (device='cuda' copies them as "
                            "one-hot rows), or pass one-hot float rows on the device")
        return False
    return np.asarray(v).dtype.kind in "iu"


def _cast(result, dt):
    """A value, or (value, grads), as ``dt`` (NumPy arrays and scalars): float16 results of the float32 kernels,
    ±inf where they exceed float16's range (its rounding; NumPy's cast warning kept inside)."""
    with np.errstate(over="ignore"):
        if isinstance(result, tuple):
            value, grads = result
            return _cast(value, dt), tuple(np.asarray(g).astype(dt) for g in grads)
        return np.asarray(result).astype(dt)[()] if np.ndim(result) == 0 else np.asarray(result).astype(dt)


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

    def __call__(self, *inputs, reduction="none", dtype=None, device="cpu", validate=True, out=None, **params):
        if out is not None:
            return self._loss._into(True, inputs, params, reduction, dtype, device, validate, out)
        return self._loss._evaluate(True, inputs, params, reduction, dtype, device, validate)


class ModuleLoss(Loss):
    """A loss whose generated modules live outside ``refloss._generated``: a ``refloss.design``
    package, which names its scalar and CPU modules.  It runs on the CPU only (no CUDA module
    is generated for it)."""

    def __init__(self, info: LossInfo, scalar: str, cpu: str, page: str | None = None):
        super().__init__(info)
        self._module_names = {"scalar": scalar, "cpu": cpu}
        self._page = page
        self.__module__ = "refloss.design"

    def __reduce__(self):
        # pickled as a reference to its package's ``loss`` and the folder the package lies in (a written
        # package's folder, or refloss.design's cache folder), which design_loss puts on sys.path if the
        # package is not importable there: the same loss in another process
        package = self._module_names["scalar"].rpartition(".")[0]
        module = sys.modules.get(package)
        file = getattr(module, "__file__", None)
        if module is None or getattr(module, "loss", None) is not self or not file:
            return ModuleLoss, (self._info, self._module_names["scalar"], self._module_names["cpu"], self._page)
        return design_loss, (package, os.path.dirname(os.path.dirname(os.path.abspath(file))))

    def _module(self, which: str):
        if which not in self._module_names:
            raise ValueError(f"device: {self._name} is a refloss.design loss and runs on the CPU only")
        mod = self._modules.get(which)
        if mod is None:
            mod = self._modules[which] = importlib.import_module(self._module_names[which])
        return mod

    def _check_device(self, device) -> None:
        if device != "cpu":
            raise ValueError(f"device: {self._name} is a refloss.design loss and runs on the CPU only "
                             f"(device='cpu'), got {device!r}")

    def _evaluate(self, with_grad, inputs, params, reduction, dtype, device, validate):
        self._check_device(device)
        return super()._evaluate(with_grad, inputs, params, reduction, dtype, device, validate)

    @property
    def __doc__(self):  # noqa: D105
        return _docstring(self._info, self._page)

    def __repr__(self) -> str:
        return f"<refloss.design loss {self._name!r} from {self._module_names['scalar'].rpartition('.')[0]}>"


def design_loss(package: str, folder: str) -> ModuleLoss:
    """The ``loss`` of the refloss.design package ``package`` (unpickling): imported by name, else from
    ``folder`` (appended to sys.path: the written package's folder, or the design cache)."""
    module = sys.modules.get(package)
    if module is None:
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as e:
            if e.name != package:
                raise
            if not os.path.isfile(os.path.join(folder, package, "__init__.py")):
                raise ModuleNotFoundError(
                    f"the refloss.design loss's package {package!r} is not importable here, nor in {folder!r} "
                    "where it was: write the design (Design.write) to a folder this process has on sys.path, "
                    "or derive it again here", name=package) from None
            if folder not in sys.path:
                sys.path.append(folder)
            module = importlib.import_module(package)
    return module.loss


@lru_cache(maxsize=None)
def loss_named(name: str) -> Loss:
    """The loss object of a generated loss (the one ``refloss.<name>`` is)."""
    from ._generated._index import LOSSES

    return Loss(LOSSES[name])
