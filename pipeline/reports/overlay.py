"""Pictures of masks: colourised label maps, alpha-blended overlays, TP/FP/FN maps, triptychs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.reports.palette import CLASS_COLOURS, ERROR_COLOURS, TEXT_COLOUR

__all__ = ["to_rgb", "colorize", "blend", "error_overlay", "error_legend", "with_legend", "montage", "triptych",
           "save_rgb"]

ERROR_NAMES = {"tp": "TP (hit)", "fp": "FP (extra)", "fn": "FN (missed)"}


def to_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 ``(H, W)`` or ``(H, W, 1|3)`` image as ``(H, W, 3)`` RGB (grey replicated)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, found {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image
    raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3), found shape {image.shape}")


def colorize(mask: np.ndarray, *, palette: np.ndarray = CLASS_COLOURS) -> np.ndarray:
    """Class indices ``(H, W)`` to an RGB picture; classes beyond the palette wrap around it."""
    if mask.ndim != 2:
        raise ValueError(f"expected a (H, W) label map, found shape {mask.shape}")
    idx = mask.astype(np.intp)
    return palette[np.where(idx == 0, 0, (idx - 1) % (len(palette) - 1) + 1)]


def _blend_where(rgb: np.ndarray, colour_map: np.ndarray, where: np.ndarray, alpha: float) -> np.ndarray:
    """Float alpha blending on the ``where`` pixels only, rounded back to uint8 (no wrap-around)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, found {alpha}")
    out = rgb.astype(np.float32)
    mixed = (1.0 - alpha) * out + alpha * colour_map.astype(np.float32)
    out[where] = mixed[where]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blend(image: np.ndarray, mask: np.ndarray, *, alpha: float = 0.45,
          palette: np.ndarray = CLASS_COLOURS) -> np.ndarray:
    """The image with each foreground class tinted in its palette colour; background untouched."""
    rgb = to_rgb(image)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    return _blend_where(rgb, colorize(mask, palette=palette), mask > 0, alpha)


def error_overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, *, alpha: float = 0.6,
                  colours: dict[str, tuple[int, int, int]] = ERROR_COLOURS) -> np.ndarray:
    """TP green, FP red, FN blue over the image; a pixel of the wrong class counts as FP."""
    rgb = to_rgb(image)
    if not rgb.shape[:2] == pred.shape == truth.shape:
        raise ValueError(f"image {rgb.shape[:2]}, prediction {pred.shape}, truth {truth.shape} differ")
    tp = (pred > 0) & (pred == truth)
    fp = (pred > 0) & (pred != truth)
    fn = (truth > 0) & (pred == 0)
    colour_map = np.zeros_like(rgb)
    for name, sel in (("tp", tp), ("fp", fp), ("fn", fn)):
        colour_map[sel] = colours[name]
    return _blend_where(rgb, colour_map, tp | fp | fn, alpha)


def error_legend(colours: dict[str, tuple[int, int, int]] = ERROR_COLOURS) -> list[tuple[str, tuple[int, int, int]]]:
    """The (label, colour) entries of ``error_overlay``'s colours, in TP, FP, FN order."""
    return [(ERROR_NAMES[key], colours[key]) for key in ("tp", "fp", "fn")]


def with_legend(rgb: np.ndarray, entries: Sequence[tuple[str, tuple[int, int, int]]], *, height: int = 22) -> np.ndarray:
    """The picture with a white strip below it: one colour swatch and its label per entry."""
    rgb = to_rgb(rgb)
    strip = np.full((height, rgb.shape[1], 3), 255, dtype=np.uint8)
    x, box, scale = 4, height - 8, 0.4
    for label, colour in entries:
        cv2.rectangle(strip, (x, 4), (x + box, 4 + box), tuple(int(c) for c in colour), thickness=-1)
        cv2.putText(strip, label, (x + box + 3, height - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, 1,
                    cv2.LINE_AA)
        x += box + 8 + cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    return np.vstack([rgb, strip])


def montage(rows: Sequence[Sequence[np.ndarray]], *, titles: Sequence[str] = (), tile: int = 256,
            gap: int = 4) -> np.ndarray:
    """A grid of RGB tiles (each resized to ``tile`` x ``tile``), with optional column titles."""
    if not rows or not rows[0]:
        raise ValueError("montage needs at least one row with one picture")
    ncol = max(len(r) for r in rows)
    head = 28 if titles else 0
    h = head + len(rows) * tile + (len(rows) + 1) * gap
    w = ncol * tile + (ncol + 1) * gap
    canvas = np.full((h, w, 3), 255, dtype=np.uint8)
    for j, title in enumerate(titles[:ncol]):
        cv2.putText(canvas, str(title), (gap + j * (tile + gap) + 4, 20), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, TEXT_COLOUR, 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, pic in enumerate(row):
            # Pictures of masks: nearest keeps the label colours exact.
            small = cv2.resize(to_rgb(pic), (tile, tile), interpolation=cv2.INTER_NEAREST)
            y = head + gap + i * (tile + gap)
            x = gap + j * (tile + gap)
            canvas[y:y + tile, x:x + tile] = small
    return canvas


def triptych(items: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]], *,
             tile: int = 256) -> np.ndarray:
    """Rows of image | ground truth | prediction (masks colourised), like the seeds' README tables.

    ``items`` are ``(image, truth or None, pred)``; without any truth the middle column is dropped.
    """
    with_truth = any(t is not None for _, t, _ in items)
    rows = []
    for image, truth, pred in items:
        row = [to_rgb(image)]
        if with_truth:
            row.append(colorize(truth) if truth is not None else np.zeros_like(to_rgb(image)))
        row.append(colorize(pred))
        rows.append(row)
    titles = ["image", "ground truth", "prediction"] if with_truth else ["image", "prediction"]
    return montage(rows, titles=titles, tile=tile)


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB picture as PNG (OpenCV wants BGR)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(to_rgb(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
