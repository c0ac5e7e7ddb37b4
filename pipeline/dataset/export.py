"""A prepared dataset's subjects, from their source volumes (not the PNGs), as an nnU-Net v2 raw dataset,
with the project's split as ``splits_final.json``, so nnU-Net can be trained on exactly the same subjects."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pipeline.formats.nifti import save_volume
from pipeline.sources.subject import Subject

FILE_ENDING = ".nii.gz"
# nnU-Net's normalisation per channel name: "CT" uses its HU scheme; 8-bit sources are rescaled to 0..1
CHANNEL_NAME = {"CT": "CT", "MR": "MR", "8bit": "rescale_to_0_1"}


def as_volume(subject: Subject) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    """(image with channels last, mask, RAS+ affine, image and mask axis codes) of a volume or 2D stack.

    A stack of upright slices becomes a volume whose upright display (``slicing.display_stack``,
    axis 2) gives the slices back, with the pixel spacing on X/Y and 1 mm between slices.
    """
    image = subject.image if subject.image.ndim == 4 else subject.image[..., None]
    if subject.layout == "volume":
        mask_orientation = subject.meta.get("mask_orientation") or subject.orientation
        return image, subject.mask, np.asarray(subject.affine, float), subject.orientation, mask_orientation
    row, col = (list(subject.spacing) + [1.0, 1.0])[:2]
    flip = (lambda a: np.ascontiguousarray(a[:, ::-1, ::-1].swapaxes(0, 2)))  # (N, H, W) -> (X=W, Y=H, Z=N)
    channels = np.stack([flip(image[..., c]) for c in range(image.shape[-1])], axis=-1)
    return channels, flip(subject.mask), np.diag([float(col), float(row), 1.0, 1.0]), "RAS", "RAS"


def write_case(subject: Subject, *, images: Path, labels: Path) -> int:
    """``<images>/<id>_000c.nii.gz`` per channel and ``<labels>/<id>.nii.gz``; returns the channel count."""
    image, mask, affine, orientation, mask_orientation = as_volume(subject)
    for c in range(image.shape[-1]):
        save_volume(images / f"{subject.subject_id}_{c:04d}{FILE_ENDING}", image[..., c], affine,
                    orientation=orientation, dtype=np.float32)
    save_volume(labels / f"{subject.subject_id}{FILE_ENDING}", mask, affine, orientation=mask_orientation,
                dtype=np.uint8, intent="label")
    return int(image.shape[-1])


def dataset_json(*, channels: int, modality: str, num_classes: int, training: int, name: str) -> dict:
    """nnU-Net v2's dataset.json: channel names (its normalisation cue), labels, case count, file ending."""
    names = {str(c): CHANNEL_NAME.get(modality, "MR") for c in range(channels)}
    labels = {"background": 0, **{f"class_{k}": k for k in range(1, max(1, num_classes) + 1)}}
    return {"name": name, "channel_names": names, "labels": labels, "numTraining": training,
            "file_ending": FILE_ENDING, "overwrite_image_reader_writer": "NibabelIOWithReorient"}


def splits_final(assignment: Mapping[str, str]) -> list[dict[str, list[str]]]:
    """One fold: the project's train subjects to train on, its valid subjects to validate on."""
    pick = lambda split: sorted(s for s, v in assignment.items() if v == split)  # noqa: E731
    return [{"train": pick("train"), "val": pick("valid")}]


def export_nnunet(out: Path, subjects: Iterable[tuple[Subject, str]], *, num_classes: int, name: str) -> dict:
    """Write ``(subject, split)`` pairs under ``out``: train and valid to imagesTr/labelsTr, test to
    imagesTs/labelsTs; then dataset.json and splits_final.json. Returns the dataset.json written."""
    out = Path(out)
    folders = {kind: out / kind for kind in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    assignment: dict[str, str] = {}
    channels, modality = 1, "MR"
    for subject, split in subjects:
        test = split == "test"
        channels = write_case(subject, images=folders["imagesTs" if test else "imagesTr"],
                              labels=folders["labelsTs" if test else "labelsTr"])
        modality, assignment[subject.subject_id] = subject.modality, split
    training = sum(1 for split in assignment.values() if split != "test")
    meta = dataset_json(channels=channels, modality=modality, num_classes=num_classes, training=training, name=name)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "splits_final.json").write_text(json.dumps(splits_final(assignment), indent=2) + "\n")
    return meta
