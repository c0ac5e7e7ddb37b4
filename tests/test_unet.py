"""models.unet: the seeds' SlightlyFlexibleUNet, its parameter counts and output shapes."""

from __future__ import annotations

import numpy as np
import pytest

from models.unet import build_unet


@pytest.mark.parametrize(
    ("num_layers", "kernels", "num_classes", "dilation", "dropout", "expected"),
    [
        (8, (9, 9), 6, (3, 3), 0.05, 124_996_934),  # DESIGN.md reference, AISD-like
        (7, (5, 5), 1, (2, 2), 0.08, 31_127_153),  # DESIGN.md reference, the seeds' pancreas
    ],
)
def test_reference_parameter_counts(num_layers, kernels, num_classes, dilation, dropout, expected):
    model = build_unet(512, 3, num_classes, 16, kernels, num_layers, dilation, dropout)
    assert model.count_params() == expected


def test_kernel_and_dilation_schedules():
    model = build_unet(64, 1, 1, 4, (9, 9), 5, (3, 3), 0.0)
    convs = [l for l in model.layers if type(l).__name__ == "Conv2D"][:-1]  # without the head
    encoder = convs[: 2 * 5]
    assert [c.kernel_size for c in encoder[::2]] == [(9, 9), (7, 7), (5, 5), (3, 3), (3, 3)]
    assert [c.dilation_rate for c in encoder[::2]] == [(3, 3), (2, 2), (1, 1), (1, 1), (1, 1)]
    assert [c.filters for c in encoder[::2]] == [4, 8, 16, 32, 64]
    decoder = convs[2 * 5 :]
    assert [c.kernel_size for c in decoder[::2]] == [(3, 3), (5, 5), (7, 7), (9, 9)]


def test_dropout_grows_with_depth():
    model = build_unet(32, 1, 1, 4, (3, 3), 3, (1, 1), 0.1)
    rates = [round(l.rate, 6) for l in model.layers if type(l).__name__ == "Dropout"]
    assert rates == [0.0, 0.1, 0.2, 0.1, 0.0]


@pytest.mark.parametrize(("num_classes", "channels"), [(1, 1), (1, 3), (4, 1)])
def test_output_shape_and_head(num_classes, channels):
    model = build_unet(32, channels, num_classes, 4, (3, 3), 3, (1, 1), 0.05, batch_norm=True)
    x = np.random.default_rng(0).random((2, 32, 32, channels), dtype=np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 32, 32, num_classes)
    assert ((y >= 0) & (y <= 1)).all()
    if num_classes > 1:  # softmax: probabilities sum to one per pixel
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def test_batch_norm_adds_layers_not_count_of_convs():
    plain = build_unet(32, 1, 1, 4, (3, 3), 3, (1, 1), 0.0)
    bn = build_unet(32, 1, 1, 4, (3, 3), 3, (1, 1), 0.0, batch_norm=True)
    assert not any(type(l).__name__ == "BatchNormalization" for l in plain.layers)
    assert sum(type(l).__name__ == "BatchNormalization" for l in bn.layers) == 4 * 3 - 2


def test_image_size_must_divide():
    with pytest.raises(ValueError, match=r"100 is not divisible by 2\*\*\(num_layers-1\) = 16"):
        build_unet(100, 1, 1, 4, (3, 3), 5, (1, 1), 0.0)


def test_dropout_too_large():
    with pytest.raises(ValueError, match="dropout_rate"):
        build_unet(32, 1, 1, 4, (3, 3), 3, (1, 1), 0.5)
