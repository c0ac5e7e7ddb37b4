"""Mask encoding on disk, in one place: 0/255 for one class, class index or rgb_map colours for several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.slices.slicing import forward

RgbMap = Mapping[int, Sequence[int]]


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    found = np.unique(labels)
    bad = found[found > num_classes]
    if bad.size:
        raise ValueError(
            f"mask holds labels {bad.tolist()}; expected 0..{num_classes} (0 background, "
            f"{num_classes} foreground class{'es' if num_classes > 1 else ''})"
        )


def check_labels(labels: np.ndarray, *, num_classes: int) -> None:
    """Raise ValueError when ``labels`` hold a class above ``num_classes`` (cheap max first)."""
    if labels.size and int(np.max(forward(labels))) > num_classes:
        _check_labels(labels, num_classes)


def encoding_lut(*, num_classes: int = 1, rgb_map: RgbMap | None = None) -> np.ndarray:
    """Look-up table class index -> written value: (256,) grey, or (256, 3) BGR with ``rgb_map``.

    ``lut[labels]`` encodes a whole slice in one vectorised step (labels already checked).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, found {num_classes}")
    if rgb_map is None:
        lut = np.arange(256, dtype=np.uint8)
        if num_classes == 1:
            lut[1] = 255
        return lut
    missing = [c for c in range(num_classes + 1) if c not in rgb_map]
    if missing:
        raise ValueError(f"rgb_map has no colour for classes {missing}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    for cls in range(num_classes + 1):
        lut[cls] = np.asarray(rgb_map[cls], dtype=np.uint8)[::-1]  # RGB -> BGR
    if len({tuple(lut[c]) for c in range(num_classes + 1)}) != num_classes + 1:
        raise ValueError("rgb_map gives two classes the same colour")
    return lut


def encode_mask(labels: np.ndarray, *, num_classes: int = 1, rgb_map: RgbMap | None = None) -> np.ndarray:
    """Class indices (H, W) uint8 ``0..num_classes`` to the array written as PNG.

    ``num_classes`` counts foreground classes (as params' ``prepare.num_classes``). One class: single
    channel 0/255. Several: single-channel class index, or with ``rgb_map`` ``{class: (r, g, b)}`` a
    3-channel image in OpenCV's BGR order, ready for ``cv2.imencode``.
    """
    lut = encoding_lut(num_classes=num_classes, rgb_map=rgb_map)
    labels = np.asarray(labels)
    check_labels(labels, num_classes=num_classes)
    return lut[labels.astype(np.uint8, copy=False)]


def decode_mask(png: np.ndarray, *, num_classes: int = 1, rgb_map: RgbMap | None = None) -> np.ndarray:
    """Inverse of :func:`encode_mask`: a mask read with cv2 (``IMREAD_UNCHANGED``) to class indices.

    Raises ValueError on any value or colour that the encoding cannot produce.
    """
    png = np.asarray(png)
    if rgb_map is not None:
        if png.ndim != 3 or png.shape[2] != 3:
            raise ValueError(f"rgb_map masks are 3-channel, found shape {png.shape}")
        out = np.full(png.shape[:2], 255, dtype=np.uint8)
        for cls in range(num_classes + 1):
            bgr = np.asarray(rgb_map[cls], dtype=np.uint8)[::-1]
            out[np.all(png == bgr, axis=2)] = cls
        if (out == 255).any():
            colours = np.unique(png[out == 255].reshape(-1, 3)[:, ::-1], axis=0)[:5].tolist()
            raise ValueError(f"mask holds colours not in rgb_map (RGB): {colours}")
        return out
    if png.ndim != 2:
        raise ValueError(f"expected a single-channel mask, found shape {png.shape}")
    if num_classes == 1:
        bad = np.unique(png[(png != 0) & (png != 255)])
        if bad.size:
            raise ValueError(f"one-class mask must be 0/255, found values {bad[:10].tolist()}")
        return (png == 255).astype(np.uint8)
    _check_labels(png, num_classes)
    return png.astype(np.uint8, copy=True)
