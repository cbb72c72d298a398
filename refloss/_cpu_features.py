"""refloss's 512-bit vector setting (issue 16), made by ``import refloss`` without importing Numba.

Numba fixes its CPU features when it makes its codegen, at the first ``@njit`` of a process (compiled or not).
``refloss/_numba_options.py``, which refloss's kernels import, sets them: too late where the user's own ``@njit``
came first, as in a script that imports numba and refloss and then defines its functions (refloss's kernels then
ran at LLVM's 256-bit preference, 1.5-2x slower on an AVX-512 CPU where 512 bits pay, docs/performance.md).
``import refloss`` calls :func:`arrange`: where Numba's configuration module is already imported, the features are
set in it now; otherwise when it is imported (a finder on ``sys.meta_path`` for ``numba.core.config`` alone,
removed once that module has run).  REFLOSS_VECTOR_WIDTH is read at ``import refloss``: set it before.  So the setting holds for every Numba function defined after ``import refloss``, as it
held for those defined after refloss's first kernel; a function defined before it keeps the features it started
with (``refloss._numba_options.vectors()`` says so).  Only the instructions change, not one result (no fast-math).
"""
import os
import sys

# the cores whose clock 512-bit code lowers: LLVM's choice kept there unless REFLOSS_VECTOR_WIDTH=512
NARROW_CPUS = frozenset({"skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "knl", "knm"})
VECTOR_WIDTH = os.environ.get("REFLOSS_VECTOR_WIDTH", "auto")

APPLIED = None  # the features this module set in Numba's configuration (None: none); not a user's setting


def wide(features: str, cpu_name: str, width: str) -> str | None:
    """Numba's CPU features for 512-bit vectors: ``features`` (the host's, as Numba flattens them) with LLVM's
    preference for 256-bit vectors turned off; None where the CPU has no AVX-512, ``width`` (REFLOSS_VECTOR_WIDTH)
    is not "auto" or "512", or it is "auto" and the CPU (``cpu_name``, LLVM's name) is one of NARROW_CPUS."""
    if width not in ("auto", "512") or "+avx512f" not in features.split(","):
        return None
    if width == "auto" and cpu_name in NARROW_CPUS:
        return None
    return features + ",-prefer-256-bit"


def host_wide(config) -> str | None:
    """:func:`wide` of this host as Numba's configuration module ``config`` sees it: Numba's host features
    (``numba.core.codegen.get_host_cpu_features``: LLVM's, the ``avx`` ones off where ``config.ENABLE_AVX`` is),
    None where the user set Numba's CPU name or features."""
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return None
    import llvmlite.binding as ll  # (Numba's configuration module has imported it)

    try:
        features = ll.get_host_cpu_features()
    except RuntimeError:
        return None
    if not config.ENABLE_AVX:
        for k in features:
            if k.startswith("avx"):
                features[k] = False
    return wide(features.flatten(), ll.get_host_cpu_name(), VECTOR_WIDTH)


def _apply(config) -> None:
    """Set the features in Numba's configuration module ``config``; never an error (Numba's import goes on)."""
    global APPLIED
    try:
        value = host_wide(config)
    except Exception:  # noqa: BLE001 (a setting for speed: Numba's import must not fail on it)
        return
    if value is not None:
        config.CPU_FEATURES = APPLIED = value


class _Loader:
    """Numba's configuration module's own loader, the features set once it has run."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _apply(module)
        _remove_finder()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Finder:
    """A ``sys.meta_path`` finder for ``numba.core.config`` alone: the spec the finders after it give, its loader
    wrapped (:class:`_Loader`, which removes this finder from ``sys.meta_path`` once the module has run: a lookup
    without an import, ``importlib.util.find_spec``, leaves it in place; and it is not removed while importlib
    iterates over the list)."""

    def find_spec(self, name, path, target=None):
        if name != "numba.core.config":
            return None
        after = sys.meta_path[sys.meta_path.index(self) + 1:] if self in sys.meta_path else list(sys.meta_path)
        for finder in after:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def arrange() -> None:
    """Make the setting now (Numba's configuration imported) or when Numba's configuration is imported."""
    config = sys.modules.get("numba.core.config")
    if config is not None:
        _apply(config)
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
