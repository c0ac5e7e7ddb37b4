"""Square fitting: stretch or letterbox, masks keep exactly their labels, restore inverts placement."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.slices.resize import Placement, fit_to_square, pixel_spacing, placement_for, restore_mask


def labelled(shape, labels=(0, 1, 3, 7), seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice(np.array(labels, dtype=np.uint8), size=shape)


@pytest.mark.parametrize("shape", [(300, 200), (64, 64), (700, 1000), (5, 513)])
@pytest.mark.parametrize("letterbox", [False, True])
def test_mask_values_preserved_exactly(shape, letterbox):
    mask = labelled(shape)
    image = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    img, msk, place = fit_to_square(image, mask, size=128, letterbox=letterbox)
    assert img.shape == msk.shape == (128, 128) and img.dtype == msk.dtype == np.uint8
    assert set(np.unique(msk).tolist()) <= set(np.unique(mask).tolist())


def test_letterbox_keeps_aspect_and_centres():
    image = np.full((100, 50), 200, dtype=np.uint8)
    mask = np.ones((100, 50), dtype=np.uint8)
    img, msk, place = fit_to_square(image, mask, size=64, letterbox=True)
    assert place == Placement((100, 50), (64, 32), (0, 16), 64)
    assert np.all(img[:, :16] == 0) and np.all(img[:, 48:] == 0) and np.all(img[:, 16:48] == 200)
    assert np.all(msk[:, :16] == 0) and np.all(msk[:, 16:48] == 1)


def test_stretch_fills_the_square():
    place = placement_for((100, 50), size=64, letterbox=False)
    assert place.scaled == (64, 64) and place.offset == (0, 0)


@pytest.mark.parametrize("letterbox", [False, True])
def test_restore_mask_inverts_placement(letterbox):
    mask = np.zeros((60, 90), dtype=np.uint8)
    mask[10:40, 20:70] = 1  # blocks survive a 2x round trip exactly at their interior
    _, msk, place = fit_to_square(np.zeros_like(mask), mask, size=180, letterbox=letterbox)
    back = restore_mask(msk, Placement.from_dict(place.to_dict()))
    assert back.shape == (60, 90)
    np.testing.assert_array_equal(back, mask)


def test_shape_mismatch_and_bad_restore_input():
    with pytest.raises(ValueError, match="differ in size"):
        fit_to_square(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), size=8, letterbox=False)
    with pytest.raises(ValueError, match="expected a 8x8 mask"):
        restore_mask(np.zeros((4, 4), np.uint8), placement_for((4, 4), size=8, letterbox=False))


def test_physical_spacing_resamples_to_the_target_and_pads_or_crops():
    # 1 mm rows, 2 mm columns: at 1 mm per pixel the slice is 40 x 60, centred on an 64 square
    image = np.full((40, 30), 200, np.uint8)
    mask = np.zeros((40, 30), np.uint8)
    mask[10:30, 5:25] = 1
    img, msk, place = fit_to_square(image, mask, size=64, letterbox=False, spacing=(1.0, 2.0), target_spacing=1.0)
    assert place == Placement((40, 30), (40, 60), (12, 2), 64)
    assert img[12:52, 2:62].min() == 200 and img[:12].max() == 0 and msk[12 + 10:12 + 30, 2 + 10:2 + 50].all()
    assert pixel_spacing(place, (1.0, 2.0)) == (1.0, 1.0)
    np.testing.assert_array_equal(restore_mask(msk, place), mask)
    # a 0.5 mm grid at 1 mm per pixel halves; a larger field than the square is cropped, centred
    big = np.zeros((200, 100), np.uint8)
    big[90:110, 40:60] = 1
    _, msk, place = fit_to_square(np.zeros_like(big), big, size=64, letterbox=True, spacing=(0.5, 0.5),
                                  target_spacing=1.0)
    assert place.scaled == (100, 50) and place.offset == (-18, 7) and msk.sum() == 100
    back = restore_mask(msk, place)
    assert back.shape == (200, 100) and np.array_equal(back, big)  # the object lies inside the crop
    with pytest.raises(ValueError, match="needs a positive slice spacing"):
        placement_for((4, 4), size=8, letterbox=False, target_spacing=1.0)
