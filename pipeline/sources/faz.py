"""Reader for the OCTA FAZ zip (Zenodo 5075563): ``<category>_all/<n>.png`` + LabelMe ``<n>.json``.

Category folders are found with or without the ``_all`` suffix (``deep_all/`` or ``deep/``); only
shapes labelled as the FAZ (``faz_labels``) are painted, the others are counted in stats.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.formats import archive
from pipeline.formats.discover import natural_key
from pipeline.errors import DatasetError
from pipeline.formats.images2d import decode_grey, labelme_mask
from pipeline.sources.scans import image_scans
from pipeline.sources.subject import Subject, SubjectRef

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
EXPECTED = ("a zip (e.g. FAZ.zip) holding FAZ_sgementation/<category>_all/<n>.png with a LabelMe "
            "<n>.json beside each image")
FAZ_LABELS = ("FAZ",)  # LabelMe label of the FAZ polygon (compared without case); unconfirmed for the publisher


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    faz_labels: tuple[str, ...] = FAZ_LABELS  # LabelMe labels that mark the FAZ (any case); other shapes are counted
    max_member_bytes: int = archive.MAX_MEMBER_BYTES  # refuse a zip member larger than this, uncompressed
    max_total_bytes: int = archive.MAX_TOTAL_BYTES  # refuse a zip whose members add up to more
    max_ratio: float = archive.MAX_RATIO  # refuse a member compressed more than this (zip bomb)


def category(folder: str) -> str:
    """``deep_all`` and ``deep`` are both the category ``deep``."""
    return folder[: -len("_all")] if folder.lower().endswith("_all") else folder


def _logical(source: str, raw: Path) -> PurePosixPath:
    """The path inside the source: the zip member, or the file path relative to ``raw``."""
    path, member = archive.split_provenance(source)
    if member is not None:
        return PurePosixPath(member.replace("\\", "/"))
    return PurePosixPath(path.relative_to(raw).as_posix()) if raw.is_dir() else PurePosixPath(path.name)


def discover(raw: Path, *, max_member_bytes: int = archive.MAX_MEMBER_BYTES,
             max_total_bytes: int = archive.MAX_TOTAL_BYTES, max_ratio: float = archive.MAX_RATIO,
             **_: object) -> list[SubjectRef]:
    """One SubjectRef per image, id ``<category>_<n>``, files ``(image, json)``.

    Raises:
        DatasetError: nothing found, or images without JSON / JSON without image / duplicate ids
            (all listed at once).
    """
    raw = Path(raw)
    sources = archive.list_sources(raw, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes,
                                   max_ratio=max_ratio)
    groups: dict[tuple[str, str], dict[str, list[str]]] = {}
    for source in sources:
        path = _logical(source, raw)
        ext = path.suffix.lower()
        if len(path.parts) < 2 or not path.stem.isdigit():  # images are <n>.png inside a category folder
            continue
        if ext not in IMAGE_EXTENSIONS and ext != ".json":
            continue
        key = (category(path.parent.name), path.stem)
        groups.setdefault(key, {"image": [], "json": []})["json" if ext == ".json" else "image"].append(source)
    if not groups:
        raise DatasetError(raw, f"no FAZ images found: expected {EXPECTED}; found {len(sources)} other files")
    problems, refs = [], []
    for (cat, stem), found in sorted(groups.items(), key=lambda kv: (kv[0][0], natural_key(kv[0][1]))):
        images, jsons = found["image"], found["json"]
        if len(images) != 1 or len(jsons) != 1:
            what = ("image without LabelMe JSON" if not jsons else "JSON without image" if not images
                    else "more than one image or JSON")
            problems.append(f"{what}: {', '.join(images + jsons)}")
            continue
        refs.append(SubjectRef(subject_id=f"{cat}_{stem}", files=(images[0], jsons[0])))
    if problems:
        raise DatasetError(raw, f"{len(problems)} unpaired FAZ files (expected each <n>.png beside its <n>.json): "
                                + "; ".join(problems))
    return refs


def notes(raw: Path) -> list[str]:
    """What the split of this source can and cannot promise (written to stats.json by prepare)."""
    return ["subjects are single images (<category>_<n>): the source publishes no patient id, so the "
            "split is by image and two scans of one patient may land in different splits"]


def load(ref: SubjectRef, *, faz_labels: Iterable[str] = FAZ_LABELS, max_member_bytes: int = archive.MAX_MEMBER_BYTES,
         max_total_bytes: int = archive.MAX_TOTAL_BYTES, max_ratio: float = archive.MAX_RATIO,
         **_: object) -> Subject:
    """The image as a ``(1, H, W)`` float32 0..255 stack and the FAZ polygon mask as ``(1, H, W)`` 0/1."""
    image_src, json_src = ref.files
    image_bytes, json_bytes = archive.read_sources(ref.files, max_member_bytes=max_member_bytes,
                                                   max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    image = decode_grey(image_bytes, name=image_src)
    polygon = labelme_mask(json_bytes, name=json_src, image_shape=image.shape, labels=tuple(faz_labels))
    return Subject(
        subject_id=ref.subject_id,
        image=image[None].astype(np.float32),
        mask=polygon.mask[None],
        spacing=(1.0, 1.0),
        sources=ref.files,
        modality="8bit",
        layout="stack",
        slice_names=("0",),
        meta={"polygons": polygon.polygons, "clipped_points": polygon.clipped_points,
              "other_shapes": polygon.other_shapes, "split_unit": "image (no patient id is published)",
              "spacing_unknown": (0, 1)},
    )


def load_images(path: Path, **_: object) -> list[Subject]:
    """Unlabelled scans for inference: an OCTA image (PNG/JPEG), or a folder or zip of them, each its own scan."""
    return image_scans(path)
