"""Metric functions against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import metrics as ev


def _square(shape, top, left, size, label=1):
    m = np.zeros(shape, np.uint8)
    m[top:top + size, left:left + size] = label
    return m


def test_counts_dice_iou_hand_computed():
    truth = np.zeros((4, 4), np.uint8)
    truth[0, :4] = 1                     # 4 pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[0, :2] = 1                      # 2 TP
    pred[1, :1] = 1                      # 1 FP
    c = ev.counts(pred, truth)
    assert c == ev.Counts(tp=2, fp=1, fn=2)
    assert ev.dice_from(c) == pytest.approx(4 / 7)
    assert ev.iou_from(c) == pytest.approx(2 / 5)
    assert ev.precision_from(c) == pytest.approx(2 / 3)
    assert ev.recall_from(c) == pytest.approx(1 / 2)


def test_empty_vs_empty_is_one_and_flagged():
    z = np.zeros((5, 5), np.uint8)
    s = ev.image_scores(z, z)
    assert s["dice"] == 1.0 and s["iou"] == 1.0 and s["empty_empty"] == 1.0
    assert math.isnan(s["precision"]) and math.isnan(s["recall"])


def test_one_side_empty_scores_zero():
    z = np.zeros((5, 5), np.uint8)
    m = _square((5, 5), 1, 1, 2)
    for pred, truth in ((z, m), (m, z)):
        s = ev.image_scores(pred, truth)
        assert s["dice"] == 0.0 and s["iou"] == 0.0 and s["empty_empty"] == 0.0
    assert ev.image_scores(z, m)["recall"] == 0.0
    assert math.isnan(ev.image_scores(z, m)["precision"])
    assert ev.image_scores(m, z)["precision"] == 0.0


def test_counts_add_up_per_subject():
    a = ev.counts(_square((6, 6), 0, 0, 2), _square((6, 6), 0, 0, 2))  # tp 4
    b = ev.counts(_square((6, 6), 0, 0, 2), np.zeros((6, 6), np.uint8))  # fp 4
    pooled = a + b
    assert pooled == ev.Counts(tp=4, fp=4, fn=0)
    assert ev.dice_from(pooled) == pytest.approx(8 / 12)


def test_multiclass_per_class_and_mean_over_present_classes():
    truth = np.array([[1, 1, 2, 2], [0, 0, 0, 0]], np.uint8)
    pred = np.array([[1, 0, 2, 2], [0, 0, 0, 2]], np.uint8)
    s = ev.image_scores(pred, truth, num_classes=4)
    assert s["dice_1"] == pytest.approx(2 / 3)          # tp1 fn1
    assert s["dice_2"] == pytest.approx(4 / 5)          # tp2 fp1
    assert s["dice_3"] == 1.0                           # absent from both
    assert s["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)  # class 3 left out of the mean
    assert s["iou_2"] == pytest.approx(2 / 3)
    assert s["precision"] == pytest.approx(3 / 4)
    assert s["recall"] == pytest.approx(3 / 4)


def test_wrong_class_is_fp_and_fn():
    truth = np.array([[1, 1]], np.uint8)
    pred = np.array([[2, 1]], np.uint8)
    s = ev.image_scores(pred, truth, num_classes=3)
    assert s["dice_1"] == pytest.approx(2 / 3) and s["dice_2"] == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differs from ground truth shape"):
        ev.counts(np.zeros((2, 2)), np.zeros((3, 3)))


def test_seeds_dice_with_and_without_background_pools_the_batch():
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[0, 0, 0] = 1
    prob = np.zeros((2, 4, 4))                          # misses the only foreground pixel
    # dice_coef of the sigmoid seeds (faz/ms/pancreas): foreground only, batch-pooled, smoothed by 1
    terms = ev.seeds_dice_terms(prob, truth, num_classes=2, background=False)
    assert terms.tolist() == [0.0, 1.0] and ev.seeds_dice(terms) == pytest.approx(1 / 2)
    hit = prob.copy()
    hit[0, 0, 0] = 1.0
    assert ev.seeds_dice(ev.seeds_dice_terms(hit, truth, num_classes=2, background=False)) == 1.0
    # dice_coef_multiclass of the FlexUNet seeds (aisd/lasc): background too, 31 of 32 pixels agree
    terms = ev.seeds_dice_terms(prob, truth, num_classes=2, background=True)
    assert terms.tolist() == [31.0, 64.0]
    assert ev.seeds_dice(terms) == pytest.approx((62 + 1) / (64 + 1))
    # the flattering part: foreground Dice of the same prediction is 0
    assert ev.image_scores(prob[0].astype(np.uint8), truth[0])["dice"] == 0.0
    # softmax input gives the same sums as the sigmoid it encodes
    soft = np.stack([1 - prob, prob], axis=-1)
    for background in (False, True):
        assert ev.seeds_dice_terms(soft, truth, num_classes=2, background=background).tolist() == \
            ev.seeds_dice_terms(prob, truth, num_classes=2, background=background).tolist()
    # adding batches adds terms
    both = ev.seeds_dice_terms(soft[:1], truth[:1], num_classes=2, background=True) + ev.seeds_dice_terms(
        soft[1:], truth[1:], num_classes=2, background=True)
    assert both.tolist() == [31.0, 64.0]


def _brute_hd95(a, b):
    """Reference: contour pixels (4-neighbourhood) and all pairwise distances."""
    def contour(m):
        p = np.pad(m, 1)
        inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        return np.argwhere(m & ~inner)
    ca, cb = contour(a.astype(bool)), contour(b.astype(bool))
    d = np.sqrt(((ca[:, None, :] - cb[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


def test_hd95_identical_is_zero_and_points_give_their_distance():
    m = _square((20, 20), 5, 5, 6)
    assert ev.hd95([ev.surface_distances(m, m)]) == 0.0
    a = np.zeros((20, 20), np.uint8)
    b = np.zeros((20, 20), np.uint8)
    a[2, 2] = 1
    b[5, 6] = 1
    assert ev.hd95([ev.surface_distances(a, b)]) == pytest.approx(5.0)


def test_hd95_two_known_shapes_match_brute_force_and_spacing_scales():
    big = _square((40, 40), 5, 5, 20)
    small = _square((40, 40), 12, 14, 6)
    expected = _brute_hd95(big, small)
    got = ev.hd95([ev.surface_distances(small, big)])
    assert got == pytest.approx(expected)
    assert expected > 5.0
    assert ev.hd95([ev.surface_distances(small, big, spacing=(2.0, 2.0))]) == pytest.approx(2 * expected)


def test_hd95_pools_slices_and_a_missed_slice_counts_as_the_diagonal():
    m = _square((20, 20), 5, 5, 6)
    z = np.zeros_like(m)
    assert ev.surface_distances(z, z) is None and math.isnan(ev.hd95([None]))
    diagonal = math.hypot(20, 20)
    missed, invented = ev.surface_distances(z, m), ev.surface_distances(m, z)
    assert missed[0].size == 0 and np.all(missed[1] == diagonal) and missed[1].size == 20  # 6x6 square's contour
    assert invented[1].size == 0 and np.all(invented[0] == diagonal)
    assert ev.hd95([missed]) == pytest.approx(diagonal)
    shifted = _square((20, 20), 5, 8, 6)   # moved 3 columns
    pooled = ev.hd95([ev.surface_distances(m, m), ev.surface_distances(shifted, m)])
    alone = ev.hd95([ev.surface_distances(shifted, m)])
    assert 0.0 < pooled <= alone == pytest.approx(3.0)
    # a subject whose second slice is missed entirely: HD95 is no longer that of the first slice alone
    assert ev.hd95([ev.surface_distances(m, m), missed]) == pytest.approx(diagonal)
    assert ev.hd95([ev.surface_distances(m, m), missed]) > ev.hd95([ev.surface_distances(m, m)])
    assert ev.hd95([ev.surface_distances(m, m, spacing=(2.0, 2.0)), ev.surface_distances(z, m, spacing=(2.0, 2.0))]) \
        == pytest.approx(2 * diagonal)


def test_hd95_multiclass_label_and_3d():
    a = np.zeros((4, 10, 10), np.uint8)
    b = np.zeros((4, 10, 10), np.uint8)
    a[1:3, 2:5, 2:5] = 2
    b[1:3, 2:5, 2:5] = 2
    b[1:3, 7:9, 7:9] = 1
    assert ev.hd95([ev.surface_distances(a, b, label=2)]) == 0.0
    assert ev.hd95([ev.surface_distances(a, b, label=1)]) == pytest.approx(math.sqrt(4**2 + 10**2 + 10**2))  # missed
    assert ev.surface_distances(a, b, label=3) is None


def test_hd95_mask_filling_the_image_uses_the_image_edge():
    full = np.ones((10, 10), np.uint8)
    centre = np.zeros((10, 10), np.uint8)
    centre[4:6, 4:6] = 1
    d = ev.surface_distances(full, centre)
    assert d is not None and d[0].size == 36          # the frame of the image is full's boundary
    assert ev.hd95([d]) == pytest.approx(np.hypot(4, 4))
    assert ev.hd95([ev.surface_distances(full, full)]) == 0.0


def _reference_surfaces(a, b, spacing):
    """MedPy's way, independently of SimpleITK: the boundary is the mask minus its 6-connected
    erosion (scipy), distances come from scipy's exact Euclidean distance transform."""
    from scipy import ndimage

    def border(m):
        m = np.pad(m.astype(bool), 1)
        inner = ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(m.ndim, 1))
        return m & ~inner

    ba, bb = border(a), border(b)
    to_b = ndimage.distance_transform_edt(~bb, sampling=spacing)[ba]
    to_a = ndimage.distance_transform_edt(~ba, sampling=spacing)[bb]
    return to_b, to_a


def _box(shape, lo, hi):
    m = np.zeros(shape, np.uint8)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
    return m


def test_volume_distances_match_scipy_reference_and_known_answers():
    spacing = (2.0, 0.7, 1.3)  # anisotropic, as CT and MR volumes are
    truth = _box((30, 40, 36), (5, 6, 7), (20, 30, 25))
    shifted = _box((30, 40, 36), (8, 6, 7), (23, 30, 25))  # moved 3 voxels along axis 0 (6 mm)
    # known answer: every boundary point lies at most 3 voxels of axis 0 from the other box's boundary
    assert ev.hd95([ev.surface_distances(shifted, truth, spacing=spacing)], percentile=100) == pytest.approx(6.0)
    ball = np.zeros((30, 40, 36), np.uint8)
    zz, yy, xx = np.ogrid[:30, :40, :36]
    ball[((zz - 14) * 2.0) ** 2 + ((yy - 20) * 0.7) ** 2 + ((xx - 17) * 1.3) ** 2 <= 10.0 ** 2] = 1
    for pred in (shifted, ball, _box((30, 40, 36), (9, 12, 11), (14, 20, 18))):  # shifted, other shape, inside
        ours = ev.surface_distances(pred, truth, spacing=spacing)
        ref = _reference_surfaces(pred, truth, spacing)
        for mine, theirs in zip(ours, ref):  # ITK maps are float32: equal to ~1e-6 mm
            assert np.allclose(np.sort(mine), np.sort(theirs), atol=1e-5)
        ref_hd95 = max(np.percentile(ref[0], 95), np.percentile(ref[1], 95))
        ref_msd = np.concatenate(ref).mean()
        scores = ev.volume_scores(pred, truth, spacing=spacing)
        assert scores["hd95"] == pytest.approx(ref_hd95) and scores["msd"] == pytest.approx(ref_msd)
        assert scores["dice"] == pytest.approx(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    # a box inset by k voxels on every side of a cube: its boundary is exactly k voxels from the cube's
    cube, inset = _box((20, 20, 20), (3, 3, 3), (17, 17, 17)), _box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    inner_to_outer = ev.surface_distances(inset, cube, spacing=(1.5, 1.5, 1.5))[0]
    assert np.allclose(inner_to_outer, 3.0, atol=1e-5)  # 2 voxels x 1.5 mm


def test_volume_scores_units_empty_cases_and_single_images():
    truth = _box((10, 12, 14), (2, 2, 2), (6, 8, 9))
    empty = np.zeros_like(truth)
    s = ev.volume_scores(truth, truth, spacing=(3.0, 1.0, 1.0))
    assert s["dice"] == 1.0 and s["hd95"] == 0.0 and s["msd"] == 0.0 and s["empty_empty"] == 0.0
    s = ev.volume_scores(empty, empty)
    assert s["dice"] == 1.0 and math.isnan(s["hd95"]) and s["empty_empty"] == 1.0
    missed = ev.volume_scores(empty, truth, spacing=(3.0, 1.0, 1.0))
    assert missed["dice"] == 0.0 and missed["hd95"] == pytest.approx(math.hypot(30, 12, 14))  # the diagonal in mm
    # a (1, H, W) stack holding one 2D image is scored as that image: its outline, not every pixel
    flat, moved = _square((1, 20, 20), 0, 0, 0), np.zeros((1, 20, 20), np.uint8)
    flat[0, 5:15, 5:15] = 1
    moved[0, 5:15, 7:17] = 1
    assert ev.volume_scores(moved, flat)["hd95"] == pytest.approx(2.0)
    assert ev.volume_scores(moved, flat)["msd"] == pytest.approx(
        ev.mean_surface_distance([ev.surface_distances(moved[0], flat[0])]))


def test_a_split_mixing_known_and_unknown_spacing_is_scored_in_voxels():
    """MS headers without spacing beside ones with it: one unit for the split, never a mean of mm and px."""
    from pipeline.evaluation.scoring import split_distance_unit

    known = {"layout": "volume", "spacing": [0.9, 0.9, 3.0]}
    unknown = {"layout": "volume", "spacing": [1.0, 1.0, 1.0], "spacing_unknown": [0, 1, 2]}
    assert split_distance_unit([known, known]) == "mm"
    assert split_distance_unit([known, unknown]) == "px"
    assert split_distance_unit([{"layout": "stack"}]) == "px"
