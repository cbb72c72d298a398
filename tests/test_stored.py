"""The stored reference values (refloss/reference_values/) are what the 50-digit oracle gives:
every row of the table is recomputed live (mpmath) and compared with the stored one — the
drift test of `python -m refloss._stored`."""
import numpy as np
import pytest

from refloss import _stored
from refloss._families import FAMILIES
from refloss._loss import loss_named
from refloss._reference import REFERENCES


@pytest.mark.parametrize("name", list(REFERENCES))
def test_stored_references_equal_live_ones(name):
    # each loss's rows computed in its own test (in-process), so that pytest-xdist spreads the
    # losses over the workers; a module fixture computed all of them in every worker that ran one
    for _, index, dtype in _stored._tasks([name]):
        stored = _stored.stored_row(name, index, dtype)
        loss = loss_named(name)
        names, inputs = FAMILIES[loss.info.family].battery(loss, dict(REFERENCES[name].param_sets[index]),
                                                            np.dtype(dtype), _stored.N_RANDOM)
        where = f"{name} #{index} {dtype}: run `python -m refloss._stored --only {name}`"
        groups, group = np.unique(np.asarray(names, dtype=str), return_inverse=True)
        np.testing.assert_array_equal(stored["groups"], groups, err_msg=where)
        np.testing.assert_array_equal(stored["group"], group, err_msg=where)
        # The battery's points come from NumPy's exp, power, sin...: their last bit depends on the
        # CPU's SIMD paths (AVX-512 gives other roundings than AVX2), so a live battery may differ
        # from the stored one by an ULP here and there; more is a changed battery. The exact values
        # are recomputed at the stored points (refloss verify measures there).
        for a, b in zip(_stored.inputs_of(stored), inputs):
            assert a.shape == b.shape, where + " (the battery changed)"
            scale = np.abs(a).max(axis=-1, keepdims=True) if a.ndim > 1 else np.abs(a)
            off = np.abs(a.astype(float) - b) > 64 * np.finfo(a.dtype).eps * scale  # a box's centre +- size/2
            assert not off.any(), f"{where} (the battery changed): {a[off][:3]} stored, {b[off][:3]} now"
        row = _stored.exact_row(name, index, dtype, names, _stored.inputs_of(stored))
        assert sorted(stored) == sorted(row), f"{name} #{index} {dtype}: fields differ"
        np.testing.assert_array_equal(stored["hi"], row["hi"], err_msg=where)
        for key in ("lo", "floor"):
            if key in row:
                np.testing.assert_array_equal(stored[key], row[key], err_msg=where)


def test_a_changed_parameter_set_is_reported_stale(monkeypatch):
    """Stored values made for other parameter sets are refused with the command that fixes them."""
    monkeypatch.setitem(REFERENCES, "l1", REFERENCES["l1"]._replace(param_sets=({}, {})))
    _stored._load.cache_clear()
    try:
        with pytest.raises(_stored.Stale, match="python -m refloss._stored --only l1"):
            _stored.stored_row("l1", 0, "float64")
    finally:
        _stored._load.cache_clear()


@pytest.mark.parametrize("name", list(REFERENCES))
def test_the_oracle_does_not_depend_on_the_global_mpmath_precision(name):
    """The 50-digit oracle sets its own precision: the stored rows (computed in fresh processes,
    mpmath's default 15 digits) equal rows computed with the global precision at 50 and at 8.
    Found: focal_l1_eiou_loss computed its Focal-L1 constants (e beta, ln beta) at the global
    precision, so its stored values were those of 15-digit constants (1 ULP off in 22% of them)."""
    import mpmath

    rows = []
    for dps in (8, 50):
        with mpmath.workdps(dps):
            rows.append(_stored.compute_row(name, 0, "float64", n_random=8))
    for key in rows[0]:
        np.testing.assert_array_equal(rows[0][key], rows[1][key], err_msg=f"{name}: {key}")
