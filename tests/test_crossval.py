"""Cross-validation: the fold sets, the cv aggregate, and one tiny dataset end to end with the real dvc."""

from __future__ import annotations

import csv
import json

import cv2
import pytest

from pipeline.evaluation.crossval import aggregate
from pipeline.learning.predict import load_model
from tests.conftest import dvc, edit_params, run


def test_aggregate_reports_mean_and_sample_std_and_skips_undefined_folds():
    got = aggregate([{"dice": 0.5, "hd95": None, "n_images": 10, "name": "x"},
                     {"dice": 0.7, "hd95": 4.0, "n_images": 12}])
    assert got["folds"] == 2 and "name" not in got
    assert got["dice"] == {"mean": 0.6, "std": 0.141421, "min": 0.5, "max": 0.7}
    assert got["hd95"] == {"mean": 4.0, "std": 0.0, "min": 4.0, "max": 4.0}
    assert aggregate([{"hd95": None}])["hd95"] is None
    with pytest.raises(ValueError, match="no folds"):
        aggregate([])


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cross_validation_of_one_dataset_end_to_end(dvc_repo):
    """Two folds of a 6-subject lasc with 2.5D context: every fold trains on its own subjects, none of
    them test subjects, and cv.json holds the mean and std of the folds' test scores."""
    def tiny(params):
        params["image_size"] = 64
        params["n_jobs"] = 1
        params["cv"] = {"datasets": ["lasc"], "folds": [0, 1]}
        lasc = params["datasets"]["lasc"]
        lasc["synth"]["subjects"] = 6
        lasc["prepare"]["split"]["folds"] = 2
        lasc["prepare"]["context_slices"] = 1
        lasc["augment"]["copies"] = 1
        lasc["train"].update(epochs=1, input_size=32, num_layers=3, base_filters=4, batch_size=4, snapshot_images=1,
                             channels=1)  # the 2.5D set's dataset.json says 3: train takes that
    edit_params(dvc_repo, tiny)
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "cv on"], dvc_repo)
    dvc(dvc_repo, "repro", "cv@lasc")

    prepared = dvc_repo / "data/prepared/lasc"
    splits = json.loads((prepared / "splits.json").read_text())
    test = {s for s, split in splits["subjects"].items() if split == "test"}
    assert len(splits["folds"]) == 2 and test
    first = _rows(prepared / "manifest.csv")[0]
    assert cv2.imread(str(prepared / first["image"]), cv2.IMREAD_UNCHANGED).shape == (64, 64, 3)  # 2.5D
    scores = []
    for k, fold in enumerate(splits["folds"]):
        rows = _rows(dvc_repo / f"data/folds/lasc/{k}/prepared/manifest.csv")
        by_split = {name: {r["subject"] for r in rows if r["split"] == name} for name in ("train", "valid")}
        assert by_split == {"train": set(fold["train"]), "valid": set(fold["val"])}
        assert not test & (by_split["train"] | by_split["valid"])
        assert (dvc_repo / f"data/folds/lasc/{k}/augmented/train/images").is_dir()
        assert (dvc_repo / f"artifacts/lasc/folds/{k}/model.keras").is_file()
        scores.append(json.loads((dvc_repo / f"metrics/lasc/folds/{k}/eval.json").read_text()))
    cv = json.loads((dvc_repo / "metrics/lasc/cv.json").read_text())
    assert cv["folds"] == 2
    assert cv["dice"]["mean"] == pytest.approx(sum(s["dice"] for s in scores) / 2, abs=1e-6)
    assert cv["dice"]["min"] == pytest.approx(min(s["dice"] for s in scores), abs=1e-6)

    assert json.loads((prepared / "dataset.json").read_text())["channels"] == 3
    assert load_model(dvc_repo / "artifacts/lasc/folds/0/model.keras").input_shape[-1] == 3

    shown = json.loads(dvc(dvc_repo, "exp", "show", "--json").stdout)
    assert "metrics/lasc/cv.json" in json.dumps(shown)
    assert "Stage 'cv@lasc' didn't change" in dvc(dvc_repo, "repro", "cv@lasc").stdout
