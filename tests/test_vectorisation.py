"""The CPU drivers' kernel loops vectorise (issue 16): LLVM's loop vectoriser reports GIoU's
value-and-gradient loop as vectorised in float64 and float32, float32 at least as wide
(``benchmarks/vectorisation.py``, run afresh in a subprocess: a kernel loaded from Numba's cache
is not compiled, and reports nothing). A change to the code generator that puts a call, a
run-time stride or a wide reduction back into the loop makes it scalar and fails here."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_giou_kernel_loop_vectorises():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vectorisation.py"), "--loss", "giou_loss"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith("| giou_loss |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    widths = {prec: [int(w) for w in cell.split(", ") if w != "none"] for prec, cell in zip(("f64", "f32"), cells[1:3])}
    assert widths["f64"] and widths["f32"], f"a kernel loop did not vectorise: {row}"
    assert max(widths["f32"]) >= max(widths["f64"]) >= 2, row


def test_rotated_kernel_loop_vectorises():
    """GWD's loop (sines and cosines printed, square roots in branches, four arrays at a stride of 5): before the
    printed trig functions, the unsigned index, ``_sqrt`` and the raised SCEV limit, its gradient loop kept 40
    packed instructions against 1,343 scalar ones (only the small loops vectorised); after, 524 (float64)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vectorisation.py"), "--loss", "gwd_loss"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    row = next(line for line in run.stdout.splitlines() if line.startswith("| gwd_loss |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for prec, cell in zip(("f64", "f32"), cells[3:5]):
        packed, _ = (int(v) for v in cell.split(" / "))
        assert packed >= 200, f"GWD's {prec} kernel loop did not vectorise: {row}"
