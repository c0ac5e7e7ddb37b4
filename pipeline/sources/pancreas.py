"""TCIA Pancreas-CT: one DICOM CT series per patient, paired with label<nnnn>.nii.gz by geometry."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.formats.dicom import dicom_files, is_slice_file, read_series
from pipeline.formats.discover import SKIPPED_DIRS
from pipeline.errors import DatasetError
from pipeline.formats.nifti import MAX_VOLUME_BYTES, check_same_grid, load_label_volume
from pipeline.sources.subject import Subject, SubjectRef

PATIENT_RE = re.compile(r"^PANCREAS_(\d{4})$", re.IGNORECASE)
LABEL_RE = re.compile(r"^label(\d{4})\.nii(\.gz)?$", re.IGNORECASE)
LAYOUT = (
    "Pancreas-CT/PANCREAS_0001/<study>/<series>/1-001.dcm ... and "
    "TCIA_pancreas_labels-02-05-2017/label0001.nii.gz"
)


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    exclude: tuple[int, ...] = ()  # case numbers to leave out (TCIA: 25 and 70 duplicate other cases)
    grid_tolerance: float = 0.01  # largest CT/label grid difference accepted
    max_volume_bytes: int = MAX_VOLUME_BYTES  # refuse a volume larger than this in memory (float32), from its header


def _walk(raw: Path) -> Iterable[tuple[Path, list[str], list[str]]]:
    """os.walk in sorted order, skipping hidden folders and files (macOS ``._`` copies, ``__MACOSX``)."""
    for root, dirs, files in os.walk(raw):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d.lower() not in SKIPPED_DIRS)
        yield Path(root), dirs, sorted(f for f in files if not f.startswith("."))


def _series_folders(patient: Path) -> list[Path]:
    return [root for root, _, _ in _walk(patient) if dicom_files(root)]


def discover(raw: Path, *, exclude: Iterable[int] = (), **_: object) -> list[SubjectRef]:
    """Patient folders ``PANCREAS_<nnnn>`` anywhere under ``raw``, each with its one series folder
    and its ``label<nnnn>.nii(.gz)`` (matched by case number, wherever it lies under ``raw``).

    ``exclude`` lists case numbers to leave out (TCIA lists 25 and 70 as duplicates of other
    cases). Raises one DatasetError listing every unpaired patient or label, patients without
    or with several series, and case numbers found twice.
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

    problems: list[str] = []
    refs: list[SubjectRef] = []
    for case in sorted((set(patients) | set(labels)) - skip):
        pid = f"PANCREAS_{case:04d}"
        folders, label_files = patients.get(case, []), labels.get(case, [])
        if len(folders) > 1 or len(label_files) > 1:
            found = ", ".join(str(p) for p in folders + label_files)
            problems.append(f"case {case:04d} found more than once: {found}; keep one copy")
            continue
        if not folders:
            problems.append(f"label {label_files[0]} has no patient folder {pid}")
            continue
        if not label_files:
            problems.append(f"patient {folders[0]} has no label{case:04d}.nii.gz")
            continue
        series = _series_folders(folders[0])
        if len(series) != 1:
            found = ", ".join(str(s) for s in series) if series else "none"
            problems.append(f"patient {folders[0]}: expected one folder of DICOM files, found {found}")
            continue
        refs.append(SubjectRef(pid, (str(series[0]), str(label_files[0])), (("case", f"{case:04d}"),)))
    if problems:
        listing = "\n  ".join(problems)
        raise DatasetError(raw, f"{len(problems)} problem(s) pairing CT series with labels:\n  {listing}")
    return refs


def load(ref: SubjectRef, *, grid_tolerance: float = 0.01, max_volume_bytes: int = MAX_VOLUME_BYTES,
         **_: object) -> Subject:
    """Read one patient: the CT in HU and the pancreas mask, both ``(X, Y, Z)`` RAS+ canonical.

    Image and label are paired by geometry, never resampled: after both are brought to RAS+
    their shapes must be equal and their spacing and origin agree within ``grid_tolerance`` of
    a voxel (see ``pipeline.formats.nifti.check_same_grid``).
    """
    series, label = Path(ref.files[0]), Path(ref.files[1])
    image, affine, spacing, meta = read_series(series, modality="CT", max_bytes=max_volume_bytes)
    mask, label_affine, _, label_orientation = load_label_volume(label, allowed_labels=(0, 1),
                                                                 max_bytes=max_volume_bytes)
    check_same_grid(series, affine, image.shape, label, label_affine, mask.shape, tol=grid_tolerance)
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
        meta={k: meta[k] for k in ("series_uid", "study_uid", "patient_id", "rescale_slope", "rescale_intercept")}
        | {"mask_orientation": label_orientation, "num_files": len(meta["files"]),
           "ignored_files": len(meta["ignored_files"])},  # README, DICOMDIR... beside the slices
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
