"""HU windows, per-volume percentile normalisation, 8-bit passthrough and the spec dispatcher."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.slices.intensity import normalize_percentile, passthrough_8bit, to_uint8, window_ct


def test_window_maps_known_hu_to_expected_greys():
    hu = np.array([-1000, -160, -60, 40, 140, 240, 3000], dtype=np.float32)
    grey = window_ct(hu, center=40, width=400)  # abdomen: -160..240 HU
    assert grey.dtype == np.uint8
    assert grey.tolist() == [0, 0, 64, 128, 191, 255, 255]  # (hu + 160) * 255 / 400, rounded half up


def test_window_brain_and_chunking_over_a_large_volume():
    hu = np.full((300, 64, 64), 40.0, dtype=np.float32)  # larger than one processing chunk
    hu[:, 0, 0] = 0.0
    grey = window_ct(hu, center=40, width=80)
    assert np.all(grey[:, 1:, :] == 128) and np.all(grey[:, 0, 0] == 0)


def test_window_keeps_memory_order_of_the_input():
    hu = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    grey = window_ct(hu, center=12, width=24)
    assert grey.flags.f_contiguous
    np.testing.assert_array_equal(grey, window_ct(np.ascontiguousarray(hu), center=12, width=24))


def test_window_width_must_be_positive():
    with pytest.raises(ValueError, match="width must be > 0"):
        window_ct(np.zeros(3), center=0, width=0)


def test_percentile_normalisation_is_one_scale_per_volume():
    rng = np.random.default_rng(0)
    vol = rng.uniform(100, 1000, size=(16, 16, 6)).astype(np.float32)
    vol[..., 0] *= 0.2  # a dark slice: per-slice scaling would stretch it to full range
    vol[4, 4, :] = 500.0  # the same tissue value in every slice
    vol[:2] = 0.0  # background
    grey = normalize_percentile(vol, low=0.5, high=99.5)
    assert len(set(grey[4, 4, :].tolist())) == 1  # same value -> same grey in every slice
    assert grey[..., 0][2:].max() < 128  # the dark slice stays dark
    assert grey[:2].max() == 0  # background at or below the low percentile


def test_percentile_ignores_zero_background_by_default():
    vol = np.zeros((10, 10, 10), dtype=np.float32)
    vol[3:7, 3:7, 3:7] = np.linspace(10, 20, 64 * 4).reshape(4, 4, 16)[:, :, :4]
    body_only = normalize_percentile(vol, low=0, high=100)
    assert body_only[vol == vol[vol > 0].max()].max() == 255
    assert body_only[vol == vol[vol > 0].min()].min() == 0


def test_passthrough_accepts_8bit_and_rejects_hu():
    img = np.array([[0.0, 127.6, 255.0]], dtype=np.float32)
    assert passthrough_8bit(img).tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError, match="expects 8-bit grey values 0..255, found -1000"):
        passthrough_8bit(np.array([-1000.0, 40.0], dtype=np.float32))


def test_to_uint8_dispatches_and_reports_bad_specs():
    hu = np.array([-160.0, 240.0], dtype=np.float32)
    assert to_uint8(hu, spec={"mode": "window", "center": 40, "width": 400}).tolist() == [0, 255]
    assert to_uint8(np.array([5.0, 6.0]), spec={"mode": "none"}).tolist() == [5, 6]
    with pytest.raises(ValueError, match="mode must be one of none, window, percentile, found 'gamma'"):
        to_uint8(hu, spec={"mode": "gamma"})
    with pytest.raises(ValueError, match="missing width"):
        to_uint8(hu, spec={"mode": "window", "center": 40})
