"""The prepared set's format, in one place: layout, pairing, manifest, mask codec and ``dataset.json``.

Layout of a set (prepare writes it, augment keeps it, train/evaluate/infer/check read it)::

    <set>/dataset.json                       facts of the set (num_classes, channels, mask encoding, ...)
    <set>/manifest.csv                       one row per pair (MANIFEST_COLUMNS)
    <set>/<split>/images/<subject>_<slice:04d>.png
    <set>/<split>/masks/<subject>_<slice:04d>.png   same stem as its image

No TensorFlow here: every stage may import it cheaply.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from pipeline.dataset.split import SPLITS
from pipeline.errors import DatasetError
from pipeline.slices.masks import RgbMap, decode_mask, encode_mask
from pipeline.slices.png import read_png

IMAGES, MASKS, SUFFIX = "images", "masks", ".png"
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = (
    "split", "subject", "image", "mask", "source", "slice_index", "foreground_pixels", "original_shape", "spacing",
    "empty_kept", "pixel_spacing",
)
_AUG_SUFFIX = re.compile(r"_aug\d+$")  # augment's copies: <stem>_aug<k>
DATASET_JSON = "dataset.json"
FORMAT_VERSION = 1
ENCODINGS = ("binary_0_255", "class_index", "rgb_map")
ORIENTATION = ("upright: volumes sliced in the radiological display of pipeline.slices.slicing "
               "(row 0 anterior or superior, the patient's right on the image's left); 2D sources as published")

__all__ = [
    "DATASET_JSON", "IMAGES", "MANIFEST", "MANIFEST_COLUMNS", "MASKS", "SPLITS", "DatasetInfo", "Pair",
    "check_set", "list_pairs", "mask_encoding", "pair_paths", "read_info", "read_manifest", "read_mask",
    "rows_of_split",
    "slice_stem", "subject_of", "subjects_by_stem", "write_info", "write_manifest", "write_mask",
]


# --- names --------------------------------------------------------------------------------------

def slice_stem(subject: str, slice_index: int) -> str:
    """The file stem of one slice: ``<subject>_<slice:04d>`` (sorts slices of a subject in order)."""
    return f"{subject}_{int(slice_index):04d}"


def pair_paths(split: str, stem: str) -> tuple[str, str]:
    """``(image, mask)`` paths of a pair relative to the set root, as the manifest records them."""
    return f"{split}/{IMAGES}/{stem}{SUFFIX}", f"{split}/{MASKS}/{stem}{SUFFIX}"


def subject_of(stem: str, table: Mapping[str, str] | None = None) -> str:
    """The subject of a slice: from the manifest's ``table`` (stem -> subject), else the stem rule.

    Augmented copies (``<subject>_<slice>_aug<k>``) are found in the table or lose their suffix first.
    """
    if table and stem in table:
        return table[stem]
    return _AUG_SUFFIX.sub("", stem).rsplit("_", 1)[0]


class Pair(NamedTuple):
    stem: str
    image: Path
    mask: Path


def list_pairs(split_dir: Path, *, allow_empty: bool = False) -> list[Pair]:
    """Every ``(stem, image, mask)`` of a split folder, sorted by stem.

    Raises one DatasetError naming every unpaired stem, or the missing folders, or an empty split
    (unless ``allow_empty``: a small source may leave a split without subjects).
    """
    split_dir = Path(split_dir)
    image_dir, mask_dir = split_dir / IMAGES, split_dir / MASKS
    missing = [f"{d.name}/" for d in (image_dir, mask_dir) if not d.is_dir()]
    if missing:
        raise DatasetError(split_dir, f"expected folders {IMAGES}/ and {MASKS}/ of a prepared set, missing "
                           f"{', '.join(missing)}; point it at a set written by prepare or augment")
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() == SUFFIX}
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == SUFFIX}
    problems = []
    if only_images := sorted(images.keys() - masks.keys()):
        problems.append(f"{len(only_images)} image(s) without a mask: {', '.join(only_images)}")
    if only_masks := sorted(masks.keys() - images.keys()):
        problems.append(f"{len(only_masks)} mask(s) without an image: {', '.join(only_masks)}")
    if problems:
        raise DatasetError(split_dir, "; ".join(problems) + f"; every {IMAGES}/<stem>.png needs "
                           f"{MASKS}/<stem>.png")
    if not images and not allow_empty:
        raise DatasetError(split_dir, f"no {SUFFIX} pairs in {IMAGES}/; expected at least one pair")
    return [Pair(stem, images[stem], masks[stem]) for stem in sorted(images)]


# --- manifest -----------------------------------------------------------------------------------

def write_manifest(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(root: Path) -> list[dict[str, str]]:
    """The rows of ``<root>/manifest.csv`` as strings (empty when the set has none, e.g. a bare folder)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rows_of_split(rows: Sequence[Mapping[str, str]], split: str) -> list[Mapping[str, str]]:
    return [r for r in rows if r.get("split") == split]


def subjects_by_stem(root: Path) -> dict[str, str]:
    """Image stem -> subject from the set's manifest (empty when there is none)."""
    return {Path(r["image"]).stem: r["subject"] for r in read_manifest(root) if r.get("image") and r.get("subject")}


# --- masks on disk ------------------------------------------------------------------------------

def mask_encoding(*, num_classes: int, rgb_map: RgbMap | None = None) -> str:
    """How prepare writes masks: 0/255 for one class, class indices for several, colours with ``rgb_map``."""
    if rgb_map:
        return "rgb_map"
    return "binary_0_255" if num_classes == 1 else "class_index"


def read_mask(path: Path, *, num_classes: int) -> np.ndarray:
    """A mask PNG as ``(H, W)`` uint8 class indices, by the strict rule of pipeline.slices.masks.

    One class: 0/255 only (any other value is an error, not foreground); several: indices
    ``0..num_classes``. Raises DatasetError naming the file.
    """
    png = read_png(path)
    if png is None:
        raise DatasetError(path, "cannot be read as a PNG mask; expected a mask written by prepare")
    try:
        return decode_mask(png, num_classes=num_classes)
    except ValueError as err:
        raise DatasetError(path, f"{err}; masks of this set hold {mask_encoding(num_classes=num_classes)} "
                           "values (dataset.json): prepare it again or fix the mask") from None


def write_mask(path: Path, labels: np.ndarray, *, num_classes: int) -> None:
    """Write class indices as prepare does (0/255 for one class, indices for several)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), encode_mask(np.asarray(labels, np.uint8), num_classes=num_classes)):
        raise OSError(f"{path}: could not write PNG")


# --- dataset.json -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetInfo:
    """Facts of a prepared set that later stages read from the data, not from params."""

    num_classes: int       # foreground classes in the masks (1 = binary)
    channels: int          # image channels written (1 grey, 3 BGR)
    mask_encoding: str     # one of ENCODINGS
    image_size: int        # side of the square PNGs
    slice_axis: int        # axis volumes were sliced along (0 sagittal, 1 coronal, 2 axial)
    orientation: str = ORIENTATION
    format_version: int = FORMAT_VERSION


def write_info(root: Path, info: DatasetInfo) -> None:
    (Path(root) / DATASET_JSON).write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n")


def read_info(root: Path) -> DatasetInfo:
    """``<root>/dataset.json``; raises DatasetError when it is missing, of another version or incomplete."""
    path = Path(root) / DATASET_JSON
    if not path.is_file():
        raise DatasetError(path, "not found; expected the dataset.json that prepare writes into every set: "
                           "point at a prepared or augmented set, or run prepare again")
    try:
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise DatasetError(path, f"format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}; "
                               "run prepare again with this version of the pipeline")
        info = DatasetInfo(**data)
    except (json.JSONDecodeError, TypeError, AttributeError) as err:
        raise DatasetError(path, f"not a dataset.json of this pipeline ({err}); run prepare again") from None
    if info.mask_encoding not in ENCODINGS or info.num_classes < 1:
        raise DatasetError(path, f"mask_encoding {info.mask_encoding!r} / num_classes {info.num_classes} "
                           f"invalid; expected one of {ENCODINGS} and >= 1; run prepare again")
    return info


def check_set(root: Path) -> list[str]:
    """Every problem of a prepared (or augmented) set on disk, one line each; empty when it is usable.

    Looks at dataset.json, the pairing of every split, every mask against the set's encoding
    (strictly, as train/evaluate/infer read them) and the files the manifest names.
    """
    root = Path(root)
    try:
        info = read_info(root)
    except DatasetError as err:
        return [str(err)]
    problems = []
    for split in SPLITS:
        try:
            pairs = list_pairs(root / split, allow_empty=True)
        except DatasetError as err:
            problems.append(str(err))
            continue
        if info.mask_encoding == "rgb_map":  # colours need the params' rgb_map; only pairing is checked
            continue
        for pair in pairs:
            try:
                read_mask(pair.mask, num_classes=info.num_classes)
            except DatasetError as err:
                problems.append(str(err))
    for row in read_manifest(root):
        missing = [row[k] for k in ("image", "mask") if row.get(k) and not (root / row[k]).is_file()]
        if missing:
            problems.append(f"{root / MANIFEST}: names {', '.join(missing)}, not in the set; prepare it again")
    return problems
