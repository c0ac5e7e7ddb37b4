"""One subject to upright, square, encoded image/mask PNG pairs, with the empty-slice filter and its counts."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.errors import DatasetError
from pipeline.workers import ordered_results, thread_budget, thread_map
from pipeline.dataset.integrity import constant_image, summarise, summarise_subject
from pipeline.dataset.prepared import pair_paths, slice_stem
from pipeline.slices.intensity import to_uint8
from pipeline.slices.masks import check_labels, encoding_lut
from pipeline.slices.png import encode_png
from pipeline.slices.resize import Placement, pixel_spacing, place_image, place_mask, placement_for
from pipeline.slices.slicing import display_spacing, display_stack, foreground_per_slice
from pipeline.dataset.split import unit_hash
from pipeline.sources import worker_imports
from pipeline.sources.subject import Subject, SubjectRef

DROP_EMPTY = "below_min_foreground"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class SliceRecord:
    """One written pair: encoded PNG bytes and what the manifest says about it."""

    slice_index: int
    image_png: bytes
    mask_png: bytes
    foreground_pixels: int  # in the source slice, before resizing (the number the filter used)
    original_shape: tuple[int, int]
    empty_kept: bool


@dataclass
class PreparedSubject:
    subject_id: str
    records: list[SliceRecord]
    slices_seen: int
    dropped: dict[str, int]
    kept_empty: int
    placement: Placement | None
    spacing: tuple[float, float]  # (row, column) of the source slices
    pixel_spacing: tuple[float, float] | None = None  # (row, column) of the written squares


def keep_empty_slice(seed: int, subject_id: str, slice_index: int, fraction: float) -> bool:
    """Seeded per-slice draw: the same answer whatever the worker or processing order."""
    return fraction > 0 and unit_hash("keep-empty", seed, subject_id, slice_index) < fraction


def _check_subject(subject: Subject, num_classes: int) -> None:
    source = subject.sources[0] if subject.sources else subject.subject_id
    if not _SAFE_ID.match(subject.subject_id):
        raise DatasetError(source, f"subject id {subject.subject_id!r} is not a safe file name; expected letters, digits, . _ -")
    if subject.image.shape[:3] != subject.mask.shape or subject.mask.ndim != 3 or subject.image.ndim not in (3, 4):
        raise DatasetError(source, f"image shape {subject.image.shape} and mask shape {subject.mask.shape} must be equal "
                                   "and 3D (a multi-channel image: channels last)")
    if subject.image.size and subject.image.dtype.kind == "f":
        if not (np.isfinite(subject.image.min()) and np.isfinite(subject.image.max())):
            raise DatasetError(source, "image holds NaN or Inf values; expected finite intensities")
    try:
        check_labels(subject.mask, num_classes=num_classes)
    except ValueError as err:  # readers pass every class on: the count is decided here, once
        raise DatasetError(subject.sources[-1] if subject.sources else source,
                           f"{err}; if the mask really has several classes set prepare.num_classes to their "
                           "number, else fix or replace the mask") from None


def context_rows(keep: Sequence[int], count: int, *, context_slices: int) -> list[tuple[int, ...]]:
    """The slice indices whose pixels make up each kept slice's channels: ``(z,)`` without context,
    ``(z-N, ..., z, ..., z+N)`` with ``N`` context slices, clamped to the subject (edges repeat)."""
    return [tuple(min(max(z + d, 0), count - 1) for d in range(-context_slices, context_slices + 1)) for z in keep]


def context_images(subject: Subject, keep: Sequence[int], count: int, *, intensity: Mapping[str, Any], axis: int,
                   context_slices: int) -> list[np.ndarray]:
    """Each kept slice upright, with its ``context_slices`` neighbours as channels (2.5D).

    Without context a kept slice is its ``(H, W)`` grey image; with ``context_slices=1`` it is an
    ``(H, W, 3)`` BGR image whose R, G, B (as a PNG reader sees them) are slices z-1, z, z+1.
    """
    if context_slices not in (0, 1):
        raise ValueError(f"context_slices must be 0 (one slice) or 1 (z-1, z, z+1 as an RGB PNG), "
                         f"found {context_slices!r}")
    rows = context_rows(keep, count, context_slices=context_slices)
    needed = sorted({i for row in rows for i in row})
    stack = upright_grey(subject, intensity=intensity, axis=axis, indices=needed)
    at = {index: j for j, index in enumerate(needed)}
    # OpenCV's channel order is BGR: reversed, so that a PNG reader's R, G, B are z-1, z, z+1
    return [stack[at[row[0]]] if len(row) == 1 else cv2.merge([stack[at[i]] for i in reversed(row)])
            for row in rows]


def upright_grey(subject: Subject, *, intensity: Mapping[str, Any], axis: int,
                 indices: Sequence[int] | None = None) -> np.ndarray:
    """The subject's (or ``indices``') slices as one upright ``(N, H, W)`` uint8 stack.

    The whole subject is windowed/normalised once (per volume, never per slice), then sliced;
    shared by prepare and by inference on a new scan, so both see the same pixels.
    """
    if subject.image.ndim == 4 and subject.layout == "volume":  # channels last (msd, nnunet): each windowed
        # on its own, and reversed because OpenCV writes B, G, R: a PNG reader's R is channel 0
        return np.stack([upright_grey(replace(subject, image=subject.image[..., c]), intensity=intensity, axis=axis,
                                      indices=indices) for c in reversed(range(subject.image.shape[3]))], axis=-1)
    try:
        grey = to_uint8(subject.image, spec=intensity)
    except ValueError as err:
        raise DatasetError(subject.sources[0] if subject.sources else subject.subject_id, str(err)) from None
    if subject.layout == "stack":
        return grey if indices is None else grey[list(indices)]
    # one blocked copy per volume instead of a strided gather per slice
    return display_stack(grey, axis=axis, indices=None if indices is None else list(indices))


def square_placement(subject: Subject, shape: tuple[int, int], *, size: int, letterbox: bool, axis: int,
                     target_spacing: float | None = None) -> Placement:
    """Where the subject's upright slices of ``shape`` land on the square (see ``placement_for``)."""
    if target_spacing is not None and (subject.layout != "volume" or subject.meta.get("spacing_unknown")):
        raise DatasetError(subject.sources[0] if subject.sources else subject.subject_id,
                           f"target_spacing {target_spacing} mm needs a pixel size, but this source gives "
                           "none (2D images, or a header without spacing); set prepare.target_spacing to null for it")
    spacing = display_spacing(subject.spacing, layout=subject.layout, axis=axis)
    return placement_for(shape, size=size, letterbox=letterbox, spacing=spacing, target_spacing=target_spacing)


def square_image(image2d: np.ndarray, placement: Placement, *, channels: int) -> np.ndarray:
    """One upright uint8 slice on the square, grey or replicated to 3 channels (BGR order, as written);
    a slice that already has channels (2.5D context) keeps them."""
    image_sq = place_image(image2d, placement)
    return cv2.cvtColor(image_sq, cv2.COLOR_GRAY2BGR) if channels == 3 and image_sq.ndim == 2 else image_sq


def scan_squares(subject: Subject, *, size: int, letterbox: bool, intensity: Mapping[str, Any], axis: int,
                 channels: int, target_spacing: float | None = None,
                 context_slices: int = 0) -> tuple[np.ndarray, np.ndarray, Placement]:
    """Every slice of an (unlabelled) subject as prepare would write its image.

    The image half of :func:`prepare_subject`, for inference on a new scan: same intensity,
    upright slicing and placement. Returns the upright ``(N, H, W)`` uint8 slices, the squares
    ``(N, S, S[, 3])`` and the placement that maps predictions back to the source grid.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, found {channels}")
    images = upright_grey(subject, intensity=intensity, axis=axis)
    if not len(images):
        raise DatasetError(subject.sources[0] if subject.sources else subject.subject_id, "the scan has no slices")
    placement = square_placement(subject, images.shape[1:3], size=size, letterbox=letterbox, axis=axis,
                                 target_spacing=target_spacing)
    inputs = (images if not context_slices else
              context_images(subject, range(len(images)), len(images), intensity=intensity, axis=axis,
                             context_slices=context_slices))
    return images, np.stack([square_image(image2d, placement, channels=channels) for image2d in inputs]), placement


def prepare_subject(
    subject: Subject, *, size: int, letterbox: bool, intensity: Mapping[str, Any], axis: int, channels: int,
    min_foreground_pixels: int, keep_empty_fraction: float, seed: int, num_classes: int = 1,
    rgb_map: Mapping[int, Sequence[int]] | None = None, keep_all: bool = False,
    target_spacing: float | None = None, context_slices: int = 0,
) -> PreparedSubject:
    """Window/normalise the whole subject once, then slice, filter, resize and encode the kept slices.

    A slice is kept when its source mask has at least ``min_foreground_pixels`` foreground pixels,
    or, being empty, when its seeded draw falls under ``keep_empty_fraction`` or ``keep_all`` is
    set (a test split must see the slices without the target too); the others are counted under
    ``dropped["below_min_foreground"]``. ``target_spacing`` (mm per pixel) resamples in-plane to
    that pixel size instead of stretching/letterboxing to the square. ``context_slices=1`` writes
    slices z-1, z, z+1 as the R, G, B channels of each image (2.5D; the border slice repeats at the
    ends, ``channels`` is then ignored); the mask is slice z's. Raises DatasetError for
    unusable input. Slices are resized and encoded on the threads a ``workers.thread_budget`` lends
    (OpenCV, numpy and isal release the GIL), so one subject uses several cores; the records and
    their bytes are the same for any count.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, found {channels}")
    _check_subject(subject, num_classes)
    if subject.image.ndim == 4:  # channels stacked by a generic reader fill the PNG's three channels
        source = subject.sources[0] if subject.sources else subject.subject_id
        if context_slices:
            raise DatasetError(source, "the reader stacks channels into the PNG's three channels, which "
                                       "context_slices (2.5D) also needs; set prepare.context_slices: 0 or select one channel")
        if channels != 3 or subject.image.shape[3] != 3 or subject.layout != "volume":
            raise DatasetError(source, f"the reader stacks {subject.image.shape[3]} channels, prepare.channels is "
                                       f"{channels}; stack three channels with prepare.channels: 3 (and "
                                       "train.channels: 3), or select one")
    lut = encoding_lut(num_classes=num_classes, rgb_map=rgb_map)
    counts = foreground_per_slice(subject.mask, layout=subject.layout, axis=axis)
    keep, kept_empty = [], 0
    for index, count in enumerate(counts.tolist()):
        if count >= min_foreground_pixels:
            keep.append(index)
        elif keep_all or keep_empty_slice(seed, subject.subject_id, index, keep_empty_fraction):
            keep.append(index)
            kept_empty += 1
    images = context_images(subject, keep, len(counts), intensity=intensity, axis=axis,
                            context_slices=context_slices)
    if (constant := constant_image(subject.image, subject.mask)) is not None:  # would write blank images
        raise DatasetError(subject.sources[0] if subject.sources else subject.subject_id, constant)
    masks = subject.mask[keep] if subject.layout == "stack" else display_stack(subject.mask, axis=axis, indices=keep)
    spacing = display_spacing(subject.spacing, layout=subject.layout, axis=axis)
    placement = square_placement(subject, images[0].shape[:2] if keep else (0, 0), size=size, letterbox=letterbox, axis=axis,
                                 target_spacing=target_spacing) if keep else None

    def record(j: int) -> SliceRecord:
        image2d, index = images[j], keep[j]
        mask_sq = place_mask(masks[j], placement)
        encoded = cv2.LUT(mask_sq, lut) if lut.ndim == 1 else lut[mask_sq]
        return SliceRecord(
            index, encode_png(square_image(image2d, placement, channels=channels)), encode_png(encoded),
            int(counts[index]), (int(image2d.shape[0]), int(image2d.shape[1])),
            int(counts[index]) < min_foreground_pixels,
        )

    records = thread_map(record, range(len(keep)))  # in slice order whatever finishes first
    return PreparedSubject(
        subject.subject_id, records, len(counts), {DROP_EMPTY: len(counts) - len(keep)}, kept_empty, placement,
        spacing, pixel_spacing(placement, spacing) if placement else None,
    )


@dataclass(frozen=True)
class Task:
    """Everything a worker process needs for one subject (picklable)."""

    reader: str  # module name, imported in the worker
    ref: SubjectRef
    reader_options: dict
    split: str
    out: str
    raw: str
    options: dict  # prepare_subject keyword arguments
    filter_splits: tuple[str, ...] = ("train", "valid")  # the empty-slice filter applies here; others keep all
    threads: int = 1  # lent to the subject: its two files read, its volume windowed and its slices encoded at once


@dataclass
class Outcome:
    subject_id: str
    split: str
    rows: list[dict] = field(default_factory=list)
    slices_seen: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    kept_empty: int = 0
    geometry: dict | None = None
    integrity: dict | None = None  # summarise_subject's record: shape, spacing, labels, percentiles
    error: str | None = None


def relative_source(source: str, raw: str) -> str:
    """A source path relative to the raw folder (stable manifests wherever the data lives)."""
    prefix = str(raw).rstrip("/") + "/"
    return source[len(prefix):] if source.startswith(prefix) else source


def run_task(task: Task) -> Outcome:
    """Load, prepare and write one subject's PNGs under ``<out>/<split>/``; bad input becomes ``error``."""
    ref = task.ref
    try:
        with thread_budget(task.threads):
            subject = importlib.import_module(task.reader).load(ref, **task.reader_options)
            prepared = prepare_subject(subject, **task.options, keep_all=task.split not in task.filter_splits)
    except DatasetError as err:
        return Outcome(ref.subject_id, task.split, error=str(err))
    except Exception as err:  # noqa: BLE001  (a library error no reader wrapped: still one subject's problem)
        where = ref.files[0] if ref.files else ref.subject_id
        detail = " ".join(str(err).split())[:300]
        return Outcome(ref.subject_id, task.split, error=f"{where}: cannot read subject: {type(err).__name__}: {detail}")
    out = Path(task.out)
    source = ";".join(relative_source(s, task.raw) for s in subject.sources)
    rows, slices = [], {}
    for rec in prepared.records:
        image, mask = pair_paths(task.split, slice_stem(subject.subject_id, rec.slice_index))
        (out / image).write_bytes(rec.image_png)
        (out / mask).write_bytes(rec.mask_png)
        slices[str(rec.slice_index)] = Path(image).name
        rows.append({
            "split": task.split, "subject": subject.subject_id, "image": image,
            "mask": mask, "source": source, "slice_index": rec.slice_index,
            "foreground_pixels": rec.foreground_pixels, "original_shape": "x".join(map(str, rec.original_shape)),
            "spacing": "x".join(f"{s:g}" for s in prepared.spacing), "empty_kept": int(rec.empty_kept),
            "pixel_spacing": "x".join(f"{s:.6g}" for s in prepared.pixel_spacing or ()),
        })
    geometry = {
        "split": task.split, "layout": subject.layout, "shape": list(subject.image.shape),
        "axis": task.options["axis"] if subject.layout == "volume" else 0,
        "affine": None if subject.affine is None else np.asarray(subject.affine, dtype=float).round(6).tolist(),
        "spacing": [float(s) for s in subject.spacing], "slice_names": list(subject.slice_names or []),
        # axes whose spacing the source does not give (e.g. a NIfTI pixdim of 1 with no orientation):
        # spacing then holds placeholders and metrics stay in pixels
        "spacing_unknown": [int(a) for a in subject.meta.get("spacing_unknown", ())],
        # axis codes of the source label file as stored, so infer writes its volumes the same way
        "mask_orientation": subject.meta.get("mask_orientation") or subject.orientation,
        "placement": prepared.placement.to_dict() if prepared.placement else None, "slices": slices,
    }
    integrity = summarise_subject(subject, expected_labels=range(int(task.options.get("num_classes", 1)) + 1),
                                  known_not_constant=True)  # prepare_subject refused a constant image
    integrity["sources"] = [relative_source(s, task.raw) for s in subject.sources]  # same wherever raw lives
    return Outcome(subject.subject_id, task.split, rows, prepared.slices_seen, prepared.dropped,
                   prepared.kept_empty, geometry, integrity)


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def summarize(outcomes: Sequence[Outcome], assignment: Mapping[str, str], splits: Sequence[str]) -> dict:
    """stats.json: pairs and subjects per split, drops by reason, skipped subjects, the split assignment,
    and the integrity report of the subjects read (as ``python -m stages.check`` prints it)."""
    done = [o for o in outcomes if o.error is None]
    dropped: dict[str, int] = {}
    for o in done:
        for reason, n in o.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + n
    return {
        "pairs": {s: sum(len(o.rows) for o in done if o.split == s) for s in splits},
        "subjects": {s: sum(1 for o in done if o.split == s) for s in splits},
        "slices_seen": sum(o.slices_seen for o in done),
        "dropped": dropped,
        "kept_empty": sum(o.kept_empty for o in done),
        "skipped_subjects": {o.subject_id: o.error for o in outcomes if o.error is not None},
        "split_assignment": dict(sorted(assignment.items())),
        "integrity": summarise([o.integrity for o in done if o.integrity], []),
    }


def outcomes_in_order(tasks: Sequence[Task], *, jobs: int) -> contextlib.AbstractContextManager[Iterator[Outcome]]:
    """Run tasks on ``jobs`` processes (in this process for 1), yielding outcomes in task order.

    The project's worker pool: leaving early (e.g. the first error under ``on_error: fail``)
    cancels the subjects not started, and workers die with the stage.
    """
    readers = [importlib.import_module(name) for name in sorted({t.reader for t in tasks})]
    preload = ["pipeline.dataset.prepare", *[m for reader in readers for m in worker_imports(reader)]]
    return ordered_results(run_task, tasks, jobs=jobs, preload=preload)





def save_pictures(reports: Path, out: Path, rows: Sequence[Mapping[str, Any]], stats: Mapping, *, title: str,
                  samples: int = 6) -> None:
    """Split bar chart and a montage of pairs spread evenly over the set (slices with foreground first)."""
    from pipeline.reports.plots import save_montage, save_split_counts  # matplotlib: ~1 s, only when asked

    save_split_counts(Path(reports) / "split_counts.png", stats["pairs"], stats["subjects"], title=title)
    pool = [r for r in rows if r["foreground_pixels"] > 0] or list(rows)
    picks = [pool[i * len(pool) // samples] for i in range(min(samples, len(pool)))]
    pairs = [(cv2.imread(str(Path(out) / r["image"]), cv2.IMREAD_UNCHANGED),
              cv2.imread(str(Path(out) / r["mask"]), cv2.IMREAD_UNCHANGED)) for r in picks]
    save_montage(Path(reports) / "samples.png", pairs, title=f"{title} samples", columns=2,
                 labels=[f"{r['split']}/{r['subject']}_{r['slice_index']}" for r in picks])


def save_card(path: Path, out: Path, rows: Sequence[Mapping[str, Any]], stats: Mapping, *, title: str,
              spacings: Sequence[Sequence[float]], num_classes: int, facts: Sequence[str] = (),
              per_split: int = 40, samples: int = 6) -> None:
    """The dataset card: grey-value histograms of up to ``per_split`` images per split (evenly spread)."""
    from pipeline.dataset.prepared import read_mask
    from pipeline.reports.card import save_dataset_card

    histograms = {}
    for split in stats["pairs"]:
        chosen = [r for r in rows if r["split"] == split]
        chosen = [chosen[i * len(chosen) // per_split] for i in range(min(per_split, len(chosen)))]
        counts = np.zeros(256, np.int64)
        for row in chosen:
            counts += np.bincount(cv2.imread(str(Path(out) / row["image"]), cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
        histograms[split] = counts
    pool = [r for r in rows if r["foreground_pixels"] > 0] or list(rows)
    picks = [pool[i * len(pool) // samples] for i in range(min(samples, len(pool)))]
    def mask_of(row: Mapping[str, Any]) -> np.ndarray:
        try:
            return read_mask(Path(out) / row["mask"], num_classes=num_classes)
        except DatasetError:  # an rgb_map set: show foreground as class 1
            png = cv2.imread(str(Path(out) / row["mask"]), cv2.IMREAD_UNCHANGED)
            return ((png.max(axis=-1) if png.ndim == 3 else png) > 0).astype(np.uint8)

    pairs = [(cv2.imread(str(Path(out) / r["image"]), cv2.IMREAD_UNCHANGED), mask_of(r)) for r in picks]
    save_dataset_card(path, title=title, pairs=stats["pairs"], subjects=stats["subjects"], spacings=spacings,
                      histograms=histograms, samples=pairs, facts=facts)
