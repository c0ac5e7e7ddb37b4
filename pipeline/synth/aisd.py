"""Stand-in for AISD: image.zip and mask.zip with per-case folders of 8-bit per-slice head NCCT PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.synth.phantom import ellipsoid, random_blob, smooth_noise
from pipeline.synth.zips import with_folders, write_zip

SIZE = 256


def head_slice(rng: np.random.Generator, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Float 8-bit-windowed axial slice at height ``z`` in [-1, 1] and its boolean brain region."""
    shape = (SIZE, SIZE)
    extent = np.sqrt(max(1 - z * z, 0.05))
    centre = (SIZE / 2, SIZE / 2)
    outer = ellipsoid(shape, centre, (105 * extent, 88 * extent))
    brain = ellipsoid(shape, centre, (97 * extent, 80 * extent))
    image = np.where(outer, 245.0, 0.0)
    image[brain] = 118.0
    if abs(z) < 0.5:  # lateral ventricles: CSF darker than brain
        for dx in (-13, 13):
            image[ellipsoid(shape, (SIZE / 2 - 8, SIZE / 2 + dx), (28 * extent, 7 * extent))] = 62.0
    texture = smooth_noise(rng, shape, 4.0, sigma=1.5) + rng.normal(0, 3, shape)
    return np.where(outer, image + texture, image), brain


def generate(out: Path, *, subjects: int = 8, seed: int = 0, min_slices: int = 12, max_slices: int = 20) -> None:
    """Write ``out/image.zip`` and ``out/mask.zip``: ``subjects`` cases, ``<case id>/<n>.png`` per slice.

    Each case has a hypodense lesion on a run of consecutive slices (mask 255 there, 0 elsewhere);
    the other slices have empty masks. Slice names ``1.png .. N.png`` (not zero padded).
    """
    ids = np.random.default_rng([seed, 10**6]).choice(10**7, size=subjects, replace=False)
    images, masks = [], []
    for index, case_number in enumerate(sorted(ids)):
        rng = np.random.default_rng([seed, index])
        case = f"{case_number:07d}"
        slices = int(rng.integers(min_slices, max_slices + 1))
        run = min(int(rng.integers(3, 7)), max(1, slices - 2))
        low = slices // 4
        first = int(rng.integers(low, max(low + 1, slices - low - run + 1)))
        side = rng.choice([-1, 1])
        centre = (SIZE / 2 + rng.uniform(-20, 20), SIZE / 2 + side * rng.uniform(30, 45))
        for number in range(1, slices + 1):
            image, brain = head_slice(rng, 2 * (number - 0.5) / slices - 1)
            lesion = np.zeros((SIZE, SIZE), bool)
            if first <= number - 1 < first + run:
                lesion = random_blob(rng, (SIZE, SIZE), centre, rng.uniform(12, 20)) & brain
                image[lesion] -= 22.0
            name = f"{case}/{number}.png"
            images.append((name, cv2.imencode(".png", np.clip(np.rint(image), 0, 255).astype(np.uint8))[1].tobytes()))
            masks.append((name, cv2.imencode(".png", lesion.astype(np.uint8) * 255)[1].tobytes()))
    write_zip(Path(out) / "image.zip", with_folders(images))
    masks.sort(key=lambda m: m[0])  # plain name order (1, 10, 11, .., 2): pairing must go by name
    write_zip(Path(out) / "mask.zip", with_folders(masks))
