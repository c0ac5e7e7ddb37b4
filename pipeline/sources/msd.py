"""Generic reader for any Medical Segmentation Decathlon task: ``dataset.json`` with ``training`` pairs,
``imagesTr`` (3D, or 4D with channels last) and ``labelsTr``; channels, labels and modality from params
and the task's own json (see ``pipeline.sources.interchange.Options``)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import DatasetError
from pipeline.formats.discover import natural_key
from pipeline.sources.interchange import (
    Options, check_channels, count_classes, label_table, load_case, modality_of, parse_options, read_json,
)
from pipeline.sources.lasc import _from_json, notes  # noqa: F401  (the MSD pairing rules live in lasc)
from pipeline.sources.subject import Subject, SubjectRef

__all__ = ["Options", "discover", "load", "notes", "modality", "num_classes"]
EXPECTED = "an MSD task folder: dataset.json with imagesTr/<case>.nii.gz and labelsTr/<case>.nii.gz"


def _meta(raw: Path) -> tuple[Path, dict]:
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(raw, f"folder not found: expected {EXPECTED}")
    path = raw / "dataset.json"
    return path, read_json(path, layout="MSD")


def _labels(path: Path, meta: dict) -> list[int]:
    try:
        return sorted(int(k) for k in meta.get("labels", {}))
    except (TypeError, ValueError):
        raise DatasetError(path, f"labels {meta.get('labels')!r}: expected MSD's {{\"0\": \"background\", "
                                 "\"1\": \"<name>\"}") from None


def modality(raw: Path, **options: object) -> str:
    """``CT`` or ``MR``: the task's ``modality`` entry for the first selected channel, unless params say."""
    opts = parse_options(**options)
    _, meta = _meta(raw)
    return modality_of(meta.get("modality") or {}, opts.channels, opts.modality)


def num_classes(raw: Path, **options: object) -> int:
    """Foreground classes after the label mapping."""
    path, meta = _meta(raw)
    return count_classes(parse_options(**options).labels, [v for v in _labels(path, meta) if v])


def discover(raw: Path, **options: object) -> list[SubjectRef]:
    """One SubjectRef per ``training`` entry (image, label), sorted by case; missing files listed at once."""
    opts = parse_options(**options)
    path, meta = _meta(raw)
    names = meta.get("modality") or {"0": "unknown"}
    check_channels(path, names, opts.channels)
    entries = _from_json(path)
    missing = [f"image {li}" for _, i, _, li, _ in entries if i is None]
    missing += [f"label {ll}" for _, _, lab, _, ll in entries if lab is None]
    if missing:
        raise DatasetError(path, f"files listed under 'training' are missing: {', '.join(missing)}")
    if not entries:
        raise DatasetError(path, f"no labelled cases listed under 'training': expected {EXPECTED}")
    labels = ",".join(map(str, _labels(path, meta)))
    extra = (("labels", labels), ("modality", modality_of(names, opts.channels, opts.modality)))
    refs = [SubjectRef(case, (str(image), str(label)), extra) for case, image, label, _, _ in entries]
    return sorted(refs, key=lambda r: natural_key(r.subject_id))


def load(ref: SubjectRef, **options: object) -> Subject:
    """The selected channels of the case's image (channels of a 4D file, or the 3D file) and its mapped label."""
    opts = parse_options(**options)
    image, label = (Path(p) for p in ref.files)
    found = [int(v) for v in (ref.option("labels") or "0,1").split(",")]
    allowed, lut = label_table(found, opts.labels)
    return load_case(ref.subject_id, [(image, c) for c in opts.channels], label, allowed=allowed, lut=lut,
                     modality=ref.option("modality") or "MR", tol=opts.grid_tolerance,
                     max_bytes=opts.max_volume_bytes)
