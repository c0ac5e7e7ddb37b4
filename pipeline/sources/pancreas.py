"""TCIA Pancreas-CT: one DICOM CT series per patient, paired with ``label<nnnn>.nii(.gz)`` by case number.

Label and series are checked against each other: by geometry when the label's header describes the
series' grid, else by the published convention (the label slice is the DICOM slice transposed,
``label[col, row, k]`` holding the slice whose InstanceNumber is ``k + 1``), which is how the TCIA
labels are used by the public loaders; a label that fits neither is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from pipeline.errors import DatasetError
from pipeline.formats.dicom import canonical, dicom_files, is_slice_file, read_series
from pipeline.formats.discover import SKIPPED_DIRS
from pipeline.formats.nifti import ANY_LABEL, MAX_VOLUME_BYTES, check_same_grid, load_label_volume
from pipeline.sources.scans import dicom_scans
from pipeline.sources.subject import Subject, SubjectRef
from pipeline.workers import concurrently

PATIENT_RE = re.compile(r"^PANCREAS_(\d{4})$", re.IGNORECASE)
LABEL_RE = re.compile(r"^label(\d{4})\.nii(\.gz)?$", re.IGNORECASE)
LAYOUT = (
    "Pancreas-CT/PANCREAS_0001/<study>/<series>/1-001.dcm ... and "
    "TCIA_pancreas_labels-02-05-2017/label0001.nii.gz"
)
PAIRINGS = ("auto", "geometry", "published")
WORKER_IMPORTS = ("pydicom", "SimpleITK")  # imported by the DICOM reader on first use: once per worker server


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    exclude: tuple[int, ...] = ()  # case numbers to leave out (TCIA: 25 and 70 duplicate other cases)
    grid_tolerance: float = 0.01  # largest CT/label grid difference accepted
    max_volume_bytes: int = MAX_VOLUME_BYTES  # refuse a volume larger than this in memory (float32), from its header
    stored_as_hu: bool = False  # the series stores HU without RescaleSlope/RescaleIntercept
    # auto: the label header's geometry, else the published convention (label slice k = the DICOM with
    # InstanceNumber k + 1, transposed); geometry or published: only that one
    label_pairing: Literal["auto", "geometry", "published"] = "auto"


def _walk(raw: Path) -> Iterable[tuple[Path, list[str], list[str]]]:
    """os.walk in sorted order, skipping hidden folders and files (macOS ``._`` copies, ``__MACOSX``)."""
    for root, dirs, files in os.walk(raw):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d.lower() not in SKIPPED_DIRS)
        yield Path(root), dirs, sorted(f for f in files if not f.startswith("."))


def _series_folders(patient: Path) -> list[Path]:
    return [root for root, _, _ in _walk(patient) if dicom_files(root)]


def _depth_problem(series: Path, label: Path) -> str | None:
    """Label depth against the number of DICOM files, from the headers only (cheap, before splitting)."""
    try:
        shape = nib.load(label).shape
    except Exception:  # noqa: BLE001  (a damaged label is reported, with its reason, by load)
        return None
    count = len(dicom_files(series))
    if count > 1 and len(shape) >= 3 and shape[2] != count:  # a single file (multi-frame?) is load's to name
        return (f"{label}: label has {shape[2]} slices but its series folder {series} holds {count} DICOM files; "
                "expected one label slice per DICOM slice (a slice missing from the series, a second series in its "
                "folder, or another case's label): download the case again")
    return None


def discover(raw: Path, *, exclude: Iterable[int] = Options.exclude, **_: object) -> list[SubjectRef]:
    """Patient folders ``PANCREAS_<nnnn>`` anywhere under ``raw``, each with its one series folder
    and its ``label<nnnn>.nii(.gz)`` (matched by case number, wherever it lies under ``raw``).

    A case found twice, or nothing found, stops here. A case that cannot be paired (a label without
    its series, as in a partial mirror; a patient without a label; not one series; label depth
    unlike the series') is a per-subject ``problem``, which ``on_error: skip`` leaves out.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(raw, f"expected a folder holding {LAYOUT}; found no such folder")
    skip = {int(c) for c in exclude}
    patients: dict[int, list[Path]] = {}
    labels: dict[int, list[Path]] = {}
    for root, dirs, files in _walk(raw):
        for name in files:
            if match := LABEL_RE.match(name):
                labels.setdefault(int(match.group(1)), []).append(root / name)
        for name in list(dirs):
            if match := PATIENT_RE.match(name):
                patients.setdefault(int(match.group(1)), []).append(root / name)
                dirs.remove(name)  # a patient folder holds DICOM only; labels lie elsewhere
    if not patients and not labels:
        raise DatasetError(
            raw, f"no PANCREAS_<nnnn> patient folders and no label<nnnn>.nii.gz found; expected {LAYOUT}"
        )
    twice = [f"case {case:04d}: {', '.join(map(str, patients.get(case, []) + labels.get(case, [])))}"
             for case in sorted(set(patients) | set(labels))
             if len(patients.get(case, [])) > 1 or len(labels.get(case, [])) > 1]
    if twice:
        raise DatasetError(raw, f"{len(twice)} case(s) found more than once ({'; '.join(twice)}); keep one copy")

    refs: list[SubjectRef] = []
    for case in sorted((set(patients) | set(labels)) - skip):
        pid = f"PANCREAS_{case:04d}"
        folder, label = (patients.get(case) or [None])[0], (labels.get(case) or [None])[0]
        if folder is None:
            refs.append(SubjectRef(pid, (str(label),), problem=f"{label}: label has no patient folder {pid} "
                                   "(a partial download?); download the case's series or remove the label"))
            continue
        if label is None:
            refs.append(SubjectRef(pid, (str(folder),), problem=f"{folder}: patient has no label{case:04d}.nii.gz; "
                                   "download the labels (TCIA_pancreas_labels-*) or remove the patient folder"))
            continue
        series = _series_folders(folder)
        if len(series) != 1:
            found = ", ".join(str(s) for s in series) if series else "none"
            refs.append(SubjectRef(pid, (str(folder), str(label)), problem=f"{folder}: expected one folder of "
                                   f"DICOM files, found {found}; keep the CT series only"))
            continue
        refs.append(SubjectRef(pid, (str(series[0]), str(label)), (("case", f"{case:04d}"),),
                               problem=_depth_problem(series[0], label)))
    return refs


def _published(series: Path, label: Path, meta: dict, shape: tuple[int, ...], *, max_bytes: int) -> np.ndarray:
    """The label laid onto the series by the published convention, in the image's RAS+ order.

    ``label[col, row, k]`` is pixel (row, col) of the slice with InstanceNumber ``k + 1``.
    Raises DatasetError when the label's shape or the InstanceNumbers do not allow it.
    """
    stored = load_label_volume(label, allowed_labels=ANY_LABEL, as_stored=True, max_bytes=max_bytes).array
    columns, rows, count = meta["stored_shape"]
    numbers = meta["instance_numbers"]
    if stored.shape != (columns, rows, count):
        raise DatasetError(label, f"label does not fit its series {series}: neither its header geometry nor the "
                                  f"published convention (label array columns x rows x slices = {columns} x {rows} x "
                                  f"{count}) matches its shape {stored.shape}; is it the label of this case?")
    if None in numbers or sorted(numbers) != list(range(1, count + 1)):
        raise DatasetError(series, f"InstanceNumbers are not 1..{count}, so label slices cannot be matched to "
                                   "DICOM slices by the published convention (label slice k = InstanceNumber k+1)")
    in_position_order = stored[:, :, [n - 1 for n in numbers]]
    mask, _ = canonical(in_position_order, meta["stored_affine"])
    if mask.shape != tuple(shape):
        raise DatasetError(label, f"label reoriented to {mask.shape}, image is {tuple(shape)}")
    return np.ascontiguousarray(mask)


def load(ref: SubjectRef, *, grid_tolerance: float = Options.grid_tolerance, stored_as_hu: bool = False,
         label_pairing: str = "auto", max_volume_bytes: int = MAX_VOLUME_BYTES, **_: object) -> Subject:
    """Read one patient: the CT in HU and the label, both ``(X, Y, Z)`` RAS+ canonical, never resampled.

    ``label_pairing`` ``auto`` takes the label's header geometry when it matches the series (shape,
    spacing and origin within ``grid_tolerance`` of a voxel) and the published convention otherwise.
    """
    if ref.problem:
        raise DatasetError(ref.files[0], ref.problem.split(": ", 1)[-1])
    if label_pairing not in PAIRINGS:
        raise DatasetError("prepare.reader.label_pairing", f"{label_pairing!r} is not one of {', '.join(PAIRINGS)}")
    series, label = Path(ref.files[0]), Path(ref.files[1])
    reads = [lambda: read_series(series, modality="CT", stored_as_hu=stored_as_hu, max_bytes=max_volume_bytes)]
    if label_pairing != "published":  # the label as its header places it, read beside the series
        reads.append(lambda: load_label_volume(label, allowed_labels=ANY_LABEL, max_bytes=max_volume_bytes))
    (image, affine, spacing, meta), *header_read = concurrently(*reads)
    pairing, mismatch, label_orientation = "published", None, meta["orientation"]
    if header_read:
        by_header = header_read[0]
        try:
            check_same_grid(series, affine, image.shape, label, by_header.affine, by_header.array.shape,
                            tol=grid_tolerance)
            mask, pairing, label_orientation = by_header.array, "geometry", by_header.orientation
        except DatasetError as err:
            if label_pairing == "geometry":
                raise
            mismatch = err.problem
    if pairing == "published":
        mask = _published(series, label, meta, image.shape, max_bytes=max_volume_bytes)
    return Subject(
        subject_id=ref.subject_id,
        image=image,
        mask=mask,
        spacing=spacing,
        sources=(str(series), str(label)),
        modality="CT",
        layout="volume",
        affine=affine,
        orientation=meta["orientation"],
        meta={k: meta[k] for k in ("series_uid", "study_uid", "patient_id", "rescale_slope", "rescale_intercept",
                                   "spacing_unknown")}
        | {"label_pairing": pairing, "mask_orientation": label_orientation, "num_files": len(meta["files"]),
           "ignored_files": len(meta["ignored_files"])}  # README, DICOMDIR... beside the slices
        | ({"label_header_mismatch": mismatch} if mismatch else {}),
    )


def notes(raw: Path) -> list[str]:
    """Files in patient folders that are not DICOM slices (README, DICOMDIR, Thumbs.db, stray exports):
    listed in stats.json, never fatal; the reader reads only the one series folder."""
    raw = Path(raw)
    if not raw.is_dir():
        return []
    ignored = [
        (root / name).relative_to(raw).as_posix()
        for root, _, files in _walk(raw) if any(PATIENT_RE.match(part) for part in root.relative_to(raw).parts)
        for name in files if not is_slice_file(root / name)
    ]
    if not ignored:
        return []
    shown = ", ".join(ignored[:20]) + (f", ... {len(ignored) - 20} more" if len(ignored) > 20 else "")
    return [f"{len(ignored)} file(s) in patient folders are not DICOM slices and were ignored: {shown}"]


def load_images(path: Path, *, max_volume_bytes: int = MAX_VOLUME_BYTES, **_: object) -> list[Subject]:
    """Unlabelled scans for inference: a DICOM CT series folder (or a tree of them) in HU, no label."""
    return dicom_scans(path, modality="CT", max_bytes=max_volume_bytes)
