"""Stand-in for the MS brain MRI source (Mendeley 8bctsm8jz7): Patient-<n>/ FLAIR, T1, T2 + lesion masks.

What is not certain about the published headers is written both ways: odd patients' files carry no
orientation (qform/sform codes 0, pixdim 1, as reported for the Mendeley files), stored so that
slice ``[:, :, k]`` shows the head upright (axis 0 down the rows); even patients' files carry a full
header in a stored orientation cycling through RAS, LPS, LAS. Patient 2's T1 is cropped: the
sequences of one patient differ in shape and are not co-registered.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.formats.nifti import save_volume
from pipeline.synth.phantom import ellipsoid, random_blob, smooth_noise

SEQUENCES = ("Flair", "T1", "T2")
ORIENTATIONS = ("RAS", "LPS", "LAS")  # stored axis order cycles so canonicalisation matters
# Relative tissue brightness per sequence: scalp, grey matter, white matter, CSF, lesion.
TISSUE = {
    "Flair": {"scalp": 0.45, "gm": 0.55, "wm": 0.42, "csf": 0.08, "lesion": 1.0},
    "T1": {"scalp": 0.85, "gm": 0.45, "wm": 0.7, "csf": 0.12, "lesion": 0.28},
    "T2": {"scalp": 0.55, "gm": 0.6, "wm": 0.38, "csf": 1.0, "lesion": 0.85},
}
METADATA_NAME = "patient_info.xlsx"
MIN_SECTION_MM2 = 12.0  # smallest lesion cross-section drawn on a slice (about a 4 mm disc)


def _lesion(rng: np.random.Generator, shape: tuple[int, ...], center: np.ndarray, radius_mm: float,
            spacing: tuple[float, float, float]) -> np.ndarray:
    """Ovoid lesion in mm: a blob drawn on an isotropic in-plane grid, sampled at the thick slices.

    Cross-sections under ``MIN_SECTION_MM2`` are left out, as a rater skips a partial-volume sliver
    at a lesion's tip: a thick slice that grazes a lesion shows no bright spot to label."""
    iso = spacing[0]
    r_vox = radius_mm / iso
    half = int(np.ceil(r_vox * 2.2)) + 1
    blob = random_blob(rng, (2 * half + 1,) * 3, (half, half, half), r_vox)
    out = np.zeros(shape, bool)
    cx, cy, cz = (int(round(c)) for c in center)
    for k in range(shape[2]):
        zi = half + int(round((k - center[2]) * spacing[2] / iso))
        if not 0 <= zi <= 2 * half:
            continue
        x0, y0 = cx - half, cy - half
        xs = slice(max(x0, 0), min(x0 + 2 * half + 1, shape[0]))
        ys = slice(max(y0, 0), min(y0 + 2 * half + 1, shape[1]))
        section = blob[xs.start - x0 : xs.stop - x0, ys.start - y0 : ys.stop - y0, zi]
        if np.count_nonzero(section) * spacing[0] * spacing[1] >= MIN_SECTION_MM2:
            out[xs, ys, k] |= section
    return out


def _patient(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Images (float, 0..~1) and masks (bool) per sequence, in RAS canonical order, plus the affine."""
    nx = int(rng.choice([128, 144, 160]))
    ny = nx + int(rng.choice([0, 16, 32]))
    nz = int(rng.integers(20, 29))
    sxy = round(float(rng.uniform(0.9, 1.0)), 3)
    spacing = (sxy, sxy, float(rng.choice([3.0, 4.0, 5.0])))
    shape = (nx, ny, nz)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)

    c = np.array([nx / 2 + rng.uniform(-3, 3), ny / 2 + rng.uniform(-3, 3), nz * 0.45])
    r = np.array([nx * 0.36, ny * 0.42, nz * 0.5])
    head = ellipsoid(shape, c, r * 1.08)
    brain = ellipsoid(shape, c, r)
    wm = ellipsoid(shape, c, r * 0.8)
    csf = np.zeros(shape, bool)
    for side in (-1, 1):  # lateral ventricles, slightly asymmetric
        vc = c + [side * r[0] * 0.18, r[1] * 0.05, nz * 0.05]
        csf |= ellipsoid(shape, vc, [r[0] * rng.uniform(0.08, 0.12), r[1] * 0.35, r[2] * 0.3])

    lesions: list[tuple[np.ndarray, bool]] = []
    zlo, zhi = c[2] - r[2] * 0.45, c[2] + r[2] * 0.55  # top and bottom of the brain stay lesion-free
    while len(lesions) < int(rng.integers(3, 8)):
        p = c + rng.uniform(-1, 1, 3) * r * [0.6, 0.6, 1.0]
        if not (zlo <= p[2] <= zhi) or not wm[tuple(int(round(v)) for v in p)]:
            continue
        blob = _lesion(rng, shape, p, float(rng.uniform(4.0, 9.0)), spacing) & brain
        if blob.any():
            lesions.append((blob, not lesions or bool(rng.random() < 0.5)))  # T1 "black holes": a subset
    lesion = np.any([b for b, _ in lesions], axis=0)
    masks = {"Flair": lesion, "T2": lesion, "T1": np.any([b for b, hole in lesions if hole], axis=0)}

    bias = 1.0 + smooth_noise(rng, shape, 0.08, sigma=nx / 6)
    images = {}
    for seq in SEQUENCES:
        t = TISSUE[seq]
        img = np.zeros(shape, np.float32)
        img[head] = t["scalp"]
        img[brain] = t["gm"]
        img[wm] = t["wm"]
        img[csf & brain] = t["csf"]
        img[masks[seq] if seq != "T1" else lesion] = t["lesion"]
        img = img + smooth_noise(rng, shape, 0.03, sigma=1.5) * (img > 0)
        img = img * bias + np.abs(rng.normal(0, 0.015, shape)).astype(np.float32)
        images[seq] = np.clip(img, 0, None)
    return images, masks, affine


def _write_xlsx(path: Path, rows: list[list[object]]) -> None:
    """The metadata spreadsheet, with fixed zip and document timestamps so reruns are byte-identical."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Patients"
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2022-01-01T00:00:00Z", data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=(2022, 1, 1, 0, 0, 0)), data)


def save_unoriented(path: Path, array: np.ndarray, dtype: type) -> None:
    """Save a RAS+ canonical array with no orientation in the header (codes 0, pixdim 1), its axes
    stored as (posterior, left, superior): ``[:, :, k]`` is the upright radiological view."""
    stored = np.ascontiguousarray(np.asarray(array).transpose(1, 0, 2)[::-1, ::-1, :]).astype(dtype)
    img = nib.Nifti1Image(stored, None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    nib.save(img, str(path))


def generate(out: Path, *, subjects: int = 8, seed: int = 2, **options: object) -> None:
    """Write ``Patient-<n>/<n>-{Flair,T1,T2}.nii`` and ``<n>-LesionSeg-<seq>.nii`` plus metadata.

    Each patient has its own geometry (128-160 x 128-192 voxels in plane, 20-28 slices of 3-5 mm),
    int16 images in an arbitrary per-patient scale, 0/1 masks (float32 for every fourth patient,
    as some tools save them) and a stored orientation cycling through RAS, LPS, LAS.
    """
    if options:
        raise TypeError(f"ms synth: unknown options {sorted(options)}; known: subjects, seed")
    out = Path(out)
    rows: list[list[object]] = [["ID", "Gender", "Age", "Age of onset", "EDSS"]]
    for n in range(1, subjects + 1):
        rng = np.random.default_rng([seed, n])
        images, masks, affine = _patient(rng)
        folder = out / f"Patient-{n}"
        folder.mkdir(parents=True)
        orientation = ORIENTATIONS[(n - 1) % len(ORIENTATIONS)]
        scale = float(rng.uniform(300, 3000))
        mask_dtype = np.float32 if n % 4 == 0 else np.uint8
        for seq in SEQUENCES:
            img = np.clip(np.round(images[seq] * scale), 0, 32767).astype(np.int16)
            mask, seq_affine = masks[seq], affine
            if n == 2 and seq == "T1":  # not co-registered with FLAIR/T2: another field of view
                img, mask = img[6:-6, 4:-4, 1:], mask[6:-6, 4:-4, 1:]
                seq_affine = affine.copy()
                seq_affine[:3, 3] += affine[:3, :3] @ [6, 4, 1]
            mask_path = folder / f"{n}-LesionSeg-{seq}.nii"
            if n % 2:
                save_unoriented(folder / f"{n}-{seq}.nii", img, np.int16)
                save_unoriented(mask_path, mask, mask_dtype)
            else:
                save_volume(folder / f"{n}-{seq}.nii", img, seq_affine, orientation=orientation)
                save_volume(mask_path, mask, seq_affine, orientation=orientation, dtype=mask_dtype)
        age = int(rng.integers(18, 60))
        edss = float(rng.choice([0, 1, 1.5, 2, 3, 4.5]))
        rows.append([n, str(rng.choice(["F", "M"])), age, age - int(rng.integers(0, 15)), edss])
    _write_xlsx(out / METADATA_NAME, rows)
