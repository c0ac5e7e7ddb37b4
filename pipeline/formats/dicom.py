"""The one DICOM series reader: slices ordered by position, HU values, RAS+ canonical geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from nibabel import orientations as ornts

from pipeline.errors import DatasetError

DICOM_SUFFIXES = {"", ".dcm", ".dicom", ".ima"}
_HEADER_TAGS = [
    "Modality", "ImageOrientationPatient", "ImagePositionPatient", "SeriesInstanceUID", "StudyInstanceUID",
    "PatientID", "RescaleSlope", "RescaleIntercept", "SeriesDescription", "InstanceNumber",
]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def dicom_files(folder: Path) -> list[Path]:
    """Files in ``folder`` that may be DICOM slices (not hidden; ``.dcm``, ``.dicom``, ``.ima`` or no suffix)."""
    return sorted(
        p for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in DICOM_SUFFIXES
    )


def canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``array`` and its RAS ``affine`` to RAS+ exactly as nibabel's ``as_closest_canonical``."""
    ornt = ornts.io_orientation(affine)
    if np.array_equal(ornt, ornts.axcodes2ornt(("R", "A", "S"))):
        return array, affine
    return ornts.apply_orientation(array, ornt), affine @ ornts.inv_ornt_aff(ornt, array.shape)


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """RAS+ affine mapping (x, y, z) = (column, row, slice) indices of a SimpleITK image to mm.

    SimpleITK geometry is LPS (DICOM patient coordinates); RAS flips the sign of x and y.
    """
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), float)
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def read_series(
    folder: Path, *, modality: str | None = "CT", spacing_tolerance: float = 0.1
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict[str, Any]]:
    """Read the single DICOM series in ``folder``.

    Slices are ordered by position along the slice normal (GDCM sorting), never by file name;
    RescaleSlope/RescaleIntercept are applied, so CT comes back in HU.

    Args:
        folder: a folder holding exactly one series (one file per slice).
        modality: the Modality tag every slice must carry (None: accept any).
        spacing_tolerance: largest allowed deviation of the gap between consecutive slices from
            the median gap, as a fraction of it (a larger one means a missing slice).

    Returns:
        ``(image, affine, spacing, meta)``: float32 ``(X, Y, Z)`` array in RAS+ canonical
        orientation, its 4x4 RAS+ affine in mm, ``(sx, sy, sz)`` in mm, and ``meta`` with the
        series' ``orientation`` as stored (axis codes, e.g. ``"LPS"``), UIDs, patient id,
        modality, rescale and the slice files in position order.

    Raises:
        DatasetError: no DICOM files, several series, unreadable or cut-short files, wrong
            modality, mixed orientations, missing or duplicate slices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(folder, "expected a folder holding one DICOM series, found no such folder")
    candidates = dicom_files(folder)
    if not candidates:
        raise DatasetError(folder, "no DICOM files (.dcm or no suffix) found; point the reader at a series folder")
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    by_series = {sid: reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    if len(by_series) > 1:
        listing = ", ".join(f"{sid} ({len(files)} files)" for sid, files in by_series.items())
        raise DatasetError(
            folder, f"expected one DICOM series per folder, found {len(by_series)}: {listing}; "
            "move each series into its own folder"
        )
    names = [Path(n) for n in next(iter(by_series.values()), [])]
    unreadable = sorted(set(candidates) - set(names))
    if unreadable:
        shown = ", ".join(p.name for p in unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        raise DatasetError(
            unreadable[0] if len(unreadable) == 1 else folder,
            f"{len(unreadable)} of {len(candidates)} DICOM files are unreadable or cut short ({shown}); "
            "download them again",
        )
    try:  # force: GDCM accepts files without the 128-byte preamble, so pydicom must read them too
        headers = [pydicom.dcmread(n, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True)
                   for n in names]
    except Exception as exc:  # noqa: BLE001  (pydicom raises InvalidDicomError, a bare Exception)
        raise DatasetError(folder, f"a DICOM header cannot be read ({type(exc).__name__}: {exc}); "
                                   "download the series again") from exc
    _check_headers(folder, names, headers, modality=modality, spacing_tolerance=spacing_tolerance)

    reader.SetFileNames([str(n) for n in names])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        with open(names[0], "rb") as f:
            bare = f.read(132)[128:] != b"DICM"
        hint = "; its files lack the 128-byte DICOM preamble: save them again with one" if bare else ""
        raise DatasetError(folder, f"SimpleITK could not read the series: {str(err).strip()[:300]}{hint}") from err
    array = np.transpose(sitk.GetArrayViewFromImage(image), (2, 1, 0))
    affine = sitk_affine(image)
    stored = "".join(ornts.aff2axcodes(affine))
    array, affine = canonical(array, affine)
    # a copy (SimpleITK's buffer can go) in memory order, not C order: keeps each axial slice one
    # contiguous block, as display_stack wants it (a C-order copy is a 0.9 s transpose at 512x512x300)
    array = np.array(array, dtype=np.float32, order="K")
    spacing = tuple(round(float(s), 6) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    first = headers[0]
    meta = {
        "orientation": stored,
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "study_uid": str(first.get("StudyInstanceUID", "")),
        "patient_id": str(first.get("PatientID", "")),
        "modality": str(first.get("Modality", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "rescale_slope": float(first.get("RescaleSlope", 1.0)),
        "rescale_intercept": float(first.get("RescaleIntercept", 0.0)),
        "files": tuple(str(n) for n in names),
    }
    return array, affine, spacing, meta


def _check_headers(
    folder: Path, names: list[Path], headers: list[pydicom.Dataset], *, modality: str | None,
    spacing_tolerance: float,
) -> None:
    """Raise on wrong modality, mixed orientations, missing geometry, missing or duplicate slices."""
    if modality is not None:
        wrong = [(n, h.get("Modality")) for n, h in zip(names, headers) if h.get("Modality") != modality]
        if wrong:
            raise DatasetError(
                wrong[0][0], f"expected Modality {modality}, found {wrong[0][1]!r} "
                f"({len(wrong)} of {len(names)} files in {folder.name}); point the reader at the {modality} series"
            )
    geometry = ("ImageOrientationPatient", "ImagePositionPatient")
    missing = [n.name for n, h in zip(names, headers) if any(tag not in h for tag in geometry)]
    if missing:
        raise DatasetError(
            folder, f"slices without ImageOrientationPatient/ImagePositionPatient: {', '.join(missing[:10])}; "
            "expected image slices of a CT volume"
        )
    iops = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
    odd = np.abs(iops - iops[0]).max(axis=1) > 1e-4
    if odd.any():
        first_odd = int(np.argmax(odd))
        raise DatasetError(
            names[first_odd], f"mixed slice orientations in one series: {list(iops[first_odd])} here, "
            f"{list(iops[0])} in {names[0].name}; expected one ImageOrientationPatient for all slices"
        )
    if len(names) < 2:
        return
    normal = np.cross(iops[0, :3], iops[0, 3:])
    pos = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers]) @ normal
    order = np.argsort(pos, kind="stable")
    gaps = np.diff(pos[order])
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > spacing_tolerance * max(step, 1e-6))
    if step <= 1e-6 or bad.size:
        i = int(bad[0]) if bad.size else 0
        a, b = names[order[i]], names[order[i + 1]]
        kind = "duplicate slice position" if gaps[i] <= 1e-6 else "missing slice (non-uniform spacing)"
        raise DatasetError(
            folder, f"{kind}: {a.name} at {pos[order[i]]:.3f} mm and {b.name} at {pos[order[i + 1]]:.3f} mm "
            f"are {gaps[i]:.3f} mm apart, expected {step:.3f} mm like the other slices "
            f"({bad.size} irregular gaps); re-download the series or remove the stray files"
        )
