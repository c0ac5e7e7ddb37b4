"""Segmentation metrics: foreground Dice/IoU per image (thresholded) and the seeds' batch Dice.

Function metrics return one value per image, so Keras's epoch mean is the mean over images.
"""

from __future__ import annotations

import keras
from keras import ops

THRESHOLD = 0.5
_PACKAGE = "medseg"


def _hard_foreground(y_true, y_pred):
    """Binary ``(B, H, W, K)`` truth and prediction for the K foreground classes."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    classes = y_pred.shape[-1]
    if classes is not None and classes > 1:
        pred = ops.one_hot(ops.argmax(y_pred, axis=-1), classes)
        return y_true[..., 1:], pred[..., 1:]
    return y_true, ops.cast(y_pred >= THRESHOLD, "float32")


def _per_image(y_true, y_pred, iou: bool):
    t, p = _hard_foreground(y_true, y_pred)
    inter = ops.sum(t * p, axis=(1, 2))
    total = ops.sum(t, axis=(1, 2)) + ops.sum(p, axis=(1, 2))
    denom = total - inter if iou else total
    num = inter if iou else 2.0 * inter
    # Empty truth and empty prediction: a perfect answer, not 0/0.
    score = ops.where(denom > 0, num / ops.maximum(denom, 1.0), 1.0)
    return ops.mean(score, axis=-1)  # over foreground classes -> (B,)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def dice(y_true, y_pred):
    """Foreground Dice per image at threshold 0.5 (argmax for softmax); empty vs empty = 1."""
    return _per_image(y_true, y_pred, iou=False)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def iou(y_true, y_pred):
    """Foreground IoU per image at threshold 0.5 (argmax for softmax); empty vs empty = 1."""
    return _per_image(y_true, y_pred, iou=True)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def dice_coef(y_true, y_pred):
    """The seeds' Dice: soft, over the whole batch and every channel (background included
    for softmax), smoothed by 1; flatters results, kept only for comparison."""
    t = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    p = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
    return (2.0 * ops.sum(t * p) + 1.0) / (ops.sum(t) + ops.sum(p) + 1.0)


METRICS = {"dice": dice, "iou": iou, "dice_coef": dice_coef}


def default_metrics() -> list:
    """The metrics training logs: per-image foreground Dice and IoU, and the seeds' dice_coef."""
    return [dice, iou, dice_coef]
