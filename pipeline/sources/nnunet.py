"""Generic reader for nnU-Net v2 raw datasets: ``dataset.json`` (``channel_names``, ``labels``,
``file_ending``), ``imagesTr/<case>_<XXXX><file_ending>`` per channel and ``labelsTr/<case><file_ending>``.
Channels, label mapping and modality from params and the dataset's json (``interchange.Options``)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import DatasetError
from pipeline.formats.discover import is_hidden, natural_key
from pipeline.sources.interchange import (
    Options, check_channels, count_classes, label_table, load_case, modality_of, parse_options, read_json,
)
from pipeline.sources.subject import Subject, SubjectRef

__all__ = ["Options", "discover", "load", "notes", "modality", "num_classes"]
EXPECTED = ("an nnU-Net v2 raw folder: dataset.json, imagesTr/<case>_0000.nii.gz (one file per channel) "
            "and labelsTr/<case>.nii.gz")
NIFTI_ENDINGS = (".nii.gz", ".nii")


def _meta(raw: Path) -> tuple[Path, dict]:
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(raw, f"folder not found: expected {EXPECTED}")
    path = raw / "dataset.json"
    meta = read_json(path, layout="nnU-Net v2")
    if not isinstance(meta.get("channel_names"), dict) or not isinstance(meta.get("labels"), dict):
        hint = " (this looks like an MSD dataset.json: use reader: msd)" if "modality" in meta else ""
        raise DatasetError(path, f"expected nnU-Net v2 keys channel_names and labels{hint}")
    ending = meta.get("file_ending", ".nii.gz")
    if ending not in NIFTI_ENDINGS:
        raise DatasetError(path, f"file_ending {ending!r}: this reader reads NIfTI ({', '.join(NIFTI_ENDINGS)}); "
                                 "convert the images to NIfTI")
    return path, meta


def _labels(path: Path, meta: dict) -> list[int]:
    values = list(meta["labels"].values())
    if not all(isinstance(v, int) for v in values):
        raise DatasetError(path, f"labels {meta['labels']!r}: region-based labels (lists) are not supported; "
                                 "expected one integer per label name")
    return sorted(values)


def modality(raw: Path, **options: object) -> str:
    """``CT`` when the first selected channel is named CT (nnU-Net's own rule), else ``MR``."""
    opts = parse_options(**options)
    _, meta = _meta(raw)
    return modality_of(meta["channel_names"], opts.channels, opts.modality)


def num_classes(raw: Path, **options: object) -> int:
    path, meta = _meta(raw)
    return count_classes(parse_options(**options).labels, [v for v in _labels(path, meta) if v])


def notes(raw: Path) -> list[str]:
    """Unlabelled ``imagesTs`` cases are not used."""
    test = Path(raw) / "imagesTs"
    count = len({_case(p.name) for p in test.iterdir() if _case(p.name)}) if test.is_dir() else 0
    return [f"imagesTs: {count} cases have no labels and are not used"] if count else []


_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\.nii\.gz|\.nii)$")


def _case(name: str) -> str | None:
    match = _CHANNEL_FILE.match(name)
    return match["case"] if match else None


def discover(raw: Path, **options: object) -> list[SubjectRef]:
    """One SubjectRef per labelled case: files are the selected channels' images, then the label."""
    opts = parse_options(**options)
    path, meta = _meta(raw)
    ending, names = meta.get("file_ending", ".nii.gz"), meta["channel_names"]
    check_channels(path, names, opts.channels)
    images_dir, labels_dir = Path(raw) / "imagesTr", Path(raw) / "labelsTr"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise DatasetError(raw, f"imagesTr or labelsTr missing: expected {EXPECTED}")
    labels = {p.name[: -len(ending)]: p for p in labels_dir.iterdir()
              if p.name.endswith(ending) and not is_hidden(p, labels_dir)}
    problems = []
    refs = []
    for case in sorted(labels, key=natural_key):
        files = [images_dir / f"{case}_{c:04d}{ending}" for c in opts.channels]
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            problems.append(f"{case}: {', '.join(absent)}")
            continue
        extra = (("labels", ",".join(map(str, _labels(path, meta)))),
                 ("modality", modality_of(names, opts.channels, opts.modality)))
        refs.append(SubjectRef(case, (*map(str, files), str(labels[case])), extra))
    if problems:
        raise DatasetError(images_dir, f"labelled cases without their channel images: {'; '.join(problems)}; "
                                       f"expected imagesTr/<case>_<channel 0000>{ending} for every channel")
    if not refs:
        raise DatasetError(labels_dir, f"no labelled cases found: expected {EXPECTED}")
    return refs


def load(ref: SubjectRef, **options: object) -> Subject:
    """The selected channels (one 3D file each) and the case's label mapped to classes."""
    opts = parse_options(**options)
    *images, label = (Path(p) for p in ref.files)
    found = [int(v) for v in (ref.option("labels") or "0,1").split(",")]
    allowed, lut = label_table(found, opts.labels)
    return load_case(ref.subject_id, [(p, None) for p in images], label, allowed=allowed, lut=lut,
                     modality=ref.option("modality") or "MR", tol=opts.grid_tolerance,
                     max_bytes=opts.max_volume_bytes)
