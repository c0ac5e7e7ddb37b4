"""Unlabelled scans as published (images only), for inference on new data through the same format readers.

Each reader's ``load_images(path, **options)`` calls one of these; they return :class:`Subject`
objects without a mask, in the same orientation and units ``load`` gives, so prepare's intensity,
upright slicing and placement apply unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.errors import DatasetError
from pipeline.formats import archive
from pipeline.formats.dicom import dicom_files, read_series
from pipeline.formats.discover import find_nifti, natural_key, nifti_stem
from pipeline.formats.images2d import EXTENSIONS, decode_grey
from pipeline.formats.nifti import MAX_VOLUME_BYTES, load_volume
from pipeline.sources.subject import Subject


def scan_id(name: str) -> str:
    """A file-name-safe subject id from a file or folder name."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip("._-")
    return safe or "scan"


def nifti_scans(path: Path, *, modality: str, max_bytes: int = MAX_VOLUME_BYTES) -> list[Subject]:
    """One image-only volume per NIfTI file: ``path`` itself, or every ``.nii(.gz)`` under a folder."""
    path = Path(path)
    files = [path] if path.is_file() else find_nifti(path) if path.is_dir() else []
    if not files:
        raise DatasetError(path, "no NIfTI volume found: expected a .nii/.nii.gz file or a folder holding some")
    scans = []
    for file in files:
        volume = load_volume(file, max_bytes=max_bytes)
        scans.append(Subject(scan_id(nifti_stem(file) or file.name), volume.array, None, volume.spacing,
                             (str(file),), modality, "volume", affine=volume.affine, orientation=volume.orientation))
    return scans


def dicom_scans(path: Path, *, modality: str = "CT", max_bytes: int = MAX_VOLUME_BYTES) -> list[Subject]:
    """One image-only volume per DICOM series folder at or under ``path`` (sorted by position, in HU for CT)."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(path, "expected a folder holding one DICOM series (or folders of series), as downloaded")
    folders = [Path(root) for root, dirs, _ in sorted(os.walk(path))
               if not any(part.startswith(".") for part in Path(root).relative_to(path).parts)
               and dicom_files(Path(root))]
    if not folders:
        raise DatasetError(path, "no DICOM files found; expected a series folder of .dcm files")
    scans = []
    for folder in folders:
        image, affine, spacing, meta = read_series(folder, modality=modality, max_bytes=max_bytes)
        scans.append(Subject(scan_id(folder.name), image, None, spacing, (str(folder),), modality, "volume",
                             affine=affine, orientation=meta["orientation"]))
    return scans


def _image_sources(path: Path) -> list[str]:
    if path.is_file() and path.suffix.lower() in EXTENSIONS:
        return [str(path)]
    sources = archive.list_sources(path, pattern="*.zip")  # a zip, a folder of zips, or a folder of images
    return [s for s in sources if PurePosixPath(s.replace("\\", "/")).suffix.lower() in EXTENSIONS]


def image_scans(path: Path, *, group: Callable[[PurePosixPath], str] | None = None) -> list[Subject]:
    """2D images (PNG/JPEG file, folder or zip) as ``(N, H, W)`` 0..255 stacks without masks.

    Each image is its own scan unless ``group`` maps an image's path to a scan id, whose images
    (of one size) then form one stack in natural name order, e.g. the slices of one CT case.
    """
    path = Path(path)
    sources = _image_sources(path)
    if not sources:
        raise DatasetError(path, "no PNG/JPEG images found: expected an image file, a folder or a zip of images")
    logical = {}
    for source in sources:
        file, member = archive.split_provenance(source)
        logical[source] = PurePosixPath((member or str(file)).replace("\\", "/"))
    stems = [p.stem for p in logical.values()]
    unique = len(set(stems)) == len(stems)  # FAZ repeats <n>.png in every <category>_all folder
    scans: dict[str, list[tuple[str, str]]] = {}
    for source, path_in in logical.items():
        key = group(path_in) if group else path_in.stem if unique else f"{path_in.parent.name}_{path_in.stem}"
        scans.setdefault(scan_id(key), []).append((path_in.stem, source))
    out = []
    for name in sorted(scans, key=natural_key):
        items = sorted(scans[name], key=lambda item: natural_key(item[0]))
        images = [decode_grey(data, name=source)
                  for (_, source), data in zip(items, archive.read_sources([s for _, s in items]))]
        if len({im.shape for im in images}) > 1:
            raise DatasetError(items[0][1], f"the images of scan {name} differ in size; expected one size per scan")
        out.append(Subject(name, np.stack(images).astype(np.float32), None, (1.0, 1.0),
                           tuple(s for _, s in items), "8bit", "stack", slice_names=tuple(n for n, _ in items)))
    return out
