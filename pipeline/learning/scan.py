"""Segmenting a new, unlabelled scan: prepare's image path in, the predicted mask back on the source grid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.dataset.prepare import scan_squares
from pipeline.learning.predict import predict_array, probs_to_labels, resize_labels
from pipeline.learning.tfdata import images_for_model
from pipeline.learning.volume import rebuild_volume
from pipeline.slices.resize import restore_mask
from pipeline.sources.subject import Subject


@dataclass
class ScanPrediction:
    """Labels on the source grid (``(X, Y, Z)`` RAS+ for volumes, ``(N, H, W)`` for stacks) and the
    upright slices and their labels at source size, for pictures."""

    labels: np.ndarray
    display_images: np.ndarray
    display_labels: np.ndarray


def predict_scan(model, scan: Subject, *, size: int, letterbox: bool, intensity: Mapping[str, Any], axis: int,
                 channels: int, input_size: int, threshold: float, batch_size: int = 8,
                 target_spacing: float | None = None, context_slices: int = 0) -> ScanPrediction:
    """Run ``model`` on every slice of ``scan`` the way prepare and evaluate see slices.

    Intensity, upright slicing and the square placement are prepare's own functions; the model
    input is decoded as in training; predictions are resized nearest-only to the square, the
    placement undone and the slices stacked back on the source grid.
    """
    upright, squares, placement = scan_squares(scan, size=size, letterbox=letterbox, intensity=intensity, axis=axis,
                                               channels=channels, target_spacing=target_spacing,
                                               context_slices=context_slices)
    shown = []
    for start in range(0, len(squares), 64):  # bounded memory for long volumes
        x = images_for_model(squares[start:start + 64], input_size=input_size, channels=channels)
        for _, probs in predict_array(model, x, batch_size=batch_size):
            for small in probs_to_labels(probs, threshold=threshold):
                shown.append(restore_mask(resize_labels(small, (size, size)), placement))
    display_labels = np.stack(shown)
    if scan.layout == "stack":
        labels = display_labels
    else:
        labels = rebuild_volume(dict(enumerate(display_labels)), shape=scan.image.shape, axis=axis, placement=None)
    return ScanPrediction(labels, upright, display_labels)
