"""An nnU-Net-style integrity report on a source as published: what was found and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from pipeline.errors import DatasetError
from pipeline.slices.intensity import sorted_percentiles
from pipeline.slices.slicing import forward
from pipeline.sources.subject import Subject

PERCENTILES = (0.5, 50.0, 99.5)
# Subject.meta counters that readers fill and the report totals (aisd, faz, ms, pancreas)
READER_COUNTS = ("missing_masks", "label_4_only_slices", "clipped_points", "polygons", "other_shapes",
                 "orientation_assumed", "ignored_files")
SAMPLE = 1 << 16  # voxels the intensity percentiles are taken from (nnU-Net samples 10k per case)


def _percentiles(image: np.ndarray) -> list[float | None]:
    """Intensity percentiles of the finite voxels, from an even subsample of at most SAMPLE voxels.

    A fingerprint, not an exact statistic (nnU-Net samples too): percentiles of a 512x512x300 CT
    need a sort of 78M values otherwise, longer than preparing the whole volume.
    """
    step = max(1, int(np.ceil((image.size / SAMPLE) ** (1 / max(image.ndim, 1)))))
    sample = image[(slice(None, None, step),) * image.ndim].reshape(-1)  # a strided view, then a small copy
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    elif sample.dtype.itemsize <= 2:  # a reader keeps small integers as stored: their float32 values, exact
        sample = sample.astype(np.float32)
    return sorted_percentiles(sample, PERCENTILES) if sample.size else [None] * len(PERCENTILES)


def _labels(mask: np.ndarray) -> list[int]:
    """The exact set of label values: min and max for binary masks, else one histogram pass for
    uint8 masks. The set does not change under flips, so a reversed view is read forwards (no copy)."""
    if not mask.size:
        return []
    ahead = forward(mask)
    low, high = int(ahead.min()), int(ahead.max())
    if high - low <= 1 and mask.dtype.kind in "ui":  # binary masks, the usual case
        return sorted({low, high})
    if mask.dtype == np.uint8:
        flat = ahead.reshape(-1, order="A") if ahead.flags.forc else ahead.ravel()
        hist = cv2.calcHist([flat.reshape(-1, 1)], [0], None, [256], [0, 256]).ravel()
        return np.flatnonzero(hist).tolist()
    return [int(v) for v in np.unique(mask)]


def constant_image(image: np.ndarray, mask: np.ndarray) -> str | None:
    """Why a subject would prepare to blank pictures, or None: an image with one value everywhere
    (often all zero: a failed export or the wrong file) under a mask with foreground."""
    if not image.size or image.shape != mask.shape:
        return None
    low, high = forward(image).min(), forward(image).max()
    if low != high or not np.any(mask):
        return None
    return (f"image is constant ({float(low):g} everywhere) under a non-empty mask "
            f"({int(np.count_nonzero(mask))} foreground voxels); expected contrast, the prepared images would be "
            "blank: re-export the image, or check that this is the right file")


def summarise_subject(subject: Subject, *, expected_labels: Iterable[int] | None = None,
                      known_not_constant: bool = False) -> dict:
    """Shape, spacing, labels, intensity percentiles and problems of one loaded subject.

    Problems are the ones that make a subject unusable or its masks wrong (image/mask shape
    mismatch, NaN/Inf intensities, labels outside ``expected_labels``, bad spacing); an empty mask
    is reported as ``foreground_voxels == 0`` but is not a problem (many slices legitimately are).

    ``known_not_constant``: the caller already refused a constant image (prepare does), so the
    min/max pass over the volume is not made twice.

    Returns:
        A JSON-ready dict; ``problems`` is a list of one-line strings naming the source file.
    """
    image = np.asarray(subject.image)
    mask = np.asarray(subject.mask)
    source = subject.sources[0] if subject.sources else subject.subject_id
    problems: list[str] = []

    nan = inf = 0
    if image.dtype.kind == "f" and image.size and not np.isfinite(image.min() + image.max()):
        nan, inf = int(np.isnan(image).sum()), int(np.isinf(image).sum())
        problems.append(
            f"{source}: {nan} NaN and {inf} Inf intensities; expected finite values; "
            "replace them (e.g. with the background value) before preparing"
        )
    percentiles = _percentiles(image)

    if image.shape[:mask.ndim] != mask.shape:  # multi-channel images carry channels last
        problems.append(
            f"{source}: image shape {tuple(image.shape)} differs from mask shape "
            f"{tuple(mask.shape)}; expected identical shapes; check that the mask belongs to this image"
        )
    labels = _labels(mask)
    if expected_labels is not None:
        stray = sorted(set(labels) - {int(v) for v in expected_labels})
        if stray:
            problems.append(
                f"{source}: mask labels {stray} outside the expected {sorted(set(expected_labels))}; "
                "fix the mask or the dataset's number of classes"
            )
    if not known_not_constant and (constant := constant_image(image, mask)) is not None:
        problems.append(f"{source}: {constant}")
    spacing = [float(s) for s in subject.spacing]
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        problems.append(f"{source}: spacing {spacing}; expected positive finite millimetres")

    return {
        "subject": subject.subject_id,
        "sources": list(subject.sources),
        "modality": subject.modality,
        "layout": subject.layout,
        "shape": [int(n) for n in image.shape],
        "mask_shape": [int(n) for n in mask.shape],
        "spacing": spacing,
        # as stored by the publisher, before canonicalising; 2D stacks are already upright
        "orientation": str(subject.orientation) if subject.layout == "volume" else "2D",
        "mask_orientation": subject.meta.get("mask_orientation"),
        "labels": labels,
        "foreground_voxels": int(np.count_nonzero(forward(mask))),
        "percentiles": dict(zip([str(p) for p in PERCENTILES], percentiles)),
        "nan": nan,
        "inf": inf,
        # what the reader counted on the way (slices without a mask file, polygon points clipped...)
        "meta": {k: v for k, v in subject.meta.items() if isinstance(v, (bool, int, float, str))},
        "problems": problems,
    }


def _min_median_max(rows: Sequence[Sequence[float]]) -> dict | None:
    """Per-axis min/median/max of equally long rows (None when rows are empty or ragged)."""
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    arr = np.asarray(rows, dtype=float)
    return {
        name: [float(f"{v:.6g}") for v in values]
        for name, values in (("min", arr.min(axis=0)), ("median", np.median(arr, axis=0)), ("max", arr.max(axis=0)))
    }


def error_record(error: DatasetError, *, subject: str | None = None, stage: str = "load") -> dict:
    """A DatasetError as a JSON-ready problem record (``stage`` is ``discover`` or ``load``)."""
    return {"subject": subject, "stage": stage, "path": error.path, "problem": error.problem}


def summarise(records: Sequence[dict], errors: Sequence[dict]) -> dict:
    """Fold per-subject records (from summarise_subject) and error records into one report.

    ``errors`` come from discovery (unpaired files, nothing found) and from subjects that failed
    to load; together with each record's ``problems`` they make ``problems``, and ``ok`` is True
    only when there are none.
    """
    problems = [f"{e['path']}: {e['problem']}" for e in errors]
    problems += [p for r in records for p in r["problems"]]
    labels = sorted({v for r in records for v in r["labels"]})
    orientations: dict[str, int] = {}
    for r in records:
        orientations[r["orientation"]] = orientations.get(r["orientation"], 0) + 1
    failed = sorted({e["subject"] for e in errors if e.get("subject")})
    return {
        "ok": not problems,
        "subjects_found": len(records) + len(failed),
        "subjects_loaded": len(records),
        "subjects_failed": failed,
        "discovery_errors": [e for e in errors if e.get("stage") == "discover"],
        "load_errors": [e for e in errors if e.get("stage") != "discover"],
        "shape": _min_median_max([r["shape"] for r in records]),
        "spacing": _min_median_max([r["spacing"] for r in records]),
        "labels": labels,
        "orientations": orientations,
        "modalities": sorted({r["modality"] for r in records}),
        "empty_masks": sorted(r["subject"] for r in records if r["foreground_voxels"] == 0),
        "nonfinite_subjects": sorted(r["subject"] for r in records if r["nan"] or r["inf"]),
        "reader_counts": {name: sum(int(r.get("meta", {}).get(name, 0)) for r in records) for name in READER_COUNTS
                          if any(name in r.get("meta", {}) for r in records)},
        "problem_count": len(problems),
        "problems": problems,
        "subjects": list(records),
    }


def format_report(report: dict, *, dataset: str = "") -> str:
    """A short human-readable text of a report from summarise."""
    head = f"integrity check{f' of {dataset}' if dataset else ''}: "
    lines = [
        head + f"{report['subjects_found']} subjects found, {report['subjects_loaded']} loaded, "
        f"{report['problem_count']} problem(s)"
    ]
    for name in ("shape", "spacing"):
        stats = report[name]
        if stats:
            parts = ["x".join(f"{v:g}" for v in stats[k]) for k in ("min", "median", "max")]
            lines.append(f"  {name}: min {parts[0]}  median {parts[1]}  max {parts[2]}")
    lines.append(f"  mask labels seen: {report['labels']}")
    lines.append(f"  orientations: {report['orientations']}  modalities: {report['modalities']}")
    if report["empty_masks"]:
        lines.append(f"  subjects with empty masks: {', '.join(report['empty_masks'])}")
    if report["problems"]:
        lines.append("problems:")
        lines += [f"  - {p}" for p in report["problems"]]
    else:
        lines.append("no problems found")
    return "\n".join(lines)
