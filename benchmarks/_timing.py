"""Shared timing helper for the benchmark scripts."""
import time


def best_ms(fn, repeat: int) -> float:
    """Best of ``repeat`` timed calls, in milliseconds, after one warm-up call (compilation)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3
