"""Report pictures as byte-reproducible PNGs: split counts and image | mask | overlay montages."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipeline.reports.palette import SPLIT_COLOURS, class_rgb  # noqa: E402

DPI = 100
_METADATA = {"Software": None}  # no version/timestamp in the file: same data, same bytes


def _save(fig, path: Path) -> None:
    """Write via a temporary name and rename, so a killed run leaves no half picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI, metadata=_METADATA)
    plt.close(fig)
    os.replace(tmp, path)


def save_split_counts(path: Path, pairs: Mapping[str, int], subjects: Mapping[str, int], *, title: str) -> None:
    """Bar chart of image/mask pairs and subjects per split (two panels, counts written on the bars)."""
    names = list(pairs)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, counts, label in ((axes[0], pairs, "image/mask pairs"), (axes[1], subjects, "subjects")):
        values = [int(counts.get(n, 0)) for n in names]
        bars = ax.bar(names, values, color=list(SPLIT_COLOURS[: len(names)]))
        ax.bar_label(bars, labels=[str(v) for v in values])
        ax.set_title(label)
        ax.set_ylim(0, max(values + [1]) * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def overlay(image: np.ndarray, mask: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """RGB float image with foreground (mask > 0) tinted in class 1's colour."""
    grey = image.astype(np.float32) / 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey[..., ::-1]  # cv2 BGR -> RGB
    fg = mask > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * np.array(class_rgb(1), dtype=np.float32)
    return rgb


def save_montage(
    path: Path, samples: Sequence[tuple[np.ndarray, np.ndarray]], *, title: str, columns: int = 2,
    labels: Sequence[str] | None = None,
) -> None:
    """Montage of (image, mask) samples, each shown as image | mask | overlay, ``columns`` samples per row.

    ``image`` is (H, W) grey or (H, W, 3) BGR uint8; ``mask`` is (H, W) class indices (or 0/255).
    ``labels`` (optional) titles each sample. An empty list gives a picture saying so.
    """
    columns = max(1, min(columns, len(samples) or 1))
    rows = max(1, math.ceil(len(samples) / columns))
    fig, axes = plt.subplots(rows, 3 * columns, figsize=(3 * columns * 2.0, rows * 2.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not samples:
        axes[0, 0].text(0, 0.5, "no samples", fontsize=12)
    for i, (image, mask) in enumerate(samples):
        r, c = divmod(i, columns)
        top = np.max(mask) if np.size(mask) else 0
        panels = (
            (image if image.ndim == 2 else image[..., ::-1], {"cmap": "gray", "vmin": 0, "vmax": 255}),
            (mask, {"cmap": "gray", "vmin": 0, "vmax": max(1, int(top))}),
            (overlay(image, mask), {}),
        )
        for j, (data, kw) in enumerate(panels):
            ax = axes[r, 3 * c + j]
            ax.imshow(data, interpolation="nearest", **kw)
            name = labels[i] if labels else f"#{i}"
            ax.set_title(f"{name} {('image', 'mask', 'overlay')[j]}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
