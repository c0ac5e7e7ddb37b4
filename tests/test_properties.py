"""Property-based tests (hypothesis) for the hand-written array functions: resize, window, split, masks."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cv2
import pytest

from pipeline.slices.intensity import _integer_histogram, normalize_percentile, percentile_range, window_ct
from pipeline.slices.masks import decode_mask, encode_mask
from pipeline.slices.resize import fit_to_square, restore_mask
from pipeline.dataset.split import assign_splits

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hu_values = st.floats(min_value=-5000, max_value=5000, allow_nan=False, allow_infinity=False, width=32)
hu_arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12), elements=hu_values)


# ---- window -------------------------------------------------------------------------------------


@SETTINGS
@given(hu=hu_arrays, center=st.floats(-1000, 1000), width=st.floats(1, 4000))
def test_window_is_uint8_same_shape_and_saturates(hu, center, width):
    out = window_ct(hu, center=center, width=width)
    assert out.dtype == np.uint8 and out.shape == hu.shape
    assert (out[hu <= center - width / 2] == 0).all()
    assert (out[hu >= center + width / 2] == 255).all()


@SETTINGS
@given(hu=hnp.arrays(np.float32, st.integers(2, 200), elements=hu_values),
       center=st.floats(-1000, 1000), width=st.floats(1, 4000))
def test_window_is_monotone_in_hu(hu, center, width):
    hu = np.sort(hu)
    out = window_ct(hu, center=center, width=width).astype(int)
    assert (np.diff(out) >= 0).all()


@SETTINGS
@given(volume=hu_arrays, low=st.floats(0, 10), high=st.floats(90, 100))
def test_percentile_normalisation_is_uint8_and_order_preserving(volume, low, high):
    out = normalize_percentile(volume, low=low, high=high)
    assert out.dtype == np.uint8 and out.shape == volume.shape
    order = np.argsort(volume, axis=None, kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


# ---- resize -------------------------------------------------------------------------------------


@st.composite
def image_mask(draw, max_side=48):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    labels = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mask = rng.choice(np.array(labels, np.uint8), size=(h, w))
    image = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return image, mask


@SETTINGS
@given(pair=image_mask(), size=st.integers(1, 64), letterbox=st.booleans())
def test_fit_to_square_never_gives_a_mask_a_new_label(pair, size, letterbox):
    image, mask = pair
    img, msk, place = fit_to_square(image, mask, size=size, letterbox=letterbox)
    assert img.shape == msk.shape == (size, size)
    assert img.dtype == msk.dtype == np.uint8
    allowed = set(np.unique(mask).tolist()) | ({0} if letterbox else set())  # padding is background
    assert set(np.unique(msk).tolist()) <= allowed


@SETTINGS
@given(pair=image_mask(), size=st.integers(1, 64), letterbox=st.booleans())
def test_restore_mask_gives_original_shape_and_no_new_label(pair, size, letterbox):
    image, mask = pair
    _, msk, place = fit_to_square(image, mask, size=size, letterbox=letterbox)
    back = restore_mask(msk, place)
    assert back.shape == mask.shape and back.dtype == np.uint8
    assert set(np.unique(back).tolist()) <= set(np.unique(msk).tolist())


@SETTINGS
@given(pair=image_mask(max_side=16), factor=st.integers(1, 4), letterbox=st.booleans())
def test_integer_upscale_then_restore_is_exact(pair, factor, letterbox):
    image, mask = pair
    if not letterbox:  # stretching scales both axes by one factor only for a square slice
        n = min(mask.shape)
        image, mask = image[:n, :n], mask[:n, :n]
    side = max(mask.shape)
    _, msk, place = fit_to_square(image, mask, size=side * factor, letterbox=letterbox)
    assert place.scaled == (mask.shape[0] * factor, mask.shape[1] * factor)
    np.testing.assert_array_equal(restore_mask(msk, place), mask)


# ---- split --------------------------------------------------------------------------------------

subject_ids = st.lists(st.text(st.characters(codec="ascii", categories=["L", "N", "Pd"]), min_size=1,
                               max_size=8), min_size=1, max_size=40, unique=True)


@st.composite
def split_ratios(draw, min_weight=0):
    weights = draw(st.lists(st.integers(min_weight, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0))
    total = sum(weights)
    return {name: w / total for name, w in zip(("train", "valid", "test"), weights)}


@SETTINGS
@given(ids=subject_ids, ratios=split_ratios(), seed=st.integers(0, 2**31))
def test_split_assigns_every_subject_to_exactly_one_split(ids, ratios, seed):
    assignment = assign_splits(ids, ratios, seed=seed)
    assert set(assignment) == set(ids)  # every subject, once (a dict key cannot repeat)
    assert set(assignment.values()) <= {n for n, r in ratios.items() if r > 0}
    positive = [n for n, r in ratios.items() if r > 0]
    if len(ids) >= len(positive):
        assert set(assignment.values()) == set(positive)  # no positive-ratio split left empty
    rng = np.random.default_rng(seed)
    assert assign_splits(list(rng.permutation(ids)), ratios, seed=seed) == assignment  # order-free


@settings(SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ids=st.lists(st.integers(0, 10**6).map(lambda n: f"case-{n}"), min_size=30, max_size=60, unique=True),
       new=st.integers(0, 10**6).map(lambda n: f"new-{n}"), ratios=split_ratios(min_weight=3),
       seed=st.integers(0, 2**31))
def test_split_is_nearly_stable_when_a_subject_is_added(ids, new, ratios, seed):
    """Balancing to within one subject of the ratios may move the subjects nearest to a split
    boundary, at most one per split; every other subject keeps its split."""
    before = assign_splits(ids, ratios, seed=seed)
    after = assign_splits([*ids, new], ratios, seed=seed)
    assert sum(after[s] != before[s] for s in ids) <= len(ratios)
    for name, ratio in ratios.items():
        assert abs(list(after.values()).count(name) - (len(ids) + 1) * ratio) < 1


# ---- mask encoding ------------------------------------------------------------------------------


@st.composite
def label_maps(draw):
    num_classes = draw(st.integers(1, 6))
    shape = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, num_classes + 1, shape, dtype=np.uint8), num_classes


@SETTINGS
@given(case=label_maps(), via_png=st.booleans())
def test_mask_encoding_roundtrips(case, via_png):
    labels, num_classes = case
    encoded = encode_mask(labels, num_classes=num_classes)
    assert encoded.dtype == np.uint8 and encoded.shape == labels.shape
    if num_classes == 1:
        assert set(np.unique(encoded).tolist()) <= {0, 255}
    if via_png:
        ok, buf = cv2.imencode(".png", encoded)
        encoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decode_mask(encoded, num_classes=num_classes), labels)


@SETTINGS
@given(case=label_maps(), colours=st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=7, max_size=7,
                                           unique=True))
def test_rgb_mask_encoding_roundtrips_through_png(case, colours):
    labels, num_classes = case
    rgb_map = dict(enumerate(colours[: num_classes + 1]))
    encoded = encode_mask(labels, num_classes=num_classes, rgb_map=rgb_map)
    ok, buf = cv2.imencode(".png", encoded)
    decoded = decode_mask(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), num_classes=num_classes, rgb_map=rgb_map)
    np.testing.assert_array_equal(decoded, labels)


@SETTINGS
@given(case=label_maps(), extra=st.integers(1, 200))
def test_mask_encoding_refuses_labels_above_the_classes(case, extra):
    labels, num_classes = case
    labels = labels.copy()
    labels.flat[0] = num_classes + extra
    with pytest.raises(ValueError, match="expected 0.."):
        encode_mask(labels, num_classes=num_classes)


@SETTINGS
@given(png=hnp.arrays(np.uint8, (6, 6), elements=st.integers(0, 255)))
def test_one_class_decode_accepts_only_0_and_255(png):
    if set(np.unique(png).tolist()) <= {0, 255}:
        assert set(np.unique(decode_mask(png)).tolist()) <= {0, 1}
    else:
        with pytest.raises(ValueError, match="must be 0/255"):
            decode_mask(png)


# ---- percentiles by histogram -----------------------------------------------------------------


whole_arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.int16, np.uint8, np.int32]), hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
               elements=st.integers(0, 255)),
    hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12)),  # the full int16 range
    hnp.arrays(np.int32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
               elements=st.integers(-400_000, 400_000)),  # wider than 16 bits: np.bincount
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
               elements=st.integers(-3000, 3000).map(float)),  # MRI/CT read from an integer file
)


@SETTINGS
@given(volume=whole_arrays, low=st.floats(0, 60), span=st.floats(0.01, 100), nonzero=st.booleans(),
       flip=st.booleans())
def test_histogram_percentiles_equal_numpy_bit_for_bit(volume, low, span, nonzero, flip):
    high = min(100.0, low + span)
    if flip:  # canonical reorientation hands over reversed views
        volume = volume[::-1]
    body = volume[volume != 0] if nonzero else volume.reshape(-1)
    expected = np.percentile(body if body.size else volume.reshape(-1), [low, high])
    assert percentile_range(volume, low=low, high=high, nonzero=nonzero) == (float(expected[0]), float(expected[1]))
    assert _integer_histogram(volume) is not None  # the fast path was the one tested


def test_fractional_volumes_take_numpy_percentiles():
    volume = np.array([0.0, 1.5, 2.0, 7.25], np.float32)
    assert _integer_histogram(volume) is None
    assert percentile_range(volume, low=10, high=90) == tuple(float(v) for v in np.percentile(volume[1:], [10, 90]))


@SETTINGS
@given(values=st.one_of(
    hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-1e4, 1e4, width=32)),
    hnp.arrays(np.int16, st.integers(1, 300)),
    hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6))),
    percents=st.lists(st.floats(0, 100), min_size=1, max_size=4))
def test_sorted_percentiles_equal_numpy_bit_for_bit(values, percents):
    from pipeline.slices.intensity import sorted_percentiles

    assert sorted_percentiles(values, percents) == [float(v) for v in np.percentile(values, percents)]
