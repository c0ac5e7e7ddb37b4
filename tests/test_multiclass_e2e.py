"""Two foreground classes end to end on tiny data: a reader passes labels 0/1/2 on, prepare writes class
indices (num_classes 2 in dataset.json), augment keeps both classes, train builds a softmax head with 3
outputs, evaluate scores each class and infer writes index masks and volumes with labels 0..2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import yaml

from pipeline.synth import get_synthesizer
from stages import augment, evaluate, infer, prepare
from tests.conftest import ROOT
from tests.test_train import TINY


def two_class_lasc(raw: Path) -> None:
    """The LASC stand-in with the atrium split in two classes (its right half labelled 2)."""
    get_synthesizer("lasc").generate(raw, subjects=3, seed=5)
    for path in sorted(raw.rglob("labelsTr/la_*.nii*")):
        if path.name.startswith("."):
            continue
        img = nib.load(path, mmap=False)
        data = np.asarray(img.dataobj).astype(np.uint8)
        xs = np.nonzero(data)[0]
        data[(data == 1) & (np.arange(data.shape[0])[:, None, None] > np.median(xs))] = 2
        nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


def labels_in(folder: Path) -> set[int]:
    found: set[int] = set()
    for path in sorted(folder.glob("*.png")):
        found |= set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)).tolist())
    return found


@pytest.mark.slow
def test_two_foreground_classes_through_prepare_augment_train_evaluate_infer(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    two_class_lasc(raw)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 32
    block = params["datasets"]["lasc"]
    block["prepare"]["num_classes"] = 2
    block["augment"]["copies"] = 1
    block["train"] = {**block.get("train", {}), **TINY, "head": "softmax", "loss": "cce_dice_loss", "epochs": 1}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    common = ["--dataset", "lasc", "--params", str(path)]

    prepared, augmented = tmp_path / "prepared", tmp_path / "augmented"
    prepare.main([*common, "--raw", str(raw), "--out", str(prepared), "--n-jobs", "1"])
    assert json.loads((prepared / "dataset.json").read_text())["num_classes"] == 2
    assert labels_in(prepared / "train" / "masks") == {0, 1, 2}  # class indices, not 0/255
    augment.main([*common, "--in", str(prepared), "--out", str(augmented), "--n-jobs", "1"])
    assert labels_in(augmented / "train" / "masks") == {0, 1, 2}

    artifacts = tmp_path / "artifacts"
    subprocess.run([sys.executable, "-m", "stages.train", *common, "--data", str(augmented), "--out", str(artifacts)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    import keras

    model = keras.saving.load_model(artifacts / "model.keras")
    assert model.output_shape[-1] == 3  # softmax over background and the two classes

    metrics = tmp_path / "metrics"
    evaluate.main([*common, "--data", str(augmented), "--model", str(artifacts / "model.keras"), "--out",
                   str(metrics), "--reports", str(tmp_path / "reports")])
    details = json.loads((metrics / "details.json").read_text())
    assert {"dice_image_1", "dice_image_2", "dice_volume_1", "dice_volume_2"} <= details.keys()

    inferred = tmp_path / "infer"
    infer.main([*common, "--images", str(augmented / "test" / "images"), "--model", str(artifacts / "model.keras"),
                "--out", str(inferred), "--prepared", str(augmented)])
    assert labels_in(inferred / "masks") <= {0, 1, 2}
    volumes = sorted((inferred / "volumes").glob("*.nii*"))
    assert volumes and all(set(np.unique(np.asarray(nib.load(v).dataobj)).tolist()) <= {0, 1, 2} for v in volumes)
