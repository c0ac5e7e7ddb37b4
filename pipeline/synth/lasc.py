"""Stand-in for LASC'13 / MSD Task02_Heart: imagesTr/labelsTr/imagesTs NIfTI, dataset.json, macOS decoys.

Two published forms (which one the Kaggle copy is was not seen): ``layout="kaggle"`` (the default,
as the seed reads it) writes ``Left_Atrial_Segmentation/`` with uncompressed ``.nii`` and no
``dataset.json``; ``layout="msd"`` writes the MSD tar's ``Task02_Heart/`` with ``.nii.gz`` and
``dataset.json``. Both have ``._`` AppleDouble decoys beside the volumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.formats.nifti import save_volume
from pipeline.synth.phantom import ellipsoid, random_blob, smooth_noise

# Case numbers as MSD Task02_Heart assigns them; more subjects continue after the last one.
TRAIN_IDS = (3, 4, 5, 7, 9, 10, 11, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 29, 30)
TEST_IDS = (1, 2, 6, 8, 12, 13, 15, 25, 27, 28)
ORIENTATIONS = ("LPS", "RAS", "LAS")
# What macOS leaves beside each file in an MSD tar (AppleDouble header); not a NIfTI.
DECOY = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02\x00\x00\x00\x09" + bytes(32)


def _ids(count: int, known: tuple[int, ...], start: int) -> list[int]:
    return list(known[:count]) + list(range(start, start + max(0, count - len(known))))


def _heart(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A thorax-like MRI volume (float, 0..~1), its left-atrium mask and the canonical affine."""
    n = int(rng.choice([96, 112, 128]))
    shape = (n, n + int(rng.choice([0, 16])), int(rng.integers(40, 61)))
    sxy = float(rng.choice([1.25, 1.25, 1.3]))
    spacing = (sxy, sxy, float(rng.choice([1.37, 1.37, 1.25])))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing) + rng.uniform(-10, 10, 3)

    nx, ny, nz = shape
    img = np.zeros(shape, np.float32)
    body = ellipsoid(shape, (nx / 2, ny / 2, nz / 2), (nx * 0.46, ny * 0.38, nz * 0.9))
    img[body] = 0.25
    myo = ellipsoid(shape, (nx * 0.58, ny * 0.55, nz * 0.45), (nx * 0.16, ny * 0.14, nz * 0.25))
    img[myo] = 0.35
    lv = ellipsoid(shape, (nx * 0.6, ny * 0.56, nz * 0.45), (nx * 0.1, ny * 0.08, nz * 0.18))
    img[lv] = 0.8  # bright blood pool that is not the atrium
    aorta = ellipsoid(shape, (nx * 0.45, ny * 0.5, nz / 2), (nx * 0.05, nx * 0.05, nz * 0.6))
    img[aorta] = 0.75
    center = (nx * rng.uniform(0.42, 0.52), ny * rng.uniform(0.36, 0.44), nz * rng.uniform(0.45, 0.6))
    atrium = random_blob(rng, shape, center, radius=min(nx, nz * spacing[2] / sxy) * 0.17, lumpiness=0.25)
    atrium &= body
    img[atrium] = float(rng.uniform(0.85, 1.0))
    img = img * (1.0 + smooth_noise(rng, shape, 0.12, sigma=n / 5))  # coil shading
    img = img + smooth_noise(rng, shape, 0.04, sigma=1.0) * body + np.abs(rng.normal(0, 0.02, shape))
    return np.clip(img, 0, None).astype(np.float32), atrium, affine


LAYOUTS = {"kaggle": ("Left_Atrial_Segmentation", ".nii"), "msd": ("Task02_Heart", ".nii.gz")}


def generate(out: Path, *, subjects: int = 6, seed: int = 5, layout: str = "kaggle", **options: object) -> None:
    """Write the task folder with ``subjects`` labelled cases and about half as many test cases.

    Images are int16 MRI-like volumes (96-128 in plane, 40-60 slices, ~1.25x1.25x1.37 mm) with a
    bright atrium blob where ``labelsTr`` is 1; stored orientation cycles through LPS, RAS, LAS.
    ``._la_XXX.nii.gz`` AppleDouble decoys sit beside the training files as in the MSD tar.
    """
    if options or layout not in LAYOUTS:
        raise TypeError(f"lasc synth: unknown options {sorted(options)} or layout {layout!r}; known: subjects, seed, "
                        f"layout ({', '.join(LAYOUTS)})")
    top, suffix = LAYOUTS[layout]
    root = Path(out) / top
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    train, test = _ids(subjects, TRAIN_IDS, 31), _ids(max(1, subjects // 2), TEST_IDS, 31 + subjects)
    test = [t + 1000 if t in train else t for t in test]
    for i, case in enumerate(train + test):
        rng = np.random.default_rng([seed, case])
        image, atrium, affine = _heart(rng)
        name = f"la_{case:03d}{suffix}"
        scale = float(rng.uniform(400, 1500))
        orientation = ORIENTATIONS[i % len(ORIENTATIONS)]
        stored = np.round(image * scale).astype(np.int16)
        if case in train:
            save_volume(root / "imagesTr" / name, stored, affine, orientation=orientation)
            save_volume(root / "labelsTr" / name, atrium, affine, orientation=orientation, dtype=np.uint8)
            for sub in ("imagesTr", "labelsTr"):
                (root / sub / f"._{name}").write_bytes(DECOY)
        else:
            save_volume(root / "imagesTs" / name, stored, affine, orientation=orientation)
    if layout == "kaggle":
        return
    meta = {
        "name": "LeftAtrium",
        "description": "Left atrium segmentation (synthetic stand-in)",
        "reference": "King's College London",
        "licence": "CC-BY-SA 4.0",
        "relase": "1.0 04/05/2018",  # sic: the key as MSD spells it
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "left atrium"},
        "numTraining": len(train),
        "numTest": len(test),
        "training": [
            {"image": f"./imagesTr/la_{c:03d}.nii.gz", "label": f"./labelsTr/la_{c:03d}.nii.gz"} for c in train
        ],
        "test": [f"./imagesTs/la_{c:03d}.nii.gz" for c in test],
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=4) + "\n")
