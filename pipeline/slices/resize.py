"""Image/mask pairs to a fixed square: stretched or letterboxed, masks by nearest neighbour only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# Nearest neighbour that samples pixel centres (plain INTER_NEAREST is shifted by half a pixel on
# downscaling); still a pure copy of input values, so a mask keeps exactly its label set.
MASK_INTERPOLATION = cv2.INTER_NEAREST_EXACT


@dataclass(frozen=True)
class Placement:
    """Where an ``original`` (H, W) slice sits in the ``size`` x ``size`` output.

    The slice was resized to ``scaled`` (H, W) and pasted at ``offset`` (top, left); the rest is
    padding (letterbox) or nothing (stretch, ``scaled == (size, size)``).
    """

    original: tuple[int, int]
    scaled: tuple[int, int]
    offset: tuple[int, int]
    size: int

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Placement:
        return cls(tuple(data["original"]), tuple(data["scaled"]), tuple(data["offset"]), int(data["size"]))


def placement_for(shape: tuple[int, int], *, size: int, letterbox: bool) -> Placement:
    """The placement of an (H, W) slice in a ``size`` square, stretched or aspect-preserving."""
    h, w = int(shape[0]), int(shape[1])
    if size < 1 or h < 1 or w < 1:
        raise ValueError(f"cannot fit a {h}x{w} slice into a {size}x{size} square")
    if not letterbox:
        return Placement((h, w), (size, size), (0, 0), size)
    scale = size / max(h, w)
    sh, sw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    return Placement((h, w), (sh, sw), ((size - sh) // 2, (size - sw) // 2), size)


def _resize(array: np.ndarray, shape: tuple[int, int], interpolation: int) -> np.ndarray:
    if array.shape[:2] == tuple(shape):
        return np.ascontiguousarray(array)
    return cv2.resize(np.ascontiguousarray(array), (shape[1], shape[0]), interpolation=interpolation)


def image_interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    """Area averaging when shrinking (no aliasing), bilinear when enlarging either side."""
    return cv2.INTER_AREA if dst[0] <= src[0] and dst[1] <= src[1] else cv2.INTER_LINEAR


def fit_to_square(
    image: np.ndarray, mask: np.ndarray, *, size: int, letterbox: bool
) -> tuple[np.ndarray, np.ndarray, Placement]:
    """Resize an (H, W[, C]) uint8 image and its (H, W) mask to ``size`` x ``size``.

    Letterboxing keeps the aspect ratio and pads (image 0, mask 0 = background) centred.
    The mask only ever sees nearest-neighbour sampling, so it holds no value it did not hold before.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    place = placement_for(image.shape[:2], size=size, letterbox=letterbox)
    img = _resize(image, place.scaled, image_interpolation(place.original, place.scaled))
    msk = _resize(mask, place.scaled, MASK_INTERPOLATION)
    if place.scaled == (size, size):
        return img, msk, place
    top, left = place.offset
    bottom, right = size - top - place.scaled[0], size - left - place.scaled[1]
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    msk = cv2.copyMakeBorder(msk, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    return img, msk, place


def restore_mask(mask_sq: np.ndarray, placement: Placement) -> np.ndarray:
    """Inverse of :func:`fit_to_square` for a (predicted) mask: crop the padding, nearest back to original."""
    if mask_sq.shape[:2] != (placement.size, placement.size):
        raise ValueError(f"expected a {placement.size}x{placement.size} mask, found {mask_sq.shape[:2]}")
    top, left = placement.offset
    crop = mask_sq[top : top + placement.scaled[0], left : left + placement.scaled[1]]
    return _resize(crop, placement.original, MASK_INTERPOLATION)
