"""Loading a user's function named on the command line (``refloss verify``, ``refloss sweep
--impl``, and sweep workers, which get the name rather than the function)."""
from __future__ import annotations

import os
import sys


class LoadError(ValueError):
    """The function cannot be loaded: the message is one line for the command line."""


def load_callable(spec: str):
    """``package.module:function`` or ``path/to/file.py:function`` -> the function.  The current
    directory is importable, and a file's own folder (its neighbours import), as with pytest."""
    import importlib
    import importlib.util
    from pathlib import Path

    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise LoadError(f"{spec!r}: give module:function or file.py:function")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_file():
            raise LoadError(f"cannot load {spec}: no file {mod_name}")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        ispec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(ispec)
        sys.modules.setdefault(path.stem, module)
        where = mod_name
        run = lambda: ispec.loader.exec_module(module)  # noqa: E731
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        where, module = mod_name, None

        def run():
            nonlocal module
            module = importlib.import_module(mod_name)
    try:
        run()
    except ModuleNotFoundError as e:
        raise LoadError(f"cannot load {spec}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing: say so in one line
        raise LoadError(f"cannot load {spec}: {where} raised {type(e).__name__}: {e}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LoadError(f"cannot load {spec}: {where} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(f"{spec} is not a function")
    return obj
