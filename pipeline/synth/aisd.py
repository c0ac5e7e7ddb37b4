"""Stand-in for AISD: image.zip and mask.zip with per-case folders of 8-bit per-slice head NCCT PNGs.

As the publisher ships it (SOURCES.md): ``image/<7-digit case id>/<n>.png`` and the same names in
``mask/``; masks hold the publisher's classes 0-5 (1 remote infarct, 2 clear acute, 3 blurred acute,
4 invisible acute, 5 infarct). What is not certain is written both ways: most masks are grey PNGs,
one case's are palette PNGs; most images are grey, one case's are 3-channel.
"""

from __future__ import annotations

from pathlib import Path

import io

import cv2
import numpy as np
from PIL import Image

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


OFFICIAL_TEST_CASE = "0073410"  # first of the publisher's 52 official test cases (README item 5)
VISIBLE = (1, 2, 3, 5)  # classes drawn as hypodense; class 4 (invisible acute) leaves the image as it is


def _palette_png(mask: np.ndarray) -> bytes:
    """A palette PNG whose indices are the classes and whose palette shows them in colour."""
    img = Image.fromarray(mask, mode="P")
    img.putpalette([0, 0, 0, 255, 255, 0, 255, 0, 0, 255, 128, 0, 0, 0, 255, 0, 255, 255] + [0] * (3 * 250))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def generate(out: Path, *, subjects: int = 8, seed: int = 0, min_slices: int = 12, max_slices: int = 20) -> None:
    """Write ``out/image.zip`` and ``out/mask.zip``: ``subjects`` cases, ``image/<case id>/<n>.png`` per slice.

    Each case has a hypodense lesion on a run of consecutive slices, labelled with one of the
    visible classes {1, 2, 3, 5} (a class-3 rim around a class-2 core in some cases), and a
    class-4 (invisible acute) patch on the slice after the run with no hypodensity: a slice whose
    only label is 4. The first case is the publisher's official test case 0073410. The first
    case's last (empty) slice has no mask file; the second case's masks are palette PNGs and the
    third case's images 3-channel. Slice names ``1.png .. N.png`` (not zero padded).
    """
    rng0 = np.random.default_rng([seed, 10**6])
    ids = sorted({f"{n:07d}" for n in rng0.choice(10**7, size=subjects, replace=False)} - {OFFICIAL_TEST_CASE})
    ids = [OFFICIAL_TEST_CASE, *ids[: subjects - 1]] if subjects else []
    images, masks = [], []
    for index, case in enumerate(ids):
        rng = np.random.default_rng([seed, index])
        slices = int(rng.integers(min_slices, max_slices + 1))
        run = min(int(rng.integers(3, 7)), max(1, slices - 3))
        low = slices // 4
        first = int(rng.integers(low, max(low + 1, slices - low - run)))
        side = rng.choice([-1, 1])
        centre = (SIZE / 2 + rng.uniform(-20, 20), SIZE / 2 + side * rng.uniform(30, 45))
        label = int(VISIBLE[index % len(VISIBLE)])
        rim = index % 3 == 1
        for number in range(1, slices + 1):
            image, brain = head_slice(rng, 2 * (number - 0.5) / slices - 1)
            mask = np.zeros((SIZE, SIZE), np.uint8)
            if first <= number - 1 < first + run:
                lesion = random_blob(rng, (SIZE, SIZE), centre, rng.uniform(12, 20)) & brain
                image[lesion] -= 22.0
                mask[lesion] = label
                if rim:  # blurred acute (3) around clear acute (2)
                    core = cv2.erode(lesion.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
                    mask[lesion] = 3
                    mask[core] = 2
            elif number - 1 == first + run:  # invisible acute: labelled, not visible on NCCT
                mask[random_blob(rng, (SIZE, SIZE), centre, 8.0) & brain] = 4
            name = f"{case}/{number}.png"
            grey = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            images.append((f"image/{name}", _png(np.repeat(grey[:, :, None], 3, 2) if index == 2 else grey)))
            if index == 0 and number == slices:
                continue  # a slice shipped without a mask file
            masks.append((f"mask/{name}", _palette_png(mask) if index == 1 else _png(mask)))
    write_zip(Path(out) / "image.zip", with_folders(images))
    masks.sort(key=lambda m: m[0])  # plain name order (1, 10, 11, .., 2): pairing must go by name
    write_zip(Path(out) / "mask.zip", with_folders(masks))
