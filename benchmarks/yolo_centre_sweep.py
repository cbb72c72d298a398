"""Every finite float32 t through yolo_decode's centre in cell 0, against the float64 kernel (docs/accuracy.md,
"The centre at the image's edge"):

    python benchmarks/yolo_centre_sweep.py scaled 2
    python benchmarks/yolo_centre_sweep.py v4 1.2

The float64 kernel evaluates the centre's cancelling sum in double-double (within 3.1 ULP64 of mpmath near every
root), far below a float32 ULP; prints the points, the worst error in float32 ULPs of the float64 result, and
where. About 4 minutes on 2 cores.
"""
import sys
import time

import numpy as np

import refloss as rl


def main(variant: str, s: float, chunk: int = 1 << 22) -> None:
    kw = {"scale_xy": s} if variant == "v4" else {}
    kw64 = {"scale_xy": float(np.float32(s))} if variant == "v4" else {}  # (the float32 kernel's parameter)
    worst, n, start_time = (0.0, None), 0, time.time()
    anchors, grid = np.ones((chunk, 2), np.float32), np.zeros((chunk, 2), np.float32)
    for start in range(0, 1 << 32, chunk):
        tx = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        ok = np.isfinite(tx)
        t = np.zeros((chunk, 4), np.float32)
        t[:, 0] = np.where(ok, tx, 0)
        b32 = rl.yolo_decode(t, anchors, grid, variant=variant, **kw)[:, 0].astype(np.float64)
        b64 = rl.yolo_decode(t.astype(np.float64), anchors.astype(np.float64), grid.astype(np.float64),
                             variant=variant, **kw64)[:, 0]
        ulp = np.spacing(np.abs(b64.astype(np.float32))).astype(np.float64)
        err = np.where(ok, np.abs(b32 - b64) / np.where(ulp == 0, 2.0**-149, ulp), 0)
        i = int(np.argmax(err))
        n += int(ok.sum())
        if err[i] > worst[0]:
            worst = (float(err[i]), float(tx[i]))
    print(f"{variant} scale_xy={s}: {n:,} points, worst {worst[0]:.3f} ULP32 at t = {worst[1]!r} "
          f"({time.time() - start_time:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 2.0)
