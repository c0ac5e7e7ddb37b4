"""Colourised masks, alpha blending, TP/FP/FN overlays and triptychs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.reports import overlay as ov
from pipeline.reports import palette


def test_colorize_maps_each_class_to_its_colour():
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    rgb = ov.colorize(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    for c in (1, 2, 3):
        assert rgb[mask == c][0].tolist() == palette.CLASS_COLOURS[c].tolist()
    assert len({tuple(v) for v in rgb.reshape(-1, 3)}) == 4


def test_blend_is_float_alpha_not_uint8_addition():
    image = np.full((2, 2), 200, np.uint8)
    mask = np.array([[0, 1], [0, 0]], np.uint8)
    out = ov.blend(image, mask, alpha=0.5)
    assert out[0, 0].tolist() == [200, 200, 200]          # background untouched
    # 0.5 * 200 + 0.5 * (255, 0, 0); uint8 addition would wrap 200 + 255 to 199
    assert out[0, 1].tolist() == [228, 100, 100]
    assert ov.blend(image, mask, alpha=0.0)[0, 1].tolist() == [200, 200, 200]
    assert ov.blend(image, mask, alpha=1.0)[0, 1].tolist() == palette.CLASS_COLOURS[1].tolist()
    with pytest.raises(ValueError, match="alpha must be within"):
        ov.blend(image, mask, alpha=1.5)
    with pytest.raises(ValueError, match="differ in size"):
        ov.blend(image, np.zeros((3, 3), np.uint8))


def test_error_overlay_colours_tp_fp_fn():
    image = np.zeros((1, 4), np.uint8)
    truth = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[1, 0, 1, 0]], np.uint8)
    out = ov.error_overlay(image, pred, truth, alpha=1.0)
    assert out[0, 0].tolist() == list(palette.ERROR_COLOURS["tp"])
    assert out[0, 1].tolist() == list(palette.ERROR_COLOURS["fn"])
    assert out[0, 2].tolist() == list(palette.ERROR_COLOURS["fp"])
    assert out[0, 3].tolist() == [0, 0, 0]


def test_error_overlay_takes_its_colours_from_the_palette(monkeypatch):
    """Repainting the palette repaints the overlay: the overlay keeps no colours of its own."""
    for name, colour in (("tp", (1, 2, 3)), ("fp", (4, 5, 6)), ("fn", (7, 8, 9))):
        monkeypatch.setitem(palette.ERROR_COLOURS, name, colour)
    out = ov.error_overlay(np.zeros((1, 3), np.uint8), np.array([[1, 0, 1]], np.uint8),
                           np.array([[1, 1, 0]], np.uint8), alpha=1.0)
    assert out[0].tolist() == [[1, 2, 3], [7, 8, 9], [4, 5, 6]]


def test_triptych_and_montage_layout(tmp_path):
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 1
    grid = ov.triptych([(image, mask, mask), (image, mask, np.zeros_like(mask))], tile=32)
    assert grid.shape == (28 + 2 * 32 + 3 * 4, 3 * 32 + 4 * 4, 3)
    no_truth = ov.triptych([(image, None, mask)], tile=32)
    assert no_truth.shape[1] == 2 * 32 + 3 * 4
    path = tmp_path / "t.png"
    ov.save_rgb(path, grid)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, grid)


def test_to_rgb_rejects_bad_input():
    with pytest.raises(ValueError, match="expected a uint8 image"):
        ov.to_rgb(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="found shape"):
        ov.to_rgb(np.zeros((2, 2, 4), np.uint8))
