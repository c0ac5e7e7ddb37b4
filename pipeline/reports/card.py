"""The dataset card: one PNG per prepared set with its counts, spacings, intensities and a sample montage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.reports.overlay import blend, montage
from pipeline.reports.palette import SPLIT_COLOURS
from pipeline.reports.plots import _save, plt


def save_dataset_card(
    path: Path, *, title: str, pairs: Mapping[str, int], subjects: Mapping[str, int],
    spacings: Sequence[Sequence[float]], histograms: Mapping[str, np.ndarray],
    samples: Sequence[tuple[np.ndarray, np.ndarray]], facts: Sequence[str] = (),
) -> None:
    """Counts per split, subject spacing and PNG intensity histograms above a montage of overlays.

    ``spacings``: one ``(sx, sy[, sz])`` mm per subject; ``histograms``: split -> 256 counts of the
    prepared images' grey values; ``samples``: ``(image, class-index mask)`` pairs shown blended.
    """
    fig = plt.figure(figsize=(12, 8.4))
    grid = fig.add_gridspec(2, 3, height_ratios=(1, 1.5))
    names = list(pairs)
    colours = dict(zip(names, SPLIT_COLOURS))

    ax = fig.add_subplot(grid[0, 0])
    x = np.arange(len(names))
    bars = ax.bar(x - 0.2, [pairs[n] for n in names], 0.4, color=[colours[n] for n in names], label="pairs")
    ax.bar_label(bars, fontsize=7)
    ax2 = ax.twinx()
    subj = ax2.bar(x + 0.2, [subjects.get(n, 0) for n in names], 0.4, color="none", edgecolor="k", hatch="//",
                   label="subjects")
    ax2.bar_label(subj, fontsize=7)
    ax.set_xticks(x, names)
    ax.set_title("pairs (filled) and subjects (hatched) per split", fontsize=9)

    ax = fig.add_subplot(grid[0, 1])
    values = np.asarray([list(s)[:3] + [np.nan] * (3 - len(list(s)[:3])) for s in spacings] or [[np.nan] * 3], float)
    for axis, label in enumerate(("x", "y", "z")):
        column = values[:, axis][np.isfinite(values[:, axis])]
        if column.size:
            ax.hist(column, bins=20, alpha=0.6, label=f"{label} (median {np.median(column):.3g})")
    ax.set_xlabel("spacing, mm per voxel")
    ax.set_ylabel("subjects")
    ax.legend(fontsize=7)
    ax.set_title("source spacing", fontsize=9)

    ax = fig.add_subplot(grid[0, 2])
    for name, counts in histograms.items():
        counts = np.asarray(counts, float)
        if counts.sum():
            ax.plot(np.arange(counts.size), counts / counts.sum(), color=colours.get(name), label=name, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("prepared grey value (0..255)")
    ax.set_ylabel("fraction of pixels")
    ax.legend(fontsize=7)
    ax.set_title("intensity after windowing", fontsize=9)

    ax = fig.add_subplot(grid[1, :])
    ax.axis("off")
    if samples:
        tiles = [blend(image if image.ndim == 2 else image[..., ::-1], mask) for image, mask in samples]
        ax.imshow(montage([tiles[i:i + 6] for i in range(0, len(tiles), 6)], tile=160), interpolation="nearest")
        ax.set_title("samples (mask tinted in its class colour)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no samples", ha="center")
    fig.suptitle(title + ("\n" + "   ".join(facts) if facts else ""), fontsize=10)
    fig.tight_layout()
    _save(fig, path)
