"""Segmentation losses by name: BCE/CCE plus soft Dice or IoU, registered for ``.keras`` reloads.

Shapes: ``y_true`` and ``y_pred`` are ``(B, H, W, C)`` floats; one class is a sigmoid channel
with ``y_true`` in {0, 1}, several classes are one-hot ``y_true`` against a softmax.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

SMOOTH = 1.0
_PACKAGE = "medseg"


def _foreground(y_true, y_pred):
    """The channels that hold foreground: the only one for sigmoid, 1..C-1 for softmax."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    if y_pred.shape[-1] is not None and y_pred.shape[-1] > 1:
        return y_true[..., 1:], y_pred[..., 1:]
    return y_true, y_pred


def _soft_overlap(y_true, y_pred):
    """Per-class intersection and sums over the whole batch (as the seeds' losses do)."""
    t, p = _foreground(y_true, y_pred)
    axes = (0, 1, 2)
    return ops.sum(t * p, axis=axes), ops.sum(t, axis=axes), ops.sum(p, axis=axes)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def dice_loss(y_true, y_pred):
    """1 - soft Dice of the foreground classes over the batch (smoothed, so empty batches are 0)."""
    inter, t, p = _soft_overlap(y_true, y_pred)
    return 1.0 - ops.mean((2.0 * inter + SMOOTH) / (t + p + SMOOTH))


@keras.saving.register_keras_serializable(package=_PACKAGE)
def iou_loss(y_true, y_pred):
    """1 - soft IoU (Jaccard) of the foreground classes over the batch."""
    inter, t, p = _soft_overlap(y_true, y_pred)
    return 1.0 - ops.mean((inter + SMOOTH) / (t + p - inter + SMOOTH))


def _bce(y_true, y_pred):
    return ops.mean(
        keras.losses.binary_crossentropy(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
    )


def _cce(y_true, y_pred):
    return ops.mean(
        keras.losses.categorical_crossentropy(
            ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        )
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy + Dice loss: the seeds' default for one class."""
    return _bce(y_true, y_pred) + dice_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def bce_iou_loss(y_true, y_pred):
    """Binary cross-entropy + IoU loss (the seeds' pancreas setting)."""
    return _bce(y_true, y_pred) + iou_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def categorical_crossentropy(y_true, y_pred):
    """Categorical cross-entropy on one-hot masks (the seeds' FlexUNet loss)."""
    return _cce(y_true, y_pred)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def cce_dice_loss(y_true, y_pred):
    """Categorical cross-entropy + Dice loss of the foreground classes."""
    return _cce(y_true, y_pred) + dice_loss(y_true, y_pred)


LOSSES: dict[str, Callable] = {
    "bce_dice_loss": bce_dice_loss,
    "dice_loss": dice_loss,
    "iou_loss": iou_loss,
    "bce_iou_loss": bce_iou_loss,
    "categorical_crossentropy": categorical_crossentropy,
    "cce_dice_loss": cce_dice_loss,
}
SIGMOID_ONLY = ("bce_dice_loss", "bce_iou_loss")
SOFTMAX_ONLY = ("categorical_crossentropy", "cce_dice_loss")


def get_loss(name: str, *, outputs: int | None = None) -> Callable:
    """The loss called ``name``; with the model's ``outputs``, also check it fits the model's head."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    if outputs == 1 and name in SOFTMAX_ONLY:
        raise ValueError(
            f"loss {name!r} needs a softmax head (train.head: softmax); with a sigmoid head use one of "
            f"{', '.join(n for n in LOSSES if n not in SOFTMAX_ONLY)}"
        )
    if outputs is not None and outputs > 1 and name in SIGMOID_ONLY:
        raise ValueError(
            f"loss {name!r} is for a sigmoid head, got a softmax head of {outputs} outputs; use "
            f"{', '.join(n for n in LOSSES if n not in SIGMOID_ONLY)}"
        )
    return LOSSES[name]
