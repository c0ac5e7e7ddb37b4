"""Building blocks for anatomy-like synthetic images: ellipsoids, smooth blobs, texture noise.

All functions take an explicit ``numpy.random.Generator`` so the same seed gives the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ellipsoid(shape: Sequence[int], center: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Boolean array (2D or 3D) that is True inside the axis-aligned ellipsoid, in voxel units."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii))
    return dist <= 1.0


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], scale: float, sigma: float = 2.0) -> np.ndarray:
    """Spatially correlated float32 noise with standard deviation about ``scale``."""
    import cv2

    noise = rng.standard_normal(tuple(shape)).astype(np.float32)
    if noise.ndim == 2:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
    else:
        noise = np.stack([cv2.GaussianBlur(s, (0, 0), sigma) for s in np.moveaxis(noise, -1, 0)], -1)
    std = float(noise.std()) or 1.0
    return noise * (scale / std)


def random_blob(
    rng: np.random.Generator, shape: Sequence[int], center: Sequence[float], radius: float, lumpiness: float = 0.35
) -> np.ndarray:
    """Boolean irregular blob: an ellipsoid whose radius is modulated by smooth noise."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    radii = [radius * rng.uniform(0.7, 1.3) for _ in shape]
    dist = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)))
    wobble = smooth_noise(rng, shape, lumpiness, sigma=max(1.0, radius / 3))
    return dist <= 1.0 + wobble
