"""SymPy derivations of the refloss losses; ``python -m derivations`` regenerates
``refloss/_generated/`` and ``docs/derivations/`` from them.

One module per loss, ``derivations/<name>.py`` with ``derive() -> LossSpec``; nothing else
lists the losses: :func:`names` finds them (files starting with ``_`` are shared helpers).
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def names() -> list:
    """Every derivation module's name, sorted."""
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
