"""rl.match_by_iou: hand-made matrices with known answers (bands, ties, the low-quality rule),
the edge cases where refloss decides (G = 0, A = 0, bad input), and conformance with
torchvision's det_utils.Matcher on random and tie-heavy matrices."""
import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import refloss as rl
from refloss import _matching

REPO = Path(__file__).resolve().parent.parent


def match(m, high, low, allow=False):
    out = rl.match_by_iou(m, high, low, allow_low_quality_matches=allow)
    assert out.dtype == np.int64 and out.shape == (np.shape(m)[1],)
    return out.tolist()


# --- the bands and their inclusivity -------------------------------------------------------------

def test_bands_low_inclusive_high_inclusive():
    # one gt; q < low: -1, low <= q < high: -2, q >= high: 0
    m = [[0.0, 0.39, 0.4, 0.45, 0.4999, 0.5, 0.9, 1.0]]
    assert match(m, 0.5, 0.4) == [-1, -1, -2, -2, -2, 0, 0, 0]


def test_equal_thresholds_have_no_ignore_band():
    m = [[0.49, 0.5, 0.51]]
    assert match(m, 0.5, 0.5) == [-1, 0, 0]


def test_best_gt_decides_the_band():
    # anchor 0: best 0.6 (gt 1) -> 1; anchor 1: best 0.45 (gt 0) -> ignored; anchor 2: best 0.3 -> background
    m = [[0.1, 0.45, 0.3],
         [0.6, 0.2, 0.0]]
    assert match(m, 0.5, 0.4) == [1, -2, -1]


def test_negative_and_above_one_qualities_are_compared_as_they_are():
    # the matrix is any quality (e.g. GIoU in [-1, 1]), not bounded to [0, 1]
    assert match([[-0.5, -0.1, 1.5]], 0.5, -0.2) == [-1, -2, 0]


def test_infinite_thresholds():
    m = [[0.0, 0.5, 1.0]]
    assert match(m, np.inf, 0.4) == [-1, -2, -2]
    assert match(m, 0.5, -np.inf) == [-2, 0, 0]
    assert match(m, np.inf, np.inf) == [-1, -1, -1]


# --- ties between ground truths -------------------------------------------------------------------

def test_tie_between_gts_goes_to_the_lowest_index():
    m = [[0.7, 0.2, 0.8],
         [0.7, 0.8, 0.8],
         [0.7, 0.8, 0.1]]
    assert match(m, 0.5, 0.4) == [0, 1, 0]
    # the same rule whichever row comes first
    assert match(np.array(m)[::-1], 0.5, 0.4) == [0, 0, 1]


def test_signed_zeros_tie():
    m = np.array([[0.0, -0.0], [-0.0, 0.0]])  # -0.0 == 0.0: a tie in each column, the first gt wins
    assert match(m, 0.0, 0.0) == [0, 0]
    assert match(m, 0.5, 0.0) == [-2, -2]
    assert match(m, 0.5, 0.4, allow=True) == [0, 0]


def test_a_tie_between_gts_within_the_ignore_band_is_ignored():
    assert match([[0.45, 0.1], [0.45, 0.2]], 0.5, 0.4) == [-2, -1]


# --- the low-quality rule ----------------------------------------------------------------------

def test_low_quality_restores_each_gts_best_anchor():
    # gt 0's best anchor is 1 (0.3, background); gt 1's is 2 (0.45, ignored); both come back
    m = [[0.1, 0.3, 0.0, 0.2],
         [0.0, 0.1, 0.45, 0.05]]
    assert match(m, 0.5, 0.4) == [-1, -1, -2, -1]
    assert match(m, 0.5, 0.4, allow=True) == [-1, 0, 1, -1]


def test_low_quality_includes_ties_for_a_gts_maximum():
    m = [[0.3, 0.1, 0.3, 0.3],
         [0.0, 0.2, 0.0, 0.1]]
    assert match(m, 0.5, 0.4, allow=True) == [0, 1, 0, 0]


def test_low_quality_gives_the_anchors_own_best_gt():
    # gt 0's best anchor is 0 (0.3), but anchor 0's best gt is gt 1 (0.35): anchor 0 gets gt 1,
    # and gt 0 ends up with no anchor (torchvision's rule)
    m = [[0.3, 0.05],
         [0.35, 0.6]]
    assert match(m, 0.5, 0.4) == [-1, 1]
    assert match(m, 0.5, 0.4, allow=True) == [1, 1]


def test_low_quality_with_a_gt_overlapping_nothing_matches_every_zero_anchor():
    # gt 1 has IoU 0 with every anchor: every anchor achieves its maximum 0, so every anchor gets
    # its own best gt back, even anchor 2 whose best IoU is 0 (gt 0 by the tie rule)
    m = [[0.9, 0.2, 0.0],
         [0.0, 0.0, 0.0]]
    assert match(m, 0.5, 0.4) == [0, -1, -1]
    assert match(m, 0.5, 0.4, allow=True) == [0, 0, 0]


def test_low_quality_leaves_good_matches_and_others_alone():
    m = [[0.8, 0.6, 0.1, 0.45],
         [0.1, 0.2, 0.35, 0.0]]
    assert match(m, 0.5, 0.4) == [0, 0, -1, -2]
    assert match(m, 0.5, 0.4, allow=True) == [0, 0, 1, -2]


# --- edge cases: refloss decides ---------------------------------------------------------------

@pytest.mark.parametrize("n_anchors", [0, 1, 5])
def test_no_ground_truth_is_all_background(n_anchors):
    for allow in (False, True):
        assert match(np.zeros((0, n_anchors)), 0.5, 0.4, allow) == [-1] * n_anchors


@pytest.mark.parametrize("n_gt", [1, 3])
def test_no_anchor_is_empty(n_gt):
    for allow in (False, True):
        assert match(np.zeros((n_gt, 0)), 0.5, 0.4, allow) == []


def test_single_entry():
    assert match([[0.5]], 0.5, 0.4) == [0]
    assert match([[0.1]], 0.5, 0.4, allow=True) == [0]


@pytest.mark.parametrize("bad, where", [(np.nan, "iou_matrix[1, 2] = nan"), (np.inf, "iou_matrix[1, 2] = inf"),
                                        (-np.inf, "iou_matrix[1, 2] = -inf")])
def test_non_finite_entry_is_named(bad, where):
    m = np.full((3, 4), 0.5)
    m[1, 2] = bad
    m[2, 3] = np.nan  # a later one: the first is named
    with pytest.raises(ValueError, match=re.escape(where)):
        rl.match_by_iou(m, 0.5, 0.4)


@pytest.mark.parametrize("shape", [(), (4,), (2, 3, 4)])
def test_wrong_ndim(shape):
    with pytest.raises(ValueError, match=re.escape(f"iou_matrix: must have shape (G, A)") + ".*" +
                       re.escape(str(shape))):
        rl.match_by_iou(np.zeros(shape), 0.5, 0.4)


def test_low_above_high():
    with pytest.raises(ValueError, match="low_threshold: must be <= high_threshold"):
        rl.match_by_iou([[0.5]], 0.4, 0.5)


def test_bad_parameters():
    with pytest.raises(ValueError, match="high_threshold: must be a number, got nan"):
        rl.match_by_iou([[0.5]], np.nan, 0.4)
    with pytest.raises(ValueError, match="low_threshold: must be a number, got nan"):
        rl.match_by_iou([[0.5]], 0.5, float("nan"))
    with pytest.raises(TypeError, match="high_threshold: must be a real number"):
        rl.match_by_iou([[0.5]], "0.5", 0.4)
    with pytest.raises(TypeError, match="low_threshold: must be a real number"):
        rl.match_by_iou([[0.5]], 0.5, True)
    with pytest.raises(TypeError, match="allow_low_quality_matches: must be True or False"):
        rl.match_by_iou([[0.5]], 0.5, 0.4, 0.3)  # a third threshold passed by position


def test_bad_arrays():
    with pytest.raises(TypeError, match="iou_matrix: must be a real numeric array"):
        rl.match_by_iou([["a", "b"]], 0.5, 0.4)
    with pytest.raises(ValueError, match="iou_matrix: not a regular array"):
        rl.match_by_iou([[0.5, 0.1], [0.2]], 0.5, 0.4)
    with pytest.raises(TypeError, match="iou_matrix: a masked array"):
        rl.match_by_iou(np.ma.masked_array([[0.5]], mask=[[True]]), 0.5, 0.4)

    class OnDevice:
        __cuda_array_interface__ = {}

    with pytest.raises(TypeError, match=r"iou_matrix: a device array.*\.cpu\(\)"):
        rl.match_by_iou(OnDevice(), 0.5, 0.4)


# --- inputs ------------------------------------------------------------------------------------

def test_lists_arrays_ints_and_layouts_agree():
    m = np.array([[0.9, 0.45, 0.1, 0.3], [0.2, 0.45, 0.6, 0.3]])
    want = [0, -2, 1, -1]
    assert match(m.tolist(), 0.5, 0.4) == want
    assert match(m.astype(np.float32), 0.5, 0.4) == want
    assert match(np.asfortranarray(m), 0.5, 0.4) == want
    assert match(np.repeat(m, 2, axis=1)[:, ::2], 0.5, 0.4) == want
    assert match([[1, 0], [0, 0]], 0.5, 0.4) == [0, -1]
    assert match(np.array([[True, False]]), 0.5, 0.4) == [0, -1]


def test_comparisons_in_the_matrix_dtype():
    """A float32 matrix is compared with the thresholds rounded to float32 (as torch and NumPy
    compare a float32 array with a Python float): float32(0.7) < 0.7 in float64, yet it matches."""
    v = np.float32(0.7)
    assert float(v) < 0.7
    assert match(np.array([[v]], np.float32), 0.7, 0.4) == [0]
    assert match(np.array([[float(v)]], np.float64), 0.7, 0.4) == [-2]
    h = np.float16(0.7)
    assert match(np.array([[h]], np.float16), 0.7, 0.4) == [0]
    assert match(np.array([[h]], np.float16), 1e6, 0.4) == [-2]  # 1e6 is inf in float16


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    m = torch.tensor([[0.9, 0.45, 0.1, 0.3], [0.2, 0.45, 0.6, 0.3]])
    assert match(m, 0.5, 0.4) == [0, -2, 1, -1]
    assert match(m.double(), 0.5, 0.4) == [0, -2, 1, -1]
    with pytest.raises(TypeError, match=r"iou_matrix: a tensor that requires grad.*detach\(\)"):
        rl.match_by_iou(m.requires_grad_(), 0.5, 0.4)


# --- documentation -----------------------------------------------------------------------------

def test_public_name_and_docstring_example():
    assert "match_by_iou" in rl.__all__ and rl.match_by_iou is _matching.match_by_iou
    assert doctest.testmod(_matching).failed == 0
    for words in ("BETWEEN_THRESHOLDS", "lowest index", "G = 0", "arXiv:1506.01497", "arXiv:1708.02002"):
        assert words in rl.match_by_iou.__doc__


def test_docs_page_examples_run_and_print_what_the_page_shows(capsys):
    text = (REPO / "docs" / "matching.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    ns = {}
    for code in blocks:
        exec(compile(code, "docs/matching.md", "exec"), ns)
    printed = capsys.readouterr().out.strip().splitlines()
    shown = re.findall(r"^# (\[.*\])$", "\n".join(blocks), re.M)
    assert printed and printed == shown
    for words in ("arXiv:1506.01497", "arXiv:1708.02002", "lowest index", "raises"):
        assert words in text
    assert "match_by_iou" in (REPO / "README.md").read_text()
    assert "docs/matching.md" in (REPO / "README.md").read_text()


# --- conformance with torchvision --------------------------------------------------------------

def _matrices(rng):
    """Random and tie-heavy matrices: continuous IoUs, IoUs on a few levels (ties between gts
    and within a gt's row, values on the thresholds), sparse ones (mostly 0), and a row of
    zeros (a gt overlapping nothing)."""
    levels = np.array([0.0, 0.1, 0.3, 0.4, 0.45, 0.5, 0.7, 0.9, 1.0])
    for _ in range(60):
        g, a = int(rng.integers(1, 8)), int(rng.integers(1, 40))
        yield rng.random((g, a))
        yield rng.choice(levels, size=(g, a))
        yield rng.choice(levels[:4], size=(g, a))
        sparse = rng.random((g, a)) * (rng.random((g, a)) < 0.2)
        yield sparse
        zero_row = rng.random((g + 1, a))
        zero_row[int(rng.integers(0, g + 1))] = 0.0
        yield zero_row
    yield np.zeros((3, 5))
    yield np.ones((3, 5))
    yield rng.random((20, 2000))  # the size of a real image's anchors, vectorised paths in torch


@pytest.fixture
def torch_one_thread():
    """torch on one thread: its default pool, on a machine whose cores are busy, makes each
    Matcher call ~100x slower (40 ms instead of 0.3 ms measured on 2 shared cores)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


THRESHOLDS = [(0.5, 0.4), (0.7, 0.3), (0.5, 0.5), (0.4, 0.4), (0.45, 0.3), (1.0, 0.0), (0.0, 0.0)]


@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conformance_with_torchvision_matcher(allow, dtype, torch_one_thread):
    torch = torch_one_thread
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    rng = np.random.default_rng(14 + allow)
    checked = 0
    for m in _matrices(rng):
        m = m.astype(dtype)
        t = torch.from_numpy(m)
        for high, low in THRESHOLDS:
            want = det_utils.Matcher(high, low, allow_low_quality_matches=allow)(t.clone()).numpy()
            got = rl.match_by_iou(m, high, low, allow_low_quality_matches=allow)
            np.testing.assert_array_equal(got, want, err_msg=f"{m.shape} high={high} low={low} allow={allow}")
            got_t = rl.match_by_iou(t, high, low, allow_low_quality_matches=allow)
            np.testing.assert_array_equal(got_t, want)
            checked += 1
    assert checked > 2000


@pytest.mark.parametrize("allow", [False, True])
def test_conformance_on_threshold_rounding(allow, torch_one_thread):
    """Entries at float32(t) and float16(t) for thresholds t not representable there: compared
    as torch compares them, in the matrix's dtype."""
    torch = torch_one_thread
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    for dtype in (np.float16, np.float32, np.float64):
        for high, low in ((0.7, 0.3), (0.6, 0.35), (0.51, 0.41)):
            values = [dtype(x) for t in (high, low) for x in (t, np.nextafter(dtype(t), dtype(0)),
                                                              np.nextafter(dtype(t), dtype(1)))]
            m = np.array([values, values[::-1]], dtype=dtype)
            want = det_utils.Matcher(high, low, allow_low_quality_matches=allow)(torch.from_numpy(m)).numpy()
            np.testing.assert_array_equal(rl.match_by_iou(m, high, low, allow), want, err_msg=f"{dtype} {high} {low}")


def test_torchvision_raises_where_refloss_returns_background():
    """The documented difference: torchvision's Matcher raises for an empty matrix."""
    torch = pytest.importorskip("torch")
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    with pytest.raises(ValueError, match="No ground-truth boxes"):
        det_utils.Matcher(0.5, 0.4)(torch.zeros((0, 3)))
    with pytest.raises(ValueError, match="No proposal boxes"):
        det_utils.Matcher(0.5, 0.4)(torch.zeros((3, 0)))
    assert match(np.zeros((0, 3)), 0.5, 0.4) == [-1, -1, -1]


def test_half_precision_thresholds_rounded_as_torch_rounds_them(torch_one_thread):
    """bfloat16 and float16 matrices against torchvision's Matcher, at entries next to the thresholds' roundings
    (torch converts a Python float threshold to float32, then to the tensor's dtype). A bfloat16 entry 0.7 was
    compared with float32(0.7) (refloss -2, torchvision 0) before."""
    torch = torch_one_thread
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    # a double just above a float16 midpoint, within half a float32 ulp of it: float32 rounds it to the midpoint
    # (then float16 rounds the tie to even, down), float16 directly rounds it up
    mid = (float(np.float16(0.4)) + float(np.nextafter(np.float16(0.4), np.float16(1)))) / 2
    odd = mid + 2.0 ** -40
    assert np.float16(np.float32(odd)) != np.float16(odd)
    for tdt in (torch.bfloat16, torch.float16):
        for high, low in ((0.7, 0.4), (0.7, 0.4005), (0.51, 0.41), (odd, 0.3), (0.9, odd), (1e6, -1e6)):
            grid = torch.tensor([high, low], dtype=torch.float64).to(tdt)
            values = torch.cat([grid, torch.nextafter(grid.float(), torch.tensor(2.0)).to(tdt),
                                torch.nextafter(grid.float(), torch.tensor(-2.0)).to(tdt),
                                torch.tensor([0.0, 1.0], dtype=tdt)])
            values = values[torch.isfinite(values)]  # (1e6 is inf in float16: a threshold only)
            m = torch.stack([values, values.flip(0)])
            for allow in (False, True):
                want = det_utils.Matcher(high, low, allow_low_quality_matches=allow)(m).numpy()
                np.testing.assert_array_equal(rl.match_by_iou(m, high, low, allow), want,
                                              err_msg=f"{tdt} {high} {low} {allow}")
    t = torch.tensor([[0.7, 0.1]], dtype=torch.bfloat16)
    assert rl.match_by_iou(t, 0.7, 0.4).tolist() == [0, -1]
