"""Built-in adapters for other libraries' losses, and the conformance matrix.

>>> from refloss import peers
>>> "torchvision" in peers.PEERS and "keras-cv" in peers.NOT_INSTALLABLE
True

Each peer module (``refloss.peers._<peer>``) lists its :class:`PeerCheck` entries: a peer
function, called so that it returns per-element losses in refloss's input convention, and
the refloss loss with the parameters the peer's documentation promises.  Nothing is imported
until a peer is asked for; a peer that is not installed reports so.

``run(peer)`` runs :func:`refloss.testing.check_loss` on every entry, three ways: float64 and
float32 on the standard battery (values and gradients), and float64 on the convention points
(ties, touching and degenerate boxes, kinks).

A peer module may also list ``DETECTOR_CHECKS``: :class:`DetectorPeerCheck` entries for whole
detector losses and anchor matching (torchvision's RetinaNet and SSD ``compute_loss``, its
``Matcher``), run by ``run_detectors(peer)`` on a battery of detection batches
(``refloss.peers._detection``): total, parts and gradients, or matched indices.

``refloss verify PEER`` prints both; ``refloss conformance -o docs/conformance.md`` writes the
matrix for every installed peer.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ._detection import DetectorPeerCheck, DetectorResult

__all__ = ["PEERS", "NOT_INSTALLABLE", "PeerCheck", "PeerResult", "DetectorPeerCheck", "DetectorResult", "available",
           "version", "checks", "detector_checks", "run", "run_detectors"]

# peer name -> (adapter module, distribution whose version is reported, what to pip install)
PEERS = {
    "torch": ("refloss.peers._torch", "torch", "torch"),
    "torchvision": ("refloss.peers._torchvision", "torchvision", "torch torchvision"),
    "fvcore": ("refloss.peers._fvcore", "fvcore", "torch fvcore"),
    "optax": ("refloss.peers._optax", "optax", "jax optax"),
    "ultralytics": ("refloss.peers._ultralytics", "ultralytics", "torch ultralytics"),
    "mmdetection": ("refloss.peers._mmdet", "mmdet", 'torch mmdet==3.3.0 mmengine "mmcv-lite<2.2"'),
    "mmrotate": ("refloss.peers._mmrotate", "mmrotate", 'torch mmrotate==1.0.0rc1 mmdet==3.3.0 mmengine "mmcv-lite<2.2"'),
}

# tried, and not built in: why (shown in docs/conformance.md)
NOT_INSTALLABLE: dict[str, str] = {
    "keras-cv": (
        "keras-cv 0.9.0 installs (with keras 3 and JAX) but does not import without TensorFlow (tensorflow-cpu "
        "2.21: 2.1 GB with it) even on the JAX backend, and its box losses convert boxes to float32 whatever "
        "the dtype, so a float64 comparison only measures float32 rounding. Not built in; `refloss verify "
        "module:function --framework jax` checks it where it is installed."),
}


@dataclass
class PeerCheck:
    peer: str
    function: str  # the peer call, as a user would write it
    loss: str  # the refloss loss it should equal
    params: dict  # refloss parameters of that loss
    make: Callable  # () -> the implementation (imports the peer)
    framework: str = "torch"
    note: str = ""  # what the peer's documentation promises, where it is not obvious
    known: str = ""  # the explanation of a known discrepancy (docs/peers.md), where there is one


@dataclass
class PeerResult:
    check: PeerCheck
    reports: dict = field(default_factory=dict)  # "float64" / "float32" / "edge" -> Report
    error: str = ""  # the peer raised

    def status(self, key: str) -> str:
        """For one run: "agrees", "convention" (only gradients at convention points differ),
        "differs", "error" (the peer raised) or "-" (nothing to check)."""
        if self.error:
            return "error"
        r = self.reports.get(key)
        if r is None or not r.points:
            return "-"
        return "agrees" if r.ok else ("convention" if r.convention_only else "differs")

    @property
    def ok(self) -> bool:
        """Agrees everywhere but, at most, in the one-sided derivative at convention points."""
        return all(self.status(key) in ("agrees", "convention", "-") for key, _, _ in RUNS)

    @property
    def diagnoses(self) -> list:
        """The diagnoses ``[(code, text)]`` of the first run that differs (else of a convention
        difference)."""
        order = sorted(self.reports.values(), key=lambda r: r.convention_only)
        return next((r.diagnoses for r in order if not r.ok and r.diagnoses), [])

    @property
    def diagnosis(self) -> str:
        """The text of the first of :attr:`diagnoses` ("" if none)."""
        return self.diagnoses[0][1] if self.diagnoses else ""

    def codes(self, key: str) -> list:
        """The diagnosis codes of one run ([] where it agrees)."""
        r = self.reports.get(key)
        return [] if r is None or r.ok else list(r.codes)


def requirement(import_name: str, pip: str):
    """A peer module's ``require()``: import ``import_name`` or raise ImportError with the pip command."""
    def require():
        try:
            importlib.import_module(import_name)
        except ImportError as e:
            raise ImportError(f"peer {import_name.split('.')[0]}: pip install {pip}") from e

    return require


def function_of(module: str, name: str, **kwargs):
    """A PeerCheck ``make``: imports ``module`` when called, returns ``module.name`` with ``kwargs`` bound."""
    def make():
        from functools import partial

        return partial(getattr(importlib.import_module(module), name), **kwargs)

    return make


def _module(peer: str):
    if peer not in PEERS:
        known = ", ".join(PEERS)
        raise ValueError(f"peer: unknown {peer!r}; built-in peers: {known} (or give module:function --loss NAME)")
    return importlib.import_module(PEERS[peer][0])


def available(peer: str) -> bool:
    """Whether the peer's packages import."""
    try:
        _module(peer).require()
        return True
    except ImportError:
        return False


def version(peer: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version(PEERS[peer][1])
    except PackageNotFoundError:
        return "not installed"


def checks(peer: str) -> list:
    """The peer's :class:`PeerCheck` entries (does not import the peer)."""
    return list(_module(peer).CHECKS)


def detector_checks(peer: str) -> list:
    """The peer's :class:`DetectorPeerCheck` entries (none for most peers; does not import the peer)."""
    return list(getattr(_module(peer), "DETECTOR_CHECKS", ()))


def _selected(check, only) -> bool:
    return not only or check.loss in only or check.function in only


RUNS = (("float64", "standard", "float64"), ("float32", "standard", "float32"), ("edge", "edge", "float64"))


def run(peer: str, only=None, progress=None) -> list:
    """Check every entry of ``peer`` (or those whose loss or function is in ``only``)."""
    from .. import testing

    mod = _module(peer)
    mod.require()  # ImportError with the install hint if absent
    results = []
    for c in mod.CHECKS:
        if not _selected(c, only):
            continue
        res = PeerResult(c)
        try:
            impl = c.make()
            for key, cases, dtype in RUNS:
                res.reports[key] = testing.check_loss(impl, c.loss, framework=c.framework, cases=cases, dtype=dtype,
                                                      **c.params)
        except Exception as e:  # noqa: BLE001 - a peer that raises is a result, not a crash
            res.error = f"{type(e).__name__}: {e}"
        results.append(res)
        if progress:
            progress(res)
    return results


def run_detectors(peer: str, only=None, progress=None) -> list:
    """Run every :class:`DetectorPeerCheck` of ``peer`` (or those whose loss or function is in
    ``only``) on the detection battery: a list of :class:`DetectorResult`."""
    from ._detection import run_check

    mod = _module(peer)
    mod.require()
    results = []
    for c in getattr(mod, "DETECTOR_CHECKS", ()):
        if _selected(c, only):
            results.append(run_check(c))
            if progress:
                progress(results[-1])
    return results


def summary(res: PeerResult) -> str:
    """One cell per run: "agrees" or "differs (worst rel ..., at case)"."""
    return " | ".join(_cell(res, key) for key, _, _ in RUNS)


def _cell(res: PeerResult, key: str) -> str:
    status = res.status(key)
    if status in ("agrees", "error", "-"):
        return status
    r = res.reports[key]
    w = r.worst
    at = ", ".join(sorted({f.case for f in r.failures}))
    if status == "convention":
        return f"gradient convention at {at}"
    bad = len({f.index for f in r.failures})
    return f"differs at {bad} of {r.points} points, worst {w.component} at {w.case} (rel {w.rel:.2g})"


def format_results(peer: str, results: list, detectors: list = ()) -> str:
    """The text ``refloss verify PEER`` prints (``detectors``: the :func:`run_detectors` results)."""
    lines = [f"refloss verify {peer} ({PEERS[peer][1]} {version(peer)}): {len(results) + len(detectors)} functions"]
    if results:
        lines[0] += "; columns: float64 | float32 | float64 at convention points (ties, touching, kinks)"
    width = max((len(r.check.function) for r in results), default=10)
    for r in results:
        target = f"refloss.{r.check.loss}({', '.join(f'{k}={v!r}' for k, v in r.check.params.items())})"
        lines.append(f"  {'ok  ' if r.ok else 'DIFF'} {r.check.function:<{width}}  vs {target}")
        lines.append(f"       {r.error or summary(r)}")
        if not r.ok:
            lines += [f"       diagnosis [{code}]: {text}" for code, text in r.diagnoses]
        if r.check.known:
            lines.append(f"       known: {r.check.known}")
    if detectors:
        lines += format_detectors(detectors)
    everything = [*results, *detectors]
    bad = sum(not r.ok for r in everything)
    known = sum(getattr(r, "status", "") == "known" for r in detectors)
    lines.append(f"{len(everything) - bad} agree, {bad} differ" + (f" ({known} of them known and traced)" * bool(known)))
    return "\n".join(lines)


def format_detectors(results: list) -> list:
    """``refloss verify PEER``'s lines for the detector checks."""
    from ._detection import RTOL, summary as detector_summary

    lines = [f"  whole detector losses and matching, float64 on {len(_battery_names())} detection batches "
             f"(total, parts, gradients; bar rel {RTOL:g}):"]
    label = {"agrees": "ok  ", "known": "KNOWN", "differs": "DIFF", "error": "DIFF"}
    for r in results:
        target = f"refloss.{r.check.loss}({', '.join(f'{k}={v!r}' for k, v in r.check.params.items())})"
        lines.append(f"  {label[r.status]:<4} {r.check.function}  vs {target}")
        lines.append(f"       {detector_summary(r)}")
        if r.check.known and r.status != "agrees":
            lines.append(f"       known: {r.check.known}")
    return lines


def _battery_names() -> list:
    from ._detection import battery

    return [b[0] for b in battery()]
