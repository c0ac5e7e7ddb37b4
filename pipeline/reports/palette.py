"""Every colour the project paints, in one place (plain data, no I/O: models/ may import it).

RGB tuples/arrays; OpenCV writers convert to BGR at the very end.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASS_COLOURS", "MASK_PANEL_COLOURS", "ERROR_COLOURS", "SPLIT_COLOURS", "TEXT_COLOUR", "class_rgb"]

# Class index -> RGB for label maps tinted or shown in colour (infer's colour/ and overlays/, the
# evaluate triptychs, the prepare/augment montages): background black, then well-separated colours,
# class 1 red as in most viewers. Classes beyond the list wrap around it (background excluded).
CLASS_COLOURS: np.ndarray = np.array(
    [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
     [255, 128, 0], [128, 0, 255], [0, 128, 255]],
    dtype=np.uint8,
)
CLASS_COLOURS.setflags(write=False)

# Masks shown on their own beside the image (train's per-epoch snapshots): class 1 white, as a 0/255
# binary mask looks in any viewer; further classes in distinct colours.
MASK_PANEL_COLOURS: np.ndarray = np.array(
    [[0, 0, 0], [255, 255, 255], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
     [245, 130, 48], [145, 30, 180]],
    dtype=np.uint8,
)
MASK_PANEL_COLOURS.setflags(write=False)

# Prediction against ground truth (evaluate's overlays): true positive, false positive, false negative.
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {"tp": (0, 200, 0), "fp": (255, 0, 0), "fn": (0, 96, 255)}

# Bars of the train, valid and test splits in the prepare report (matplotlib colour strings).
SPLIT_COLOURS: tuple[str, ...] = ("#4c72b0", "#dd8452", "#55a868")

TEXT_COLOUR: tuple[int, int, int] = (0, 0, 0)  # titles drawn into montages


def class_rgb(index: int) -> tuple[float, float, float]:
    """A class colour as matplotlib's 0..1 floats."""
    return tuple(float(c) / 255.0 for c in CLASS_COLOURS[index])  # type: ignore[return-value]
