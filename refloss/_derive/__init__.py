"""The derivation toolkit (SymPy): specs and their checks, integration of gradient definitions,
automatic gradients of differentiation forms, code generation and derivation pages.

Used by ``python -m derivations`` (the project's own losses, one file each in ``derivations/``)
and by :mod:`refloss.design` (a user's loss from its gradient).  Needs SymPy (the ``derive``
extra); ``import refloss`` never imports it.
"""
