"""Stand-in for the Zenodo OCTA FAZ zip: en-face OCTA-like PNGs with LabelMe FAZ polygons."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.synth.phantom import smooth_noise
from pipeline.synth.zips import with_folders, write_zip

TOP = "FAZ_sgementation"  # (sic) as the publisher spells it
CATEGORIES = ("deep", "superficial")
SIZES = ((304, 304), (320, 320), (360, 400))  # (rows, cols): 3x3 and 6x6 devices, one non-square
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "


def faz_polygon(rng: np.random.Generator, shape: tuple[int, int], points: int = 32) -> np.ndarray:
    """``(points, 2)`` float x,y outline of an irregular ellipse near the image centre."""
    rows, cols = shape
    cy = rows / 2 + rng.uniform(-0.05, 0.05) * rows
    cx = cols / 2 + rng.uniform(-0.05, 0.05) * cols
    radius = min(rows, cols) * rng.uniform(0.07, 0.11)
    ax, ay = radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.8, 1.2)
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    wobble = 1 + sum(rng.uniform(0, 0.07) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    return np.round(np.stack([cx + ax * wobble * np.cos(theta), cy + ay * wobble * np.sin(theta)], 1), 2)


def octa_image(rng: np.random.Generator, shape: tuple[int, int], polygon: np.ndarray, *, deep: bool) -> np.ndarray:
    """8-bit en-face image: bright vessel network on dark background, dark avascular zone in ``polygon``."""
    scale = min(shape)
    big = smooth_noise(rng, shape, 1.0, sigma=scale / (45 if deep else 30))
    fine = smooth_noise(rng, shape, 1.0, sigma=scale / 110)
    vessels = np.exp(-((big / 0.12) ** 2)) * (150 if deep else 190) + np.exp(-((fine / 0.2) ** 2)) * 80
    image = 30 + vessels + rng.normal(0, 8, shape)
    zone = np.zeros(shape, np.uint8)
    cv2.fillPoly(zone, [np.rint(polygon).astype(np.int32).reshape(-1, 1, 2)], 1)
    alpha = cv2.GaussianBlur(zone.astype(np.float32), (0, 0), 1.5)
    image = alpha * (18 + rng.normal(0, 4, shape)) + (1 - alpha) * image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def labelme(polygon: np.ndarray, image_name: str, shape: tuple[int, int], *, label: str = "FAZ",
            extra: np.ndarray | None = None) -> bytes:
    """LabelMe JSON of the FAZ polygon; ``extra`` adds a second polygon with another label."""
    shapes = [{"label": label, "points": polygon.tolist(), "group_id": None, "shape_type": "polygon", "flags": {}}]
    if extra is not None:
        shapes.append({"label": "vessel", "points": extra.tolist(), "group_id": None, "shape_type": "polygon",
                       "flags": {}})
    doc = {
        "version": "4.5.6",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": int(shape[0]),
        "imageWidth": int(shape[1]),
    }
    return json.dumps(doc, indent=2).encode()


def generate(out: Path, *, subjects: int = 12, seed: int = 0, name: str = "FAZ.zip") -> None:
    """Write ``out/<name>``: ``subjects`` images split over the deep and superficial categories.

    Every third image is stored as a 3-channel PNG with identical channels, sizes cycle through
    304x304, 320x320 and 360x400 (rows x cols); one macOS ``__MACOSX/._`` decoy is included.
    The FAZ label's spelling is not confirmed, so it is written both ways ("FAZ", and "faz" in the
    fourth file); the second file's JSON holds a second shape with another label (not the FAZ).
    """
    files: list[tuple[str, bytes]] = []
    for index in range(subjects):
        category = CATEGORIES[index % 2]
        number = index // 2 + 1
        rng = np.random.default_rng([seed, index])
        shape = SIZES[index % len(SIZES)]
        polygon = faz_polygon(rng, shape)
        image = octa_image(rng, shape, polygon, deep=category == "deep")
        if index % 3 == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        ok, png = cv2.imencode(".png", image)
        folder = f"{TOP}/{category}_all"
        files.append((f"{folder}/{number}.png", png.tobytes()))
        extra = polygon + [min(shape) * 0.3, 0] if index == 1 else None
        label = "faz" if index == 3 else "FAZ"
        files.append((f"{folder}/{number}.json", labelme(polygon, f"{number}.png", shape, label=label, extra=extra)))
    files.sort(key=lambda f: f[0])
    members = with_folders(files)
    members.append((f"__MACOSX/{TOP}/deep_all/._1.png", APPLEDOUBLE))
    write_zip(Path(out) / name, members)
