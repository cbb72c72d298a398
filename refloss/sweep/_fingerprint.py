"""What a sweep's checkpoint file (``OUTPUT.chunks.jsonl``) records besides the sweep's arguments, so that a sweep
resumes only from chunks measured by the same code: a fingerprint of the implementation under test, and a hash of
refloss's files that decide the points and the measure (NumPy-free, standard library only).

- :func:`implementation`: for ``module:function`` / ``file.py:function`` and for a function given directly, a
  sha256 of its module's source file (the whole file: the helpers and constants it uses there) and of its code
  (bytecode, constants, nested code, closure values, ``functools.partial`` arguments, default arguments).  None
  where no fingerprint can be made (a builtin, an object whose state prints with a memory address): the sweep then
  does not resume from a checkpoint, and says so.
- :func:`sources`: a sha256 of refloss's version, the sweep package's own source files and the modules that draw
  the points or measure them (cases, box_cases, rotated_cases, _measures, _dd_functions, _fma, _reference).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import types
from pathlib import Path

# refloss modules (besides refloss/sweep/*.py) that decide a sweep's points and measure
SOURCES = ("cases.py", "box_cases.py", "rotated_cases.py", "_measures.py", "_dd_functions.py", "_fma.py",
           "_reference.py")


class _Unknown(Exception):
    """No fingerprint can be made."""


def sources() -> str:
    """sha256 (16 hex digits) of refloss's version and of the files that decide a sweep's points and measure."""
    from .. import __version__

    here = Path(__file__).resolve().parent
    h = hashlib.sha256(f"refloss {__version__}\n".encode())
    for path in sorted(here.glob("*.py")) + [here.parent / name for name in SOURCES]:
        h.update(path.name.encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()[:16]


def implementation(impl) -> str | None:
    """sha256 (16 hex digits) of the implementation under test (a callable, or a ``module:function`` string,
    loaded here), or None where no fingerprint can be made."""
    if impl is None:
        return None
    if isinstance(impl, str):
        from .._impl import load_callable

        impl = load_callable(impl)
    h = hashlib.sha256()
    try:
        _feed(h, impl, depth=0, files=set())
    except _Unknown:
        return None
    return h.hexdigest()[:16]


def _feed(h, obj, depth: int, files: set) -> None:
    if depth > 8:
        raise _Unknown
    if isinstance(obj, functools.partial):
        h.update(b"partial\0")
        _feed(h, obj.func, depth + 1, files)
        for a in obj.args:
            _value(h, a, depth + 1, files)
        for k in sorted(obj.keywords):
            h.update(k.encode() + b"=")
            _value(h, obj.keywords[k], depth + 1, files)
        return
    if isinstance(obj, types.MethodType):
        h.update(b"method\0")
        _state(h, obj.__self__, depth + 1, files)  # (its repr may leave the state out: torch's "SmoothL1Loss()")
        _feed(h, obj.__func__, depth + 1, files)
        return
    fn = obj if isinstance(obj, types.FunctionType) else None
    if fn is None and not isinstance(obj, type) and isinstance(getattr(type(obj), "__call__", None),
                                                                types.FunctionType):
        # a callable object: its class's __call__ and its state
        h.update(b"object\0")
        _feed(h, type(obj).__call__, depth + 1, files)
        _state(h, obj, depth + 1, files)
        return
    if fn is None:
        raise _Unknown  # a builtin, a class, a C extension's function: nothing to read
    h.update(f"{fn.__module__}:{fn.__qualname__}\0".encode())
    _file(h, fn, files)
    _code(h, fn.__code__, depth)
    for d in (fn.__defaults__ or ()):
        _value(h, d, depth + 1, files)
    for k, d in sorted((fn.__kwdefaults__ or {}).items()):
        h.update(k.encode() + b"=")
        _value(h, d, depth + 1, files)
    for cell in (fn.__closure__ or ()):
        try:
            v = cell.cell_contents
        except ValueError:  # an empty cell
            h.update(b"<empty>")
            continue
        _value(h, v, depth + 1, files)


def _state(h, obj, depth: int, files: set) -> None:
    """An object's class and its attributes (``__dict__``, by name); no fingerprint for one without a ``__dict__``."""
    state = getattr(obj, "__dict__", None)
    if state is None:
        raise _Unknown
    h.update(f"{type(obj).__module__}.{type(obj).__qualname__}\0".encode())
    for k in sorted(state):
        h.update(k.encode() + b"=")
        _value(h, state[k], depth + 1, files)


def _file(h, fn, files: set) -> None:
    """The function's source file, whole (its helpers and constants), once; or its own source where it has no file."""
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    if path and Path(path).is_file():
        if path not in files:
            files.add(path)
            h.update(Path(path).read_bytes())
        return
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        pass  # (python -c, a notebook cell gone: the code below still tells functions apart)


def _code(h, code, depth: int) -> None:
    if depth > 8:
        raise _Unknown
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code(h, c, depth + 1)
        else:
            h.update(_canonical(c).encode() + b"\0")


def _value(h, v, depth: int, files: set) -> None:
    """A value the implementation holds (a closure cell, a default, a bound argument)."""
    if isinstance(v, (types.FunctionType, functools.partial, types.MethodType)):
        _feed(h, v, depth + 1, files)
        return
    if isinstance(v, types.ModuleType):
        h.update(f"module {v.__name__}\0".encode())
        return
    text = _canonical(v)
    if " at 0x" in text or "object at" in text:  # a memory address: nothing stable to compare
        raise _Unknown
    h.update(text.encode() + b"\0")


def _canonical(v) -> str:
    """repr(v) with sets and dicts in a fixed order: a set's repr follows its hashes' order, which PYTHONHASHSEED
    makes different in every process (``x in {"a", "b"}`` compiles to a frozenset constant: the fingerprint changed
    from run to run, and no resume was possible)."""
    if isinstance(v, (set, frozenset)):
        return f"{type(v).__name__}({{{', '.join(sorted(_canonical(x) for x in v))}}})"
    if isinstance(v, dict):
        return "{" + ", ".join(sorted(f"{_canonical(k)}: {_canonical(x)}" for k, x in v.items())) + "}"
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_canonical(x) for x in v)
        return f"({inner},)" if isinstance(v, tuple) else f"[{inner}]"
    return repr(v)

