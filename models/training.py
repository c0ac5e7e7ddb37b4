"""Training helpers: optimizers by name and per-epoch prediction snapshots (no file I/O)."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}



def make_optimizer(
    name: str, *, learning_rate: float, clipvalue: float | None = None
) -> keras.optimizers.Optimizer:
    """A fresh optimizer called ``name`` (adam, sgd, rmsprop)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate, clipvalue=clipvalue)


def predicted_labels(probs: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """``(..., C)`` probabilities -> ``(...)`` uint8 class indices (threshold for one class)."""
    if probs.shape[-1] == 1:
        return (probs[..., 0] >= threshold).astype(np.uint8)
    return np.argmax(probs, axis=-1).astype(np.uint8)


def snapshot_panel(image: np.ndarray, truth: np.ndarray, labels: np.ndarray, *, colours: np.ndarray) -> np.ndarray:
    """Image | truth | prediction side by side as one ``(S, 3S, 3)`` uint8 RGB picture.

    ``image`` is ``(S, S, channels)`` float in [0, 1]; ``truth`` and ``labels`` are ``(S, S)``
    class indices; ``colours`` is ``(N, 3)`` uint8 RGB per class (the caller's palette: models/
    knows nothing of the library), classes beyond it take the last colour.
    """
    rgb = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    colours = np.asarray(colours, dtype=np.uint8)
    top = len(colours) - 1
    return np.concatenate([rgb[..., :3], colours[np.minimum(truth, top)], colours[np.minimum(labels, top)]], axis=1)


class EpochSnapshots(keras.callbacks.Callback):
    """Predict a few fixed images after every epoch and hand each panel to ``log(stem, epoch, panel)``.

    The seeds' EpochChangeInferencer, minus its file handling: the caller decides where panels go.
    """

    def __init__(
        self,
        stems: list[str],
        images: np.ndarray,
        masks: np.ndarray,
        log: Callable[[str, int, np.ndarray], None],
        colours: np.ndarray,
    ) -> None:
        super().__init__()
        self.stems, self.images, self.masks, self.log, self.colours = stems, images, masks, log, colours

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.stems:
            return
        labels = predicted_labels(np.asarray(self.model.predict(self.images, verbose=0)))
        for stem, image, truth, pred in zip(self.stems, self.images, self.masks, labels):
            self.log(stem, epoch, snapshot_panel(image, truth, pred, colours=self.colours))
