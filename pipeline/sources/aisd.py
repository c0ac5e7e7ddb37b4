"""Reader for AISD: ``image.zip`` and ``mask.zip`` of ``<case id>/<slice>.png``, paired by case and slice.

The publisher's masks hold classes 0-5 (1 remote infarct, 2 clear acute, 3 blurred acute, 4
invisible acute, 5 infarct; README item 6) and advise lesion = {1, 2, 3, 5}: the binary target is
``lesion_labels``, or ``multiclass`` keeps the classes (``prepare.num_classes: 5``). The publisher's
official test cases (README item 5) are pinned to the test split.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.formats import archive
from pipeline.formats.discover import natural_key
from pipeline.errors import DatasetError
from pipeline.formats.images2d import decode_grey, decode_label
from pipeline.sources.scans import image_scans
from pipeline.sources.subject import Subject, SubjectRef

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MISSING_MASK = ("error", "empty")
EXPECTED = "image.zip and mask.zip, each holding <case id>/<slice>.png (or extracted image/ and mask/ folders)"
PUBLISHER_CLASSES = (0, 1, 2, 3, 4, 5)  # background, remote infarct, clear/blurred/invisible acute, infarct
LESION_LABELS = (1, 2, 3, 5)  # the publisher's lesion set: label 4 (invisible on NCCT) excluded
# The publisher's official test cases (README item 5; 52 in all). Only these four ids were available
# where this reader was written: add the others to prepare.reader.test_cases from the README.
OFFICIAL_TEST_CASES = ("0073410", "0072723", "0226290", "0226261")


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    missing_mask: Literal["error", "empty"] = "empty"  # a slice shipped without a mask file: no lesion, or "error"
    lesion_labels: tuple[int, ...] = LESION_LABELS  # publisher classes that make the binary target
    multiclass: bool = False  # keep the publisher's classes 0-5 (with prepare.num_classes: 5)
    pin_test_cases: bool = True  # put the publisher's official test cases in the test split
    test_cases: tuple[str, ...] = OFFICIAL_TEST_CASES  # their ids, as strings with leading zeros
    max_member_bytes: int = archive.MAX_MEMBER_BYTES  # refuse a zip member larger than this, uncompressed
    max_total_bytes: int = archive.MAX_TOTAL_BYTES  # refuse a zip whose members add up to more
    max_ratio: float = archive.MAX_RATIO  # refuse a member compressed more than this (zip bomb)


def _slices(raw: Path, which: str, limits: dict) -> dict[tuple[str, str], str]:
    """``(case id, slice stem) -> provenance`` for the ``which`` (image/mask) half of the source."""
    zips = sorted(p for p in raw.rglob("*") if p.is_file() and p.name.lower() == f"{which}.zip"
                  and not archive.is_decoy(p.name))
    if zips:
        sources = [s for z in zips for s in archive.list_sources(z, **limits)]
    else:
        folders = sorted(p for p in raw.rglob("*") if p.is_dir() and p.name.lower() == which)
        sources = [s for f in folders for s in archive.list_sources(f, pattern=None, **limits)]
    out: dict[tuple[str, str], str] = {}
    duplicates = []
    for source in sources:
        path, member = archive.split_provenance(source)
        logical = PurePosixPath((member or str(path)).replace("\\", "/"))
        if logical.suffix.lower() not in IMAGE_EXTENSIONS or len(logical.parts) < 2:
            continue
        key = (logical.parent.name, logical.stem)
        if key in out:
            duplicates.append(f"{out[key]} and {source}")
        out[key] = source
    if duplicates:
        raise DatasetError(raw, f"two {which} files for one case and slice: {'; '.join(duplicates[:10])}")
    return out


def discover(raw: Path, *, missing_mask: str = Options.missing_mask,
             max_member_bytes: int = archive.MAX_MEMBER_BYTES, max_total_bytes: int = archive.MAX_TOTAL_BYTES,
             max_ratio: float = archive.MAX_RATIO, **_: object) -> list[SubjectRef]:
    """One SubjectRef per case; ``extra["slices"]`` is a JSON list of ``[slice name, image, mask or ""]``.

    Raises:
        DatasetError: no image/mask sources, masks without an image, or (``missing_mask="error"``)
            images without a mask; every unpaired file listed at once.
    """
    if missing_mask not in MISSING_MASK:
        raise DatasetError(raw, f"missing_mask must be one of {MISSING_MASK}, found {missing_mask!r}")
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(raw, f"no such folder: expected a folder holding {EXPECTED}")
    limits = dict(max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    images, masks = _slices(raw, "image", limits), _slices(raw, "mask", limits)
    if not images or not masks:
        raise DatasetError(raw, f"found {len(images)} image and {len(masks)} mask slices: expected {EXPECTED}")
    orphans = sorted(masks.keys() - images.keys())
    unmasked = sorted(images.keys() - masks.keys())
    problems = [f"mask without image: {masks[k]}" for k in orphans]
    if missing_mask == "error":
        problems += [f"image without mask: {images[k]}" for k in unmasked]
    if problems:
        fix = "" if missing_mask == "empty" else " (or set missing_mask: empty to treat missing masks as empty)"
        raise DatasetError(raw, f"{len(problems)} unpaired AISD slices{fix}: " + "; ".join(problems[:50])
                                + (f"; ... {len(problems) - 50} more" if len(problems) > 50 else ""))
    cases: dict[str, list[str]] = {}
    for case, stem in images:
        cases.setdefault(case, []).append(stem)
    refs = []
    for case in sorted(cases, key=natural_key):
        stems = sorted(cases[case], key=natural_key)
        rows = [[stem, images[(case, stem)], masks.get((case, stem), "")] for stem in stems]
        files = tuple(r[1] for r in rows) + tuple(r[2] for r in rows if r[2])
        refs.append(SubjectRef(subject_id=case, files=files, extra=(("slices", json.dumps(rows)),)))
    return refs


def pinned_splits(refs: Iterable[SubjectRef], *, pin_test_cases: bool = Options.pin_test_cases,
                  test_cases: Iterable[str] = OFFICIAL_TEST_CASES, **_: object) -> dict[str, str]:
    """The publisher's official test cases found among ``refs``, pinned to the test split.

    Case ids are compared as strings with their leading zeros (``0073410``, never 73410).
    """
    wanted = {str(c) for c in test_cases} if pin_test_cases else set()
    return {r.subject_id: "test" for r in refs if r.subject_id in wanted}


def _check_options(lesion_labels: Iterable[int], missing_mask: str) -> tuple[int, ...]:
    labels = tuple(sorted({int(v) for v in lesion_labels}))
    if not labels or not set(labels) <= set(PUBLISHER_CLASSES[1:]):
        raise DatasetError("prepare.reader.lesion_labels",
                           f"{list(labels)}: expected publisher classes from 1-5 "
                           "(1 remote, 2 clear, 3 blurred, 4 invisible acute, 5 infarct)")
    if missing_mask not in MISSING_MASK:
        raise DatasetError("prepare.reader.missing_mask", f"must be one of {MISSING_MASK}, found {missing_mask!r}")
    return labels


def target_mask(mask: np.ndarray, *, name: str, lesion_labels: tuple[int, ...], multiclass: bool) -> np.ndarray:
    """The publisher's classes 0-5 to the target: ``lesion_labels`` -> 1 (binary), or kept (multiclass).

    A mask holding only 0/255 is an already binarised copy (the seeds' output): its 255 is the
    lesion in binary mode and refused in multiclass mode (the classes are gone).
    """
    top = int(mask.max()) if mask.size else 0
    if top <= PUBLISHER_CLASSES[-1]:
        return mask.copy() if multiclass else np.isin(mask, lesion_labels).astype(np.uint8)
    values = np.unique(mask)
    if set(values.tolist()) <= {0, 255} and not multiclass:
        return (mask == 255).astype(np.uint8)
    raise DatasetError(name, f"mask values {values[:10].tolist()}: expected the publisher's classes 0-5"
                             + ("" if multiclass else " (or a binarised 0/255 copy)")
                             + "; is this file really an AISD mask?")


def load(ref: SubjectRef, *, missing_mask: str = Options.missing_mask,
         lesion_labels: Iterable[int] = LESION_LABELS, multiclass: bool = False,
         max_member_bytes: int = archive.MAX_MEMBER_BYTES, max_total_bytes: int = archive.MAX_TOTAL_BYTES,
         max_ratio: float = archive.MAX_RATIO, **_: object) -> Subject:
    """The case as an ``(N, H, W)`` float32 0..255 stack in slice-name order with its target mask stack."""
    labels = _check_options(lesion_labels, missing_mask)
    rows = json.loads(ref.option("slices", "[]"))
    missing = [r[1] for r in rows if not r[2]]
    if missing and missing_mask != "empty":
        raise DatasetError(missing[0], f"{len(missing)} slices of case {ref.subject_id} have no mask; "
                                       "set missing_mask: empty to treat them as empty")
    wanted = [r[1] for r in rows] + [r[2] for r in rows if r[2]]
    data = dict(zip(wanted, archive.read_sources(wanted, max_member_bytes=max_member_bytes,
                                                 max_total_bytes=max_total_bytes, max_ratio=max_ratio)))
    images, masks = [], []
    label_4_only = 0
    for _, image_src, mask_src in rows:
        image = decode_grey(data[image_src], name=image_src)
        if mask_src:
            stored = decode_label(data[mask_src], name=mask_src)
            mask = target_mask(stored, name=mask_src, lesion_labels=labels, multiclass=multiclass)
            if stored.max() <= 5 and (stored == 4).any() and not (np.isin(stored, labels)).any():
                label_4_only += 1
            if mask.shape != image.shape:
                raise DatasetError(mask_src, f"mask is {mask.shape[0]}x{mask.shape[1]} but its image {image_src} "
                                             f"is {image.shape[0]}x{image.shape[1]}")
        else:
            mask = np.zeros_like(image)
        if images and image.shape != images[0].shape:
            raise DatasetError(image_src, f"slice is {image.shape[0]}x{image.shape[1]} but the case's first "
                                          f"slice {rows[0][1]} is {images[0].shape[0]}x{images[0].shape[1]}")
        images.append(image)
        masks.append(mask)
    return Subject(
        subject_id=ref.subject_id,
        image=np.stack(images).astype(np.float32),
        mask=np.stack(masks),
        spacing=(1.0, 1.0),
        sources=ref.files,
        modality="8bit",
        layout="stack",
        slice_names=tuple(r[0] for r in rows),
        meta={"slices": len(rows), "missing_masks": len(missing), "label_4_only_slices": label_4_only,
              "spacing_unknown": (0, 1)},
    )


def load_images(path: Path, **_: object) -> list[Subject]:
    """Unlabelled scans for inference: the PNG slices of a case (a folder or zip of ``<case>/<slice>.png``,
    or one slice), stacked per case folder in slice-name order, no mask."""
    return image_scans(path, group=lambda member: member.parent.name or member.stem)
