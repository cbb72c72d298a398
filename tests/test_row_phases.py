"""The row losses' CPU drivers run a chunk of rows phase by phase (refloss/_derive/row_phases.py): each row's
statements are the row kernel's own, so every output is the scalar row kernel's, row by row, bit for bit.

Checked here: the drivers of softmax cross-entropy (one-hot, soft and class-index targets) and DFL against
their scalar row kernels (refloss/_generated/<loss>.py, compiled here) called row by row, at row counts on both
sides of a chunk's end, with bad rows among them (their count returned), and the parallel drivers (above
SERIAL_BELOW rows) against the block function on the calling thread; the arrays that keep a value between
phases have the type Numba gives that value in the scalar kernel; and the phase split itself on small kernels
(the heavy segment, a phase a loop before it, what crosses a phase, the constant initialisations that move, a name
of unknown type, an assigned parameter and a loop's `else` refused; a loop kept with the one before where its own
phase would carry a name of unknown type, a name written in two phases and maybe not in the later one (in a loop's
body, or as a loop's variable), or share the value kernel's work row).
"""
import importlib

import numpy as np
import pytest
from numba import njit

from refloss._derive import row_phases
from refloss._numba_options import CPU_OPTIONS, ROW_CHUNK, SERIAL_BELOW

ROWS = (1, ROW_CHUNK - 1, ROW_CHUNK, ROW_CHUNK + 1, 3 * ROW_CHUNK + 5)
PRECISIONS = (("f64", np.float64), ("f32", np.float32))


def _same(a, b) -> bool:
    """Bit for bit (the sign of zero too); a NaN equal to any NaN (its sign and payload are not results)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return a[~np.isnan(a)].tobytes() == b[~np.isnan(b)].tobytes()


def _scalar(loss: str, name: str):
    """The scalar row kernel, compiled (it returns the value as a Python float: the tests cast it back)."""
    return njit(**{k: v for k, v in CPU_OPTIONS.items() if k != "cache"})(
        getattr(importlib.import_module(f"refloss._generated.{loss}"), name))


def _softmax_rows(rng, n: int, c: int, dt):
    z = rng.normal(0, 3, (n, c)) * 10.0 ** rng.uniform(-2, 2, (n, 1))
    y = rng.random((n, c)) * (rng.random((n, c)) < 0.5)
    y[::3] = 0.0
    y[::3, 0] = 1.0
    if n > 4:
        z[1, 0], z[2, -1], y[3, 0] = np.nan, np.inf, 1.5  # bad rows: their count is returned
    return z.astype(dt), y.astype(dt)


def _dfl_rows(rng, n: int, c: int, dt):
    z = rng.normal(0, 3, (n, c))
    t = rng.uniform(0, c - 1, n)
    t[::4] = np.round(t[::4])
    if n > 4:
        z[1, 0], t[2], t[3] = np.nan, c + 0.5, -0.25
    return z.astype(dt), t.astype(dt)


def _bad_rows(x, t, high) -> int:
    bad = ~np.isfinite(x).all(axis=1) | ~np.isfinite(t if t.ndim == 1 else t.sum(axis=1))
    return int((bad | ((t < 0) | (t > high)).reshape(len(x), -1).any(axis=1)).sum())


@pytest.mark.parametrize("prec, dt", PRECISIONS)
def test_softmax_drivers_equal_the_row_kernel_row_by_row(prec, dt):
    """Every output of softmax cross-entropy's drivers (value; value and gradients, divided by 3; the
    class-index twins) is its scalar row kernel's on the same row, bit for bit, at 1 to 3 chunks and more
    rows, rows of 1 to 33 classes, label smoothing 0, 0.1 and 1; the count of bad rows is theirs."""
    from refloss._generated import softmax_cross_entropy_cpu as cpu

    vag = _scalar("softmax_cross_entropy", f"value_and_grad_{prec}")
    work = _scalar("softmax_cross_entropy", f"value_work_{prec}")
    vag_k = _scalar("softmax_cross_entropy", f"value_and_grad_index_{prec}")
    work_k = _scalar("softmax_cross_entropy", f"value_work_index_{prec}")
    rng = np.random.default_rng(3)
    for n in ROWS:
        for c in (1, 2, 5, 8, 33):
            x, y = _softmax_rows(rng, n, c, dt)
            k = rng.integers(0, c, n)
            for ls in (0.0, 0.1, 1.0):
                args, three = (dt(ls),), dt(3)
                out, d_x, d_y = np.empty(n, dt), np.empty_like(x), np.empty_like(y)
                bad = getattr(cpu, f"value_and_grad_{prec}")(x, y, out, d_x, d_y, three, *args)
                assert bad == _bad_rows(x, y, 1.0)
                value = np.empty(n, dt)
                assert getattr(cpu, f"value_{prec}")(x, y, value, *args) == bad
                out_k, d_xk, value_k = np.empty(n, dt), np.empty_like(x), np.empty(n, dt)
                getattr(cpu, f"value_and_grad_index_{prec}")(x, k, out_k, d_xk, three, *args)
                getattr(cpu, f"value_index_{prec}")(x, k, value_k, *args)
                row = np.empty(c, dt)
                for i in range(n):
                    e_x, e_y = np.empty(c, dt), np.empty(c, dt)
                    assert _same(out[i], dt(vag(x[i], y[i], e_x, e_y, three, *args))), (n, c, ls, i)
                    assert _same(d_x[i], e_x) and _same(d_y[i], e_y), (n, c, ls, i)
                    assert _same(value[i], dt(work(x[i], y[i], row, *args))), (n, c, ls, i)
                    e_xk = np.empty(c, dt)
                    assert _same(out_k[i], dt(vag_k(x[i], k[i], e_xk, three, *args))), (n, c, ls, i)
                    assert _same(d_xk[i], e_xk), (n, c, ls, i)
                    assert _same(value_k[i], dt(work_k(x[i], k[i], row, *args))), (n, c, ls, i)


@pytest.mark.parametrize("prec, dt", PRECISIONS)
def test_dfl_drivers_equal_the_row_kernel_row_by_row(prec, dt):
    """DFL's drivers against its scalar row kernel, row by row, bit for bit: rows of 2 to 33 bins, clamps
    None (no clamp), 0, 1 and C - 1.5, targets on bins and between them, bad rows counted."""
    import refloss as rl
    from refloss._generated import dfl_loss_cpu as cpu

    vag = _scalar("dfl_loss", f"value_and_grad_{prec}")
    work = _scalar("dfl_loss", f"value_work_{prec}")
    rng = np.random.default_rng(4)
    for n in ROWS:
        for c in (2, 5, 17, 33):
            x, t = _dfl_rows(rng, n, c, dt)
            for clamp in (None, 0.0, 1.0, c - 1.5):
                args, three = rl.dfl_loss.kernel_args({"clamp": clamp}, prec), dt(3)
                out, d_x, d_t = np.empty(n, dt), np.empty_like(x), np.empty_like(t)
                bad = getattr(cpu, f"value_and_grad_{prec}")(x, t, out, d_x, d_t, three, *args)
                assert bad == _bad_rows(x, t, c - 1)
                value = np.empty(n, dt)
                assert getattr(cpu, f"value_{prec}")(x, t, value, *args) == bad
                row = np.empty(c, dt)
                for i in range(n):
                    e_x, e_t = np.empty(c, dt), np.empty(1, dt)
                    assert _same(out[i], dt(vag(x[i], t[i], e_x, e_t, three, *args))), (n, c, clamp, i)
                    assert _same(d_x[i], e_x) and _same(d_t[i], e_t[0]), (n, c, clamp, i)
                    assert _same(value[i], dt(work(x[i], t[i], row, *args))), (n, c, clamp, i)


def test_parallel_drivers_equal_the_serial_ones():
    """Above SERIAL_BELOW rows the drivers run blocks in parallel: the same outputs as the block function
    over all rows on the calling thread, and the same count of bad rows."""
    import refloss as rl
    from refloss._generated import dfl_loss_cpu, softmax_cross_entropy_cpu

    rng = np.random.default_rng(5)
    n = SERIAL_BELOW + 3 * ROW_CHUNK + 7
    for prec, dt in PRECISIONS:
        x, y = _softmax_rows(rng, n, 8, dt)
        got = [np.empty(n, dt), np.empty_like(x), np.empty_like(y)]
        serial = [np.empty(n, dt), np.empty_like(x), np.empty_like(y)]
        bad = softmax_cross_entropy_cpu.__dict__[f"value_and_grad_{prec}"](x, y, *got, dt(1), dt(0.1))
        assert bad == softmax_cross_entropy_cpu.__dict__[f"_value_and_grad_block_{prec}"](
            x, y, *serial, dt(1), dt(0.1), 0, n) == _bad_rows(x, y, 1.0)
        assert all(_same(a, b) for a, b in zip(got, serial))
        x, t = _dfl_rows(rng, n, 17, dt)
        got, serial = [np.empty(n, dt)], [np.empty(n, dt)]
        args = rl.dfl_loss.kernel_args({}, prec)
        assert dfl_loss_cpu.__dict__[f"value_{prec}"](x, t, *got, *args) == \
            dfl_loss_cpu.__dict__[f"_value_block_{prec}"](x, t, *serial, *args, 0, n) == _bad_rows(x, t, 16)
        assert _same(got[0], serial[0])


KERNEL = '''def k(row, p):
    m = -math.inf
    for j in range(row.shape[0]):
        m = max(m, row[j])
    s = 0.0
    for j in range(row.shape[0]):
        s += math.exp(row[j] - m)
    l = math.log1p(s - 1.0)
    value = 0.0
    w = l * p
    for j in range(row.shape[0]):
        value += w + (m - row[j])
    return value
'''


def test_the_split_finds_the_heavy_segment_and_what_crosses_it():
    """The segment between the second and third loops holds libm's log1p: it is a phase of its own; its
    constant initialisation (value = 0.0, read only by the last loop) moves to the last phase, so that no
    accumulator crosses; each loop before it is a phase with the statements before it (the maximum's, the
    sum's); m crosses from the first phase, s from the second, w (from l) from the log's; the parts are the
    kernel's own lines."""
    ph = row_phases.split(KERNEL, lambda name: name in {"m", "s", "l", "w"})
    assert ph.params == ("row", "p") and ph.result == "value" and len(ph.parts) == 4
    assert ph.parts[0] == KERNEL.splitlines()[1:4] and ph.parts[1] == KERNEL.splitlines()[4:7]
    assert ph.parts[2] == ["    l = math.log1p(s - 1.0)", "    w = l * p"]
    assert ph.parts[3][0] == "    value = 0.0" and ph.parts[3][-1] == "        value += w + (m - row[j])"
    assert ph.loads == ((), ("m",), ("s",), ("m", "w")) and ph.stores == (("m",), ("s",), ("w",), ())
    assert all(ln in KERNEL.splitlines() for part in ph.parts for ln in part)


WORK_KERNEL = '''def k(row, work, p):
    m = -math.inf
    for j in range(row.shape[0]):
        m = max(m, row[j])
    for j in range(row.shape[0]):
        work[j] = math.exp(row[j] - m)
    s = 0.0
    for j in range(row.shape[0]):
        s += work[j]
    l = math.log1p(s - 1.0)
    value = 0.0
    w = l * p
    for j in range(row.shape[0]):
        value += w * work[j] + (m - row[j])
    return value
'''


def test_the_loops_before_the_log_are_phases_where_that_carries_nothing_more():
    """A loop before the heavy segment stays in its predecessor's phase where a phase of its own would carry a
    name the caller has no type for (q), one written in two phases and in the later one maybe not (x: a loop's
    body may not run), or would share the value kernel's one work row between two phases (it holds one row at a
    time); where the heavy segment's own phases would share that row, the split raises."""
    q = KERNEL.replace("    m = -math.inf\n", "    q = 2.0\n    m = -math.inf\n").replace(
        "math.exp(row[j] - m)", "math.exp(row[j] - m) * q")
    assert len(row_phases.split(q, lambda name: True).parts) == 4
    ph = row_phases.split(q, lambda name: name != "q")
    assert len(ph.parts) == 3 and ph.loads == ((), ("s",), ("m", "w"))
    x = KERNEL.replace("    m = -math.inf\n", "    x = 0.0\n    m = -math.inf\n").replace(
        "        s += math.exp(row[j] - m)\n", "        s += math.exp(row[j] - m)\n        x = row[j]\n").replace(
        "math.log1p(s - 1.0)", "math.log1p(s - 1.0) + x")
    assert len(row_phases.split(x, lambda name: True).parts) == 3
    target = KERNEL.replace("    m = -math.inf\n", "    x = 0.0\n    m = -math.inf\n").replace(
        "    for j in range(row.shape[0]):\n        s += ", "    for x in range(row.shape[0]):\n        s += ").replace(
        "math.exp(row[j] - m)", "math.exp(row[x] - m)").replace("math.log1p(s - 1.0)", "math.log1p(s - 1.0) + x")
    assert len(row_phases.split(target, lambda name: True).parts) == 3  # (a row of no elements: x stays 0.0)
    tail = WORK_KERNEL.replace("w * work[j]", "w")
    assert len(row_phases.split(tail, lambda name: True).parts) == 5
    ph = row_phases.split(tail, lambda name: True, shared={"work"})
    assert len(ph.parts) == 4 and ph.parts[1] == tail.splitlines()[4:9]
    with pytest.raises(ValueError, match=r"share the one row \['work'\]"):
        row_phases.split(WORK_KERNEL, lambda name: True, shared={"work"})


def test_the_split_refuses_what_it_cannot_carry_and_keeps_a_light_kernel_whole():
    """A name the caller has no type for; a parameter assigned (its new value would not reach the later phases,
    and would be assigned again a row); a loop's `else` (the liveness does not read it). A kernel without a heavy
    segment is one phase, its own lines."""
    with pytest.raises(ValueError, match=r"would carry \['s'\]"):
        row_phases.split(KERNEL, lambda name: name != "s")
    with pytest.raises(ValueError, match=r"assigns its parameters \['p'\]"):
        row_phases.split(KERNEL.replace("    w = l * p\n", "    p = p * 2.0\n    w = l * p\n"), lambda name: True)
    with pytest.raises(ValueError, match="loop has an `else`"):
        row_phases.split(KERNEL.replace("    return value\n", "    for q in range(0):\n        value = 1.0\n"
                                        "    else:\n        value = m\n    return value\n"), lambda name: True)
    light = KERNEL.replace("    l = math.log1p(s - 1.0)\n", "    l = s - 1.0\n")
    ph = row_phases.split(light, lambda name: False)
    assert len(ph.parts) == 1 and ph.loads == ((),) and ph.stores == ((),)
    assert ph.parts[0] == light.splitlines()[1:-1]


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "dfl_loss"])
def test_kept_arrays_have_the_types_of_their_values_in_the_scalar_kernel(loss):
    """Each `_keep_<name>` array of a block function is of the type Numba gives <name> in the scalar row kernel
    (a float64 kept in a float32 array would round it: the class-index kernels' window start, a class index
    times a float, is a float64 in the float32 kernels)."""
    import re

    import refloss as rl

    cpu = importlib.import_module(f"refloss._generated.{loss}_cpu")
    source = open(cpu.__file__).read()
    checked = 0
    for prec, dt in PRECISIONS:
        row, args = np.zeros(4, dt), rl.loss_named(loss).kernel_args({}, prec)
        target = row if loss == "softmax_cross_entropy" else dt(1.5)
        d_target = np.zeros(4, dt) if loss == "softmax_cross_entropy" else np.zeros(1, dt)
        calls = {"value": ("value_work", (row, target, np.zeros(4, dt))),
                 "value_and_grad": ("value_and_grad", (row, target, np.zeros(4, dt), d_target, dt(1)))}
        if loss == "softmax_cross_entropy":
            calls.update({"value_index": ("value_work_index", (row, np.int64(1), np.zeros(4, dt))),
                          "value_and_grad_index": ("value_and_grad_index", (row, np.int64(1), np.zeros(4, dt), dt(1)))})
        for fn, (scalar_name, inputs) in calls.items():
            kernel = _scalar(loss, f"{scalar_name}_{prec}")
            kernel(*inputs, *args)
            types = {}
            for var, ty in kernel.overloads[kernel.signatures[0]].type_annotation.typemap.items():
                types.setdefault(var.split(".")[0], set()).add(str(ty))
            block = source[source.index(f"def _{fn}_block_{prec}("):]
            block = block[:block.index("\n\n\n")]
            kept = re.findall(r"_keep_(\w+) = _empty\(ROW_CHUNK, _(f32|f64)\)", block)
            assert kept, (fn, prec)
            for name, kind in kept:
                assert types[name] == {"float64" if kind == "f64" else "float32"}, (fn, prec, name, types[name])
                checked += 1
    assert checked > 20
