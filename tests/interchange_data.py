"""Small MSD and nnU-Net v2 raw datasets written with nibabel, for the generic readers' tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (24, 20, 6)


def _affine(spacing=(1.5, 1.5, 3.0)) -> np.ndarray:
    return np.diag([*spacing, 1.0])


def _case(rng: np.random.Generator, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Channels of noise with a bright box, and labels 1 (box) and 2 (its core) on slices 1..4."""
    label = np.zeros(SHAPE, np.uint8)
    label[6:18, 5:15, 1:5] = 1
    label[9:14, 8:12, 2:4] = 2
    image = rng.normal(100, 10, (*SHAPE, channels)).astype(np.float32)
    for c in range(channels):
        image[..., c] += (label > 0) * 80 * (c + 1)
    return image, label


def write_nnunet(root: Path, *, cases: int = 5, channels: int = 2, names=("T2", "ADC"), seed: int = 0) -> Path:
    """An nnU-Net v2 raw dataset: imagesTr/<case>_000c.nii.gz per channel, labelsTr, dataset.json."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(cases):
        image, label = _case(rng, channels)
        for c in range(channels):
            nib.save(nib.Nifti1Image(image[..., c], _affine()), root / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(label, _affine()), root / "labelsTr" / f"case_{i:03d}.nii.gz")
    meta = {"channel_names": {str(c): names[c] for c in range(channels)},
            "labels": {"background": 0, "zone": 1, "core": 2}, "numTraining": cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def write_msd(root: Path, *, cases: int = 5, seed: int = 1) -> Path:
    """An MSD BraTS-style task: 4D images (four channels last), labels 0..2, dataset.json."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(cases):
        image, label = _case(rng, 4)
        nib.save(nib.Nifti1Image(image, _affine()), root / "imagesTr" / f"BRATS_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(label, _affine()), root / "labelsTr" / f"BRATS_{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/BRATS_{i:03d}.nii.gz", "label": f"./labelsTr/BRATS_{i:03d}.nii.gz"})
    meta = {"name": "BRATS", "tensorImageSize": "4D",
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "tumour"},
            "numTraining": cases, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root
