"""Mask encoding on disk and back, through real PNG files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.slices.masks import decode_mask, encode_mask


def roundtrip(array, tmp_path):
    path = tmp_path / "m.png"
    cv2.imwrite(str(path), array)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_one_class_is_0_255_single_channel(tmp_path):
    labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    png = roundtrip(encode_mask(labels, num_classes=1), tmp_path)
    assert png.ndim == 2 and png.tolist() == [[0, 255], [255, 0]]
    np.testing.assert_array_equal(decode_mask(png, num_classes=1), labels)


def test_multiclass_index_and_rgb_map(tmp_path):
    labels = np.array([[0, 1, 2]], dtype=np.uint8)
    assert encode_mask(labels, num_classes=2).tolist() == [[0, 1, 2]]
    rgb = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0)}
    png = roundtrip(encode_mask(labels, num_classes=2, rgb_map=rgb), tmp_path)
    assert png.shape == (1, 3, 3) and png[0, 1].tolist() == [0, 0, 255]  # red stored as BGR
    np.testing.assert_array_equal(decode_mask(png, num_classes=2, rgb_map=rgb), labels)


def test_unexpected_values_are_errors():
    with pytest.raises(ValueError, match=r"mask holds labels \[2\]; expected 0..1"):
        encode_mask(np.array([[0, 2]], dtype=np.uint8), num_classes=1)
    with pytest.raises(ValueError, match=r"must be 0/255, found values \[128\]"):
        decode_mask(np.array([[0, 128, 255]], dtype=np.uint8), num_classes=1)
    with pytest.raises(ValueError, match="colours not in rgb_map"):
        decode_mask(np.full((1, 1, 3), 9, np.uint8), num_classes=1, rgb_map={0: (0, 0, 0), 1: (255, 255, 255)})
    with pytest.raises(ValueError, match="no colour for classes"):
        encode_mask(np.zeros((1, 1), np.uint8), num_classes=2, rgb_map={0: (0, 0, 0)})
