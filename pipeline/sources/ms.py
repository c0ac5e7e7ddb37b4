"""Reader for the MS brain MRI source: ``Patient-<n>/<n>-<Seq>.nii`` with ``<n>-LesionSeg-<Seq>.nii``.

Each sequence is paired only with its own mask (FLAIR, T1 and T2 differ in shape and are not
co-registered). Headers without orientation (qform and sform codes 0, pixdim 1) are not given an
invented one: their stored axes are read as ``missing_orientation`` (default ``PLS``: slice
``[:, :, k]`` shown with array axis 0 down the rows, as the seed and numpy/matplotlib show the
publisher's files), and a pixdim of exactly 1 is recorded as unknown spacing, not 1 mm.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal
from pathlib import Path

import numpy as np

from pipeline.formats.dicom import canonical
from pipeline.formats.discover import find_nifti, natural_key, nifti_stem
from pipeline.errors import DatasetError
from pipeline.formats.nifti import (
    ANY_LABEL, MAX_VOLUME_BYTES, Volume, check_same_grid, has_orientation, load_label_volume, load_volume, ornts,
)
from pipeline.sources.scans import nifti_scans, scan_id
from pipeline.sources.subject import Subject, SubjectRef
from pipeline.workers import concurrently

SEQUENCES = ("Flair", "T1", "T2")
NAME = re.compile(
    r"^(?:patient[-_ ]?)?(?P<n>\d+)[-_ ](?P<seg>lesion[-_ ]?seg(?:mentation)?[-_ ])?(?P<seq>flair|t1|t2)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Options:
    """The reader's keyword options (``prepare.reader`` in params.yaml), checked by the params schema."""

    sequence: Literal["Flair", "T1", "T2"] = "Flair"  # image and its own lesion mask
    grid_tolerance: float = 0.01  # largest image/mask grid difference (mm or fraction) accepted
    max_volume_bytes: int = MAX_VOLUME_BYTES  # refuse a volume larger than this in memory (float32), from its header
    missing_orientation: str = "PLS"  # axis codes assumed where the header has no orientation (PLS: as stored)


def _orientation(codes: str) -> tuple[str, ...]:
    axes = tuple(str(codes).upper())
    try:
        ornt = ornts.axcodes2ornt(axes)
    except Exception:  # noqa: BLE001  (nibabel raises ValueError or KeyError on odd codes)
        ornt = None
    if len(axes) != 3 or ornt is None or np.isnan(ornt).any() or len(set(ornt[:, 0])) != 3:
        raise DatasetError("prepare.reader.missing_orientation", f"{codes!r} is not three axis codes (one of R/L, "
                                                                 "A/P, S/I each), e.g. PLS or RAS")
    return axes


def _read(path: Path, *, label: bool, missing: tuple[str, ...], max_bytes: int) -> tuple[Volume, bool, bool]:
    """(volume in RAS+, orientation assumed, spacing unknown): files without orientation are read as
    stored and reoriented as if their axes were ``missing``."""
    stored = not has_orientation(path)
    if label:
        vol = load_label_volume(path, allowed_labels=ANY_LABEL, as_stored=stored, max_bytes=max_bytes)
    else:
        vol = load_volume(path, as_stored=stored, max_bytes=max_bytes)
    if not stored:
        return vol, False, False
    zooms = np.sqrt((vol.affine[:3, :3] ** 2).sum(axis=0))
    affine = np.eye(4)
    affine[:3, :3] = 0
    for axis, (target, sign) in enumerate(ornts.axcodes2ornt(missing)):
        affine[int(target), axis] = sign * zooms[axis]
    array, affine = canonical(vol.array, affine)
    return Volume(array, affine, vol.spacing, "".join(missing)), True, bool(np.allclose(zooms, 1.0, atol=0))


def _sequence(sequence: str) -> str:
    for seq in SEQUENCES:
        if str(sequence).lower() == seq.lower():
            return seq
    raise DatasetError("reader.sequence", f"unknown MS sequence {sequence!r}; valid: {', '.join(SEQUENCES)}")


def discover(raw: Path, *, sequence: str = "Flair", grid_tolerance: float = 0.01,
             max_volume_bytes: int = MAX_VOLUME_BYTES, missing_orientation: str = "PLS") -> list[SubjectRef]:
    """One SubjectRef per patient: files ``(image, mask)`` of ``sequence``, sorted by patient number.

    Files are found anywhere under ``raw`` (an extra top folder is fine), ``.nii`` or ``.nii.gz``,
    any case. Raises DatasetError listing every unpaired or duplicated file at once.
    Options used by ``load`` only are accepted here too, so one options dict fits both calls.
    """
    seq = _sequence(sequence)
    raw = Path(raw)
    files = find_nifti(raw)
    found: dict[tuple[int, bool], list[Path]] = defaultdict(list)
    patients: set[int] = set()
    for path in files:
        m = NAME.match(nifti_stem(path) or "")
        if not m:
            continue
        n = int(m["n"])
        patients.add(n)
        if m["seq"].lower() == seq.lower():
            found[(n, bool(m["seg"]))].append(path)
    if not patients:
        seen = ", ".join(p.relative_to(raw).as_posix() for p in files[:5]) or "no NIfTI files at all"
        raise DatasetError(
            raw,
            f"no MS patient volumes found: expected files like Patient-1/1-{seq}.nii and "
            f"Patient-1/1-LesionSeg-{seq}.nii (.nii or .nii.gz) under this folder; found {seen}",
        )
    problems = []
    dups = [ps for ps in found.values() if len(ps) > 1]
    if dups:
        problems.append("duplicates: " + "; ".join(" and ".join(map(str, ps)) for ps in dups))
    no_mask = [str(found[(n, False)][0]) for n in sorted(patients) if found[(n, False)] and not found[(n, True)]]
    no_image = [str(found[(n, True)][0]) for n in sorted(patients) if found[(n, True)] and not found[(n, False)]]
    neither = [f"Patient-{n}" for n in sorted(patients) if not found[(n, False)] and not found[(n, True)]]
    if no_mask:
        problems.append(f"images without a <n>-LesionSeg-{seq} mask: {', '.join(no_mask)}")
    if no_image:
        problems.append(f"masks without a <n>-{seq} image: {', '.join(no_image)}")
    if neither:
        problems.append(f"patients without any {seq} image or mask: {', '.join(neither)}")
    if problems:
        raise DatasetError(raw, "; ".join(problems) + "; fix or remove these files, or pick another sequence")
    refs = [
        SubjectRef(f"Patient-{n}", (str(found[(n, False)][0]), str(found[(n, True)][0])), (("sequence", seq),))
        for n in sorted(patients)
    ]
    return sorted(refs, key=lambda r: natural_key(r.subject_id))


def load(ref: SubjectRef, *, sequence: str | None = None, grid_tolerance: float = 0.01,
         max_volume_bytes: int = MAX_VOLUME_BYTES, missing_orientation: str = "PLS") -> Subject:
    """Read one patient's image and lesion mask in RAS+ canonical order, checking they share a grid
    (spacing and origin within ``grid_tolerance`` of a voxel, see ``pipeline.formats.nifti.check_same_grid``)."""
    seq = _sequence(sequence or ref.option("sequence", "Flair"))
    missing = _orientation(missing_orientation)
    image_path, mask_path = (Path(p) for p in ref.files)
    (image, assumed, unknown), (mask, mask_assumed, _) = concurrently(  # on lent threads, if any
        lambda: _read(image_path, label=False, missing=missing, max_bytes=max_volume_bytes),
        lambda: _read(mask_path, label=True, missing=missing, max_bytes=max_volume_bytes))
    check_same_grid(
        image_path, image.affine, image.array.shape, mask_path, mask.affine, mask.array.shape, tol=grid_tolerance
    )
    return Subject(
        subject_id=ref.subject_id,
        image=image.array,
        mask=mask.array,
        spacing=image.spacing,
        sources=(str(image_path), str(mask_path)),
        modality="MR",
        layout="volume",
        affine=image.affine,
        orientation=image.orientation,
        meta={"sequence": seq, "mask_orientation": mask.orientation,
              "orientation_assumed": int(assumed or mask_assumed), "spacing_unknown": (0, 1, 2) if unknown else ()},
    )


def load_images(path: Path, *, max_volume_bytes: int = MAX_VOLUME_BYTES, missing_orientation: str = "PLS",
                **_: object) -> list[Subject]:
    """Unlabelled scans for inference: a NIfTI file of the trained sequence (or a folder of them), no mask;
    read as ``load`` reads images (a header without orientation gets ``missing_orientation``)."""
    missing = _orientation(missing_orientation)
    path = Path(path)
    files = [path] if path.is_file() else find_nifti(path) if path.is_dir() else []
    if not files:
        return nifti_scans(path, modality="MR")  # raises its one-line error: nothing to read there
    scans = []
    for file in files:
        image, _, unknown = _read(file, label=False, missing=missing, max_bytes=max_volume_bytes)
        scans.append(Subject(scan_id(nifti_stem(file) or file.name), image.array, None, image.spacing, (str(file),),
                             "MR", "volume", affine=image.affine, orientation=image.orientation,
                             meta={"spacing_unknown": (0, 1, 2) if unknown else ()}))
    return scans
