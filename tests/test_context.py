"""2.5D context: neighbouring slices as the channels of each image, masks unchanged, kept together by augment."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.dataset.augment import augment_pair, build_pipeline
from pipeline.dataset.prepare import context_rows, prepare_subject
from pipeline.learning.heads import input_channels
from pipeline.learning.tfdata import load_pairs
from tests.test_prepare import OPTIONS, decode, volume_subject


def ramp_subject():
    """Slice z (RAS axis 2) holds the grey value 10 * (z + 1) everywhere; foreground in slices 0, 2, 4."""
    image = np.zeros((8, 8, 5), np.float32) + 10.0 * np.arange(1, 6)
    mask = np.zeros(image.shape, np.uint8)
    mask[2:5, 2:5, [0, 2, 4]] = 1
    return volume_subject(image, mask)


def test_context_rows_repeat_the_border_slice():
    assert context_rows([0, 2, 4], 5, context_slices=1) == [(0, 0, 1), (1, 2, 3), (3, 4, 4)]
    assert context_rows([0, 3], 4, context_slices=0) == [(0,), (3,)]


def test_context_slices_are_the_rgb_channels_and_masks_stay_single_slice():
    plain = prepare_subject(ramp_subject(), **OPTIONS)
    context = prepare_subject(ramp_subject(), **{**OPTIONS, "context_slices": 1})
    assert [r.slice_index for r in context.records] == [r.slice_index for r in plain.records] == [0, 2, 4]
    for rec, expected_rgb in zip(context.records, [(10, 10, 20), (20, 30, 40), (40, 50, 50)]):
        bgr = decode(rec.image_png)
        assert bgr.shape == (32, 32, 3) and tuple(bgr[16, 16][::-1]) == expected_rgb  # R, G, B = z-1, z, z+1
    assert [r.mask_png for r in context.records] == [r.mask_png for r in plain.records]
    assert decode(plain.records[1].image_png).ndim == 2
    with pytest.raises(ValueError, match="context_slices must be 0 .* or 1"):
        prepare_subject(ramp_subject(), **{**OPTIONS, "context_slices": 2})


def test_the_loader_sees_z_minus_1_z_z_plus_1_in_channel_order(tmp_path):
    context = prepare_subject(ramp_subject(), **{**OPTIONS, "context_slices": 1})
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for rec in context.records:
        (tmp_path / "images" / f"s_{rec.slice_index}.png").write_bytes(rec.image_png)
        (tmp_path / "masks" / f"s_{rec.slice_index}.png").write_bytes(rec.mask_png)
    _, images, _ = load_pairs(tmp_path, input_size=None, channels=3)
    assert np.allclose(images[1, 16, 16] * 255, [20, 30, 40], atol=0.5)


def test_augment_moves_the_channels_together():
    """Warps and a brightness change act on the three slices alike: over a striped pattern, the
    channels keep their 10-grey steps almost everywhere (separate warps would break them at every stripe)."""
    context = prepare_subject(ramp_subject(), **{**OPTIONS, "size": 64, "context_slices": 1})
    bgr = decode(context.records[1].image_png).astype(np.int16)  # B, G, R = 40, 30, 20
    bgr[:, (np.arange(64) // 4) % 2 == 1] += 150  # vertical stripes, the same in all three slices
    bgr = bgr.astype(np.uint8)
    mask = decode(context.records[1].mask_png)
    compose = build_pipeline([{"name": "Affine", "p": 1.0, "rotate": [20, 20], "translate_px": [5, 5]},
                              {"name": "ElasticTransform", "p": 1.0, "alpha": 50, "sigma": 6},
                              {"name": "RandomBrightnessContrast", "p": 1.0, "brightness_limit": 0.05}])
    image, out_mask, _ = augment_pair(compose, bgr, mask, seed=3)
    assert image.shape == bgr.shape and out_mask.shape == mask.shape
    b, g, r = (image[..., c].astype(int) for c in range(3))
    content = r > 15  # not the fill the warps brought in
    steps = (abs(b - g - 10) <= 2) & (abs(g - r - 10) <= 2)
    assert content.mean() > 0.5 and steps[content].mean() > 0.97
    assert (b[content] > 150).mean() > 0.3  # the stripes are still there


def test_model_input_channels_never_drop_the_context():
    assert input_channels(requested=1, prepared=3) == 3  # a 2.5D set: its three slices, not their grey mean
    assert input_channels(requested=3, prepared=1) == 3  # a grey set replicated, as the seeds trained
    assert input_channels(requested=1, prepared=1) == 1
