"""Running a trained model on PNG slices and moving label maps between the model's and the disk's grid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import DatasetError


def load_model(path: Path):
    """A ``.keras`` model with the project's custom losses/metrics registered (compiled if saved so)."""
    import keras

    import models.losses  # noqa: F401  (registers the custom objects)
    import models.metrics  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "model file not found; expected a .keras file written by stages.train")
    return keras.models.load_model(path)


def probs_to_labels(probs: np.ndarray, *, threshold: float) -> np.ndarray:
    """``(..., C)`` model output to ``(...)`` uint8 class indices: threshold for one class, argmax else."""
    if probs.shape[-1] == 1:
        return (probs[..., 0] >= threshold).astype(np.uint8)
    return np.argmax(probs, axis=-1).astype(np.uint8)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A ``(H, W)`` label map on another grid, nearest-neighbour only (labels stay labels)."""
    if labels.shape == tuple(shape):
        return labels
    # Nearest sampling at pixel centres (as pipeline.slices.resize does for masks); a pure copy of labels.
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)


def read_image(path: Path) -> np.ndarray:
    """An 8-bit PNG as stored: ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(path, "cannot be read as an image; expected an 8-bit PNG")
    if img.dtype != np.uint8:
        raise DatasetError(path, f"expected 8-bit pixels, found {img.dtype}; re-export as 8-bit PNG")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def predict_array(model, images: np.ndarray, *, batch_size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, probs)`` per batch of ``images`` ``(N, S, S, channels)``; probs ``(B, S, S, C)``."""
    for start in range(0, len(images), batch_size):
        yield start, np.asarray(model.predict_on_batch(images[start:start + batch_size]), np.float32)


def export_saved_model(model, path: Path) -> None:
    """Keras's own serving export: a TensorFlow SavedModel whose ``serve`` endpoint takes the model's
    input batch (float32 in [0, 1]) and returns its probabilities, for TF Serving, TFLite or tf2onnx.

    ``path`` must not exist yet (the caller removes an earlier export it wrote).
    """
    model.export(str(path), format="tf_saved_model", verbose=False)
