"""Upright display orientation of RAS+ slices and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.slices.slicing import (
    display_spacing,
    display_stack,
    foreground_per_slice,
    from_display,
    iter_slices,
    take_slice,
    to_display,
)


def marker_volume() -> np.ndarray:
    """(X, Y, Z) RAS+ volume with markers at the patient's right, anterior and superior ends."""
    vol = np.zeros((6, 8, 10), dtype=np.uint8)
    vol[5, 4, :] = 1  # patient's right (max X)
    vol[3, 7, :] = 2  # anterior (max Y)
    vol[:, :, 9] = 3  # superior (max Z)
    return vol


def test_axial_anterior_up_patient_right_on_image_left():
    img = to_display(marker_volume()[:, :, 4], axis=2)
    assert img.shape == (8, 6)  # rows = Y, columns = X
    rows, cols = np.nonzero(img == 2)
    assert set(rows.tolist()) == {0}  # anterior at the top
    rows, cols = np.nonzero(img == 1)
    assert set(cols.tolist()) == {0}  # patient's right on the image's left


def test_coronal_and_sagittal_superior_up():
    vol = marker_volume()
    coronal = to_display(vol[:, 4, :], axis=1)
    assert coronal.shape == (10, 6) and np.all(coronal[0] == 3)
    assert np.all(coronal[1:, 0] == 1)  # right on the left
    sagittal = to_display(vol[3, :, :], axis=0)
    assert sagittal.shape == (10, 8) and np.all(sagittal[0] == 3)
    assert np.all(sagittal[1:, 0] == 2)  # anterior on the left


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_from_display_inverts_to_display(axis):
    vol = np.arange(6 * 8 * 10).reshape(6, 8, 10)
    s = np.take(vol, 3, axis=axis)
    np.testing.assert_array_equal(from_display(to_display(s, axis=axis), axis=axis), s)


def test_bad_axis_is_refused():
    with pytest.raises(ValueError, match="slice axis must be 0"):
        to_display(np.zeros((2, 2)), axis=3)


def test_iter_slices_volume_and_stack():
    vol = marker_volume()
    got = list(iter_slices(vol, vol, layout="volume", axis=2, indices=[9, 2]))
    assert [i for *_, i in got] == [9, 2] and np.all(got[0][0] == 3)
    stack = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (img, msk, i), _ = list(iter_slices(stack, stack, layout="stack", axis=2))
    np.testing.assert_array_equal(img, stack[0])  # stacks are already upright


def test_foreground_counts_and_spacing():
    vol = marker_volume()
    assert foreground_per_slice(vol, layout="volume", axis=2).tolist() == [2] * 9 + [48]
    assert display_spacing((0.5, 0.7, 3.0), layout="volume", axis=2) == (0.7, 0.5)
    assert display_spacing((0.5, 0.7, 3.0), layout="volume", axis=0) == (3.0, 0.7)
    assert display_spacing((0.4, 0.6), layout="stack", axis=2) == (0.4, 0.6)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("order", ["C", "F", "flipped"])
@pytest.mark.parametrize("indices", [None, [3, 0, 5]])
def test_display_stack_matches_per_slice_display(axis, order, indices, monkeypatch):
    monkeypatch.setattr("pipeline.slices.slicing._BLOCK_BYTES", 50)  # force several blocks
    vol = np.random.default_rng(0).integers(0, 255, (7, 8, 9), dtype=np.uint8)
    vol = {"C": vol, "F": np.asfortranarray(vol), "flipped": vol[::-1, :, ::-1]}[order]
    stack = display_stack(vol, axis=axis, indices=indices)
    expected = [take_slice(vol, i, axis=axis) for i in (indices or range(vol.shape[axis]))]
    assert stack.flags.c_contiguous
    np.testing.assert_array_equal(stack, np.stack(expected))
