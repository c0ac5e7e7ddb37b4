"""Reader for LASC'13 / MSD Task02_Heart: ``imagesTr``/``labelsTr`` NIfTI pairs listed in ``dataset.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.formats.discover import find_dirs, find_nifti, is_hidden, natural_key, nifti_stem
from pipeline.errors import DatasetError
from pipeline.formats.nifti import ANY_LABEL, MAX_VOLUME_BYTES, check_same_grid, load_label_volume, load_volume
from pipeline.sources.scans import nifti_scans
from pipeline.sources.subject import Subject, SubjectRef
from pipeline.workers import concurrently

EXPECTED = "Task02_Heart/dataset.json with imagesTr/la_XXX.nii.gz and labelsTr/la_XXX.nii.gz"


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    grid_tolerance: float = 0.01  # largest image/mask grid difference accepted
    max_volume_bytes: int = MAX_VOLUME_BYTES  # refuse a volume larger than this in memory (float32), from its header


def _dataset_json(raw: Path) -> Path | None:
    """The dataset.json of the task under ``raw`` (shallowest; a Task02 folder wins a tie)."""
    found = [
        p for p in raw.rglob("*") if p.name.lower() == "dataset.json" and p.is_file() and not is_hidden(p, raw)
    ]
    if not found:
        return None
    depth = min(len(p.relative_to(raw).parts) for p in found)
    top = [p for p in found if len(p.relative_to(raw).parts) == depth]
    heart = [p for p in top if "task02" in p.parent.name.lower() or "heart" in p.parent.name.lower()]
    if len(top) > 1 and len(heart) != 1:
        listing = ", ".join(map(str, top))
        raise DatasetError(raw, f"several dataset.json files, cannot tell which is Task02_Heart: {listing}")
    return heart[0] if len(top) > 1 else top[0]


def _index(folder: Path | None) -> dict[str, Path]:
    """Visible NIfTI files of ``folder`` by lower-case stem (``la_003``).

    Raises DatasetError when two files share a stem (``la_003.nii`` beside ``la_003.nii.gz``, or
    two letter cases): which one is the case is not ours to guess.
    """
    if folder is None:
        return {}
    index: dict[str, Path] = {}
    twins = []
    for path in find_nifti(folder, recursive=False):
        stem = (nifti_stem(path) or "").lower()
        if stem in index:
            twins.append(f"{index[stem].name} and {path.name}")
        index.setdefault(stem, path)
    if twins:
        raise DatasetError(folder, f"one case stored twice: {'; '.join(twins)}; keep one file per case")
    return index


def _subfolder(root: Path, name: str) -> Path | None:
    dirs = find_dirs(root, name)
    return dirs[0] if dirs else None


def _from_json(path: Path) -> list[tuple[str, Path | None, Path | None, str, str]]:
    """(case id, image, label, listed image, listed label) per ``training`` entry; None where missing."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(path, f"not a readable dataset.json ({exc}); expected the MSD JSON") from exc
    training = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(training, list) or not all(
        isinstance(t, dict) and {"image", "label"} <= t.keys() for t in training
    ):
        raise DatasetError(path, 'expected a "training" list of {"image": ..., "label": ...} entries (MSD format)')
    root = path.parent
    images, labels = _index(_subfolder(root, "imagesTr")), _index(_subfolder(root, "labelsTr"))

    def resolve(listed: str, index: dict[str, Path]) -> Path | None:
        direct = root / listed
        if direct.is_file():
            return direct
        return index.get((nifti_stem(listed) or Path(listed).name).lower())  # .nii vs .nii.gz, case

    entries = []
    for t in training:
        case = nifti_stem(t["image"]) or Path(t["image"]).name
        entries.append((case, resolve(t["image"], images), resolve(t["label"], labels), t["image"], t["label"]))
    _check_unique_cases(path, [e[0] for e in entries])
    return entries


def _check_unique_cases(path: Path, cases: list[str]) -> None:
    """Raise naming ``dataset.json`` and every case id its ``training`` list holds more than once."""
    seen: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        seen.setdefault(case.lower(), []).append(index)
    twice = [f"{cases[ix[0]]!r} (entries {', '.join(map(str, ix))})" for ix in seen.values() if len(ix) > 1]
    if twice:
        raise DatasetError(path, f"duplicate case ids under 'training': {'; '.join(twice)}; "
                                 "keep one entry per case in dataset.json")


def discover(raw: Path, *, grid_tolerance: float = 0.01, max_volume_bytes: int = MAX_VOLUME_BYTES) -> list[SubjectRef]:
    """One SubjectRef per labelled case (files ``(image, label)``), sorted by case name.

    Pairs come from ``dataset.json`` when present, else by file name between ``imagesTr`` and
    ``labelsTr``. Hidden files (macOS ``._la_003.nii.gz``) are ignored. ``imagesTs`` has no labels
    and is not used (see ``notes``). Raises DatasetError listing every unpaired file at once.
    ``grid_tolerance`` and ``max_volume_bytes`` are used by ``load``; accepted here so one options dict fits both calls.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(raw, f"folder not found: expected a folder holding {EXPECTED}")
    json_path = _dataset_json(raw)
    if json_path is not None:
        entries = _from_json(json_path)
        missing = [f"image {li}" for _, i, _, li, _ in entries if i is None]
        missing += [f"label {ll}" for _, _, lab, _, ll in entries if lab is None]
        if missing:
            raise DatasetError(json_path, f"files listed under 'training' are missing: {', '.join(missing)}")
        pairs = [(case, i, lab) for case, i, lab, _, _ in entries]
    else:
        images_dir = _subfolder(raw, "imagesTr")
        if images_dir is None:
            raise DatasetError(raw, f"no dataset.json and no imagesTr folder found: expected {EXPECTED}")
        images, labels = _index(images_dir), _index(_subfolder(images_dir.parent, "labelsTr"))
        no_label = sorted(set(images) - set(labels), key=natural_key)
        no_image = sorted(set(labels) - set(images), key=natural_key)
        if no_label or no_image:
            parts = [f"images without a label: {', '.join(str(images[s]) for s in no_label)}"] if no_label else []
            parts += [f"labels without an image: {', '.join(str(labels[s]) for s in no_image)}"] if no_image else []
            fix = "; every imagesTr/<case>.nii.gz needs labelsTr/<case>.nii.gz"
            raise DatasetError(images_dir.parent, "; ".join(parts) + fix)
        pairs = [(nifti_stem(images[s]) or s, images[s], labels[s]) for s in images]
    if not pairs:
        raise DatasetError(raw, f"no labelled cases found: expected {EXPECTED}")
    refs = [SubjectRef(case, (str(image), str(label))) for case, image, label in pairs]
    return sorted(refs, key=lambda r: natural_key(r.subject_id))


def notes(raw: Path) -> list[str]:
    """Human-readable remarks on what the reader leaves out (unlabelled ``imagesTs`` volumes)."""
    test_dirs = find_dirs(Path(raw), "imagesTs") if Path(raw).is_dir() else []
    count = sum(len(find_nifti(d, recursive=False)) for d in test_dirs)
    return [f"imagesTs: {count} volumes have no labels and are not used"] if count else []


def load(ref: SubjectRef, *, grid_tolerance: float = 0.01, max_volume_bytes: int = MAX_VOLUME_BYTES) -> Subject:
    """Read one case's image and left-atrium label in RAS+ canonical order, checking they share a grid
    (spacing and origin within ``grid_tolerance`` of a voxel, see ``pipeline.formats.nifti.check_same_grid``)."""
    image_path, label_path = (Path(p) for p in ref.files)
    image, label = concurrently(  # on two threads when the stage lends them; num_classes is checked in prepare
        lambda: load_volume(image_path, max_bytes=max_volume_bytes),
        lambda: load_label_volume(label_path, allowed_labels=ANY_LABEL, max_bytes=max_volume_bytes))
    check_same_grid(
        image_path, image.affine, image.array.shape, label_path, label.affine, label.array.shape, tol=grid_tolerance
    )
    return Subject(
        subject_id=ref.subject_id,
        image=image.array,
        mask=label.array,
        spacing=image.spacing,
        sources=(str(image_path), str(label_path)),
        modality="MR",
        layout="volume",
        affine=image.affine,
        orientation=image.orientation,
        meta={"mask_orientation": label.orientation},
    )


def load_images(path: Path, *, max_volume_bytes: int = MAX_VOLUME_BYTES, **_: object) -> list[Subject]:
    """Unlabelled scans for inference: a NIfTI file (e.g. from imagesTs) or a folder of them, no mask."""
    return nifti_scans(path, modality="MR", max_bytes=max_volume_bytes)
