"""models.losses and models.metrics: hand-computed cases, empty-vs-empty, reload by name."""

from __future__ import annotations

import numpy as np
import pytest

from models import losses, metrics


def _mask(*boxes, size=8):
    m = np.zeros((size, size, 1), np.float32)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = 1
    return m


def test_dice_per_image_hand_computed():
    truth = np.stack([_mask((0, 4, 0, 4)), _mask((0, 2, 0, 2))])  # 16 px, 4 px
    pred = np.stack([_mask((0, 4, 0, 2)), _mask((4, 6, 4, 6))])  # 8 px inside, 4 px disjoint
    d = np.asarray(metrics.dice(truth, pred * 0.9))  # 0.9 >= threshold
    np.testing.assert_allclose(d, [2 * 8 / (16 + 8), 0.0], rtol=1e-6)
    j = np.asarray(metrics.iou(truth, pred * 0.9))
    np.testing.assert_allclose(j, [8 / 16, 0.0], rtol=1e-6)


def test_empty_vs_empty_is_perfect_and_empty_vs_something_is_zero():
    empty = np.zeros((1, 8, 8, 1), np.float32)
    some = _mask((0, 1, 0, 1))[None]
    assert float(metrics.dice(empty, empty + 0.2)[0]) == 1.0  # below threshold: empty prediction
    assert float(metrics.iou(empty, empty)[0]) == 1.0
    assert float(metrics.dice(empty, some)[0]) == 0.0
    assert float(metrics.dice(some, empty)[0]) == 0.0


def test_threshold_is_applied():
    truth = _mask((0, 4, 0, 4))[None]
    assert float(metrics.dice(truth, truth * 0.49)[0]) == 0.0
    assert float(metrics.dice(truth, truth * 0.51)[0]) == 1.0


def test_multiclass_dice_ignores_background_and_averages_classes():
    labels = np.zeros((1, 4, 4), int)
    labels[0, :2, :2] = 1
    labels[0, 2:, 2:] = 2
    truth = np.eye(3, dtype=np.float32)[labels]
    pred_labels = labels.copy()
    pred_labels[0, 2:, 2:] = 0  # class 2 missed entirely
    pred = np.eye(3, dtype=np.float32)[pred_labels] * 0.8 + 0.1
    np.testing.assert_allclose(np.asarray(metrics.dice(truth, pred)), [0.5])


def test_seeds_dice_coef_is_batch_level_and_background_inclusive():
    truth = np.eye(2, dtype=np.float32)[np.zeros((2, 4, 4), int)]  # all background
    pred = truth.copy()
    # background-inclusive: perfect background gives ~1 although there is no foreground at all
    assert float(metrics.dice_coef(truth, pred)) == pytest.approx(1.0)
    t, p = _mask((0, 2, 0, 2))[None], _mask((0, 2, 0, 1))[None]
    assert float(metrics.dice_coef(t, p)) == pytest.approx((2 * 2 + 1) / (4 + 2 + 1))


@pytest.mark.parametrize("name", ["bce_dice_loss", "dice_loss", "bce_iou_loss", "iou_loss"])
def test_binary_losses_small_when_right_large_when_wrong(name):
    truth = np.stack([_mask((0, 4, 0, 4)), _mask((2, 6, 2, 6))])
    loss = losses.get_loss(name, outputs=1)
    good = float(loss(truth, np.clip(truth, 0.01, 0.99)))
    bad = float(loss(truth, np.clip(1 - truth, 0.01, 0.99)))
    assert good < 0.1 < bad


@pytest.mark.parametrize("name", ["categorical_crossentropy", "cce_dice_loss"])
def test_categorical_losses(name):
    labels = np.random.default_rng(0).integers(0, 3, (2, 8, 8))
    truth = np.eye(3, dtype=np.float32)[labels]
    loss = losses.get_loss(name, outputs=3)
    assert float(loss(truth, truth * 0.98 + 0.01)) < 0.1 < float(loss(truth, np.roll(truth, 1, -1)))


def test_dice_loss_hand_computed():
    truth, pred = _mask((0, 2, 0, 2))[None], _mask((0, 2, 0, 1))[None]
    assert float(losses.dice_loss(truth, pred)) == pytest.approx(1 - (2 * 2 + 1) / (4 + 2 + 1))


def test_get_loss_errors():
    with pytest.raises(ValueError, match="unknown loss 'dice'.*bce_dice_loss.*categorical_crossentropy"):
        losses.get_loss("dice")
    with pytest.raises(ValueError, match="needs a softmax head"):
        losses.get_loss("categorical_crossentropy", outputs=1)
    with pytest.raises(ValueError, match="is for a sigmoid head"):
        losses.get_loss("bce_dice_loss", outputs=3)


def test_registered_for_reload():
    import keras

    for fn in [*losses.LOSSES.values(), *metrics.METRICS.values()]:
        name = keras.saving.get_registered_name(fn)
        assert name == f"medseg>{fn.__name__}"
        assert keras.saving.get_registered_object(name) is fn
