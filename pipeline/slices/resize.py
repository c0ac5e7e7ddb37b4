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


def placement_for(shape: tuple[int, int], *, size: int, letterbox: bool,
                  spacing: tuple[float, float] | None = None, target_spacing: float | None = None) -> Placement:
    """The placement of an (H, W) slice in a ``size`` square: stretched, aspect-preserving, or physical.

    With ``target_spacing`` (mm per output pixel) and the slice's (row, column) ``spacing`` in mm,
    the slice is resampled to that pixel size and centred on the square, padded where smaller and
    cropped where larger (``offset`` is then negative), so every output pixel is the same size in
    every subject; ``letterbox`` does not apply.
    """
    h, w = int(shape[0]), int(shape[1])
    if size < 1 or h < 1 or w < 1:
        raise ValueError(f"cannot fit a {h}x{w} slice into a {size}x{size} square")
    if target_spacing is not None:
        if spacing is None or target_spacing <= 0 or min(spacing) <= 0:
            raise ValueError(f"target_spacing {target_spacing} mm needs a positive slice spacing, found {spacing}")
        sh, sw = (max(1, round(n * s / target_spacing)) for n, s in zip((h, w), spacing))
        return Placement((h, w), (sh, sw), ((size - sh) // 2, (size - sw) // 2), size)
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


def _windows(place: Placement) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(square region, scaled-slice region) that overlap: padding where the slice is smaller, a crop where larger."""
    out, src = [], []
    for offset, n in zip(place.offset, place.scaled):
        lo, hi = max(0, offset), min(place.size, offset + n)
        out.append(slice(lo, hi))
        src.append(slice(lo - offset, hi - offset))
    return (out[0], out[1]), (src[0], src[1])


def _to_square(scaled: np.ndarray, place: Placement) -> np.ndarray:
    if place.scaled == (place.size, place.size):
        return scaled
    square = np.zeros((place.size, place.size) + scaled.shape[2:], dtype=scaled.dtype)
    dst, src = _windows(place)
    square[dst] = scaled[src]
    return square


def place_image(image: np.ndarray, place: Placement) -> np.ndarray:
    """An (H, W[, C]) uint8 image on the square of ``place`` (area/bilinear, padding 0)."""
    return _to_square(_resize(image, place.scaled, image_interpolation(place.original, place.scaled)), place)


def place_mask(mask: np.ndarray, place: Placement) -> np.ndarray:
    """An (H, W) label map on the square of ``place``: nearest only, padding 0 (background)."""
    return _to_square(_resize(mask, place.scaled, MASK_INTERPOLATION), place)


def fit_to_square(
    image: np.ndarray, mask: np.ndarray, *, size: int, letterbox: bool,
    spacing: tuple[float, float] | None = None, target_spacing: float | None = None,
) -> tuple[np.ndarray, np.ndarray, Placement]:
    """Resize an (H, W[, C]) uint8 image and its (H, W) mask to ``size`` x ``size``.

    Letterboxing keeps the aspect ratio and pads (image 0, mask 0 = background) centred;
    ``target_spacing`` resamples to that many mm per pixel instead (see :func:`placement_for`).
    The mask only ever sees nearest-neighbour sampling, so it holds no value it did not hold before.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    place = placement_for(image.shape[:2], size=size, letterbox=letterbox, spacing=spacing,
                          target_spacing=target_spacing)
    return place_image(image, place), place_mask(mask, place), place


def restore_mask(mask_sq: np.ndarray, placement: Placement) -> np.ndarray:
    """Inverse of :func:`fit_to_square` for a (predicted) mask: drop the padding, nearest back to original.

    Parts of the slice a physical placement cropped off the square come back as background.
    """
    if mask_sq.shape[:2] != (placement.size, placement.size):
        raise ValueError(f"expected a {placement.size}x{placement.size} mask, found {mask_sq.shape[:2]}")
    dst, src = _windows(placement)
    if placement.offset[0] >= 0 and placement.offset[1] >= 0:
        scaled = mask_sq[dst]
    else:
        scaled = np.zeros(placement.scaled, dtype=mask_sq.dtype)
        scaled[src] = mask_sq[dst]
    return _resize(scaled, placement.original, MASK_INTERPOLATION)


def pixel_spacing(place: Placement, spacing: tuple[float, float]) -> tuple[float, float]:
    """(row, column) mm per pixel of the square, from the slice's own spacing and its placement."""
    return tuple(float(s) * o / n for s, o, n in zip(spacing, place.original, place.scaled))
