"""`import refloss` is light: no sympy/scipy/mpmath/numba(.cuda), nothing compiled."""
import json
import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, json, refloss\n"
        "mods = ['sympy', 'scipy', 'mpmath', 'numba', 'numba.cuda', 'torch']\n"
        "print(json.dumps({m: m in sys.modules for m in mods}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not any(loaded.values()), f"import refloss pulled in {[m for m, v in loaded.items() if v]}"


def test_first_use_imports_numba_but_not_cuda():
    code = (
        "import sys, json, numpy as np, refloss\n"
        "refloss.smooth_l1(np.ones(3), np.zeros(3))\n"
        "print(json.dumps({m: m in sys.modules for m in ['numba', 'numba.cuda', 'mpmath', 'sympy']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert loaded == {"numba": True, "numba.cuda": False, "mpmath": False, "sympy": False}


def _refloss_imports():
    """{module: set of refloss modules it imports, anywhere in the file} for the hand-written modules."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "refloss"
    graph = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        if "_generated" in rel.parts:
            continue
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = mod if rel.name == "__init__" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
                if node.level and not node.module:  # from . import a, b: the submodules
                    deps |= {f"{base}.{a.name}" for a in node.names}
                else:
                    deps.add(target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[mod] = {d for d in deps if d == "refloss" or d.startswith("refloss.")} - {mod}
    return graph


def test_imports_go_one_way():
    """No import cycle among refloss's modules (the array layer below the losses, the backends
    below nothing of the API), and no module imports the package root."""
    graph = _refloss_imports()
    assert not {m for m, deps in graph.items() if "refloss" in deps and m != "refloss"}, "imports of the package root"
    assert "refloss._loss" not in graph["refloss._cuda"] and "refloss._loss" not in graph["refloss._arrays"]
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path + [m])
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])
