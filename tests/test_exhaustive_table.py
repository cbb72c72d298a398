"""docs/exhaustive.md's table re-checked: each swept row's worst point gives the error the table
states, and random slices of the bit patterns it covers give nothing larger.

The table is made by benchmarks/exhaustive_tables.py over all 2**32 float32 inputs (hours); this
test takes a few of its rows and a few thousand patterns each, so a kernel changed after the
table was made, or a table edited by hand, fails here.
"""
import random
import re
from pathlib import Path

import numpy as np
import pytest

from refloss import loss_named, sweep

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "exhaustive.md"
SLICE = 2**12  # patterns per random slice


def _table():
    from benchmarks.exhaustive_tables import runs

    text = PAGE.read_text()
    head = re.search(r"float32 bit patterns (0x[0-9a-f]+)\.\.(0x[0-9a-f]+) \(", text)
    assert head, "docs/exhaustive.md: the table's head line (its bit patterns) is missing"
    bits = (int(head.group(1), 16), int(head.group(2), 16) + 1)
    table, rows = runs(), []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 11 or not cells[0].isdigit() or cells[4] == "pending":
            continue
        k = int(cells[0])
        loss, params, target = table[k]
        assert cells[1] == loss, f"row {k}: the table says {cells[1]}, the reference table {loss}"
        grads = [float(v) for v in cells[6].split(" / ")]
        where = re.fullmatch(r"(\S+) at (\S+)", cells[7])
        rows.append(dict(k=k, loss=loss, params=params, target=target, value=float(cells[5]), grads=grads,
                         column=where and where.group(1), at=where and float(where.group(2))))
    return bits, rows


BITS, ROWS = _table()


def _within(got: float, stated: float) -> bool:
    """``got`` is what the table states, printed to 3 significant digits."""
    return float(f"{got:.3g}") == stated or abs(got - stated) <= 5e-3 * max(stated, 1e-300)


def test_the_table_has_swept_rows():
    assert ROWS, "docs/exhaustive.md: no swept row to re-check"


@pytest.mark.parametrize("row", random.Random(13).sample(ROWS, min(4, len(ROWS))), ids=lambda r: f"row{r['k']}")
def test_worst_point_and_random_slices_agree_with_the_table(row):
    common = dict(exhaustive=True, target=row["target"], workers=1)
    stated = {"value": row["value"], **dict(zip([f"d_{n}" for n in loss_named(row["loss"]).inputs], row["grads"]))}
    if row["column"] is not None:
        b = int(np.float32(row["at"]).view(np.uint32))
        at = sweep.run(row["loss"], row["params"], bits=(b, b + 1), **common)
        got = max(v for c, v in at.max_ulp.items() if v is not None)
        assert _within(got, max(stated.values())), (
            f"row {row['k']} ({row['loss']}): the worst point {row['at']!r} gives {at.max_ulp}, the table {stated}")
    rng = random.Random(row["k"])
    lo, hi = BITS
    for _ in range(2):
        start = rng.randrange(lo, hi - SLICE)
        r = sweep.run(row["loss"], row["params"], bits=(start, start + SLICE), **common)
        for c, v in r.max_ulp.items():
            assert v is None or v <= stated[c] * (1 + 1e-2) + 1e-12, (
                f"row {row['k']} ({row['loss']}): {c} {v} ULP in the patterns {start:#x}.. over the table's {stated[c]}")
