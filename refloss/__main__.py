"""``python -m refloss``: the ``refloss`` command."""
from .cli import main

raise SystemExit(main())
