"""Cross-validation: the fold sets, the cv aggregate, and one tiny dataset end to end with the real dvc."""

from __future__ import annotations

import csv
import json

import cv2
import pytest

from pipeline.evaluation.crossval import aggregate
from pipeline.learning.predict import load_model
from tests.conftest import dvc, edit_params, run
from tests.test_experiments import _revs


def test_aggregate_reports_mean_and_sample_std_and_skips_undefined_folds():
    got = aggregate([{"dice": 0.5, "hd95": None, "n_images": 10, "n_subjects": 2, "name": "x"},
                     {"dice": 0.7, "hd95": 4.0, "n_images": 12, "n_subjects": 2}])
    assert got["folds"] == 2 and "name" not in got and got["n_subjects"] == 2
    assert got["n_images"] == {"mean": 11.0, "std": 1.414214}
    assert got["dice"] == {"mean": 0.6, "std": 0.141421}  # mean and std only: each key is an exp show column
    assert got["hd95"] == {"mean": 4.0, "std": 0.0}
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
        lasc["prepare"].setdefault("split", {})["folds"] = 2
        lasc["prepare"]["context_slices"] = 1
        lasc["augment"]["copies"] = 1
        lasc["train"].update(epochs=1, input_size=32, num_layers=3, base_filters=4, batch_size=4, snapshot_images=1,
                             channels=1)  # the 2.5D set's dataset.json says 3: train takes that
    edit_params(dvc_repo, tiny)
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "cv on"], dvc_repo)
    dvc(dvc_repo, "exp", "run", "-n", "cv", "cv@lasc")

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
    assert all(list(s) == ["dice_volume", "hd95_mm"] for s in scores)  # each fold: the two headline metrics
    cv = json.loads((dvc_repo / "metrics/lasc/cv.json").read_text())
    assert list(cv) == ["folds", "dice_volume", "hd95_mm"] and cv["folds"] == 2
    assert cv["dice_volume"]["mean"] == pytest.approx(sum(s["dice_volume"] for s in scores) / 2, abs=1e-6)

    assert json.loads((prepared / "dataset.json").read_text())["channels"] == 3
    assert load_model(dvc_repo / "artifacts/lasc/folds/0/model.keras").input_shape[-1] == 3

    shown = json.loads(dvc(dvc_repo, "exp", "show", "--json", "--no-pager").stdout)
    revs = dict(_revs(shown))
    shown_cv = revs["cv"]["metrics"]["metrics/lasc/cv.json"]["data"]  # the experiment's, not only the workspace's
    assert shown_cv["folds"] == 2 and shown_cv["dice_volume"] == cv["dice_volume"]
    assert "Stage 'cv@lasc' didn't change" in dvc(dvc_repo, "repro", "cv@lasc").stdout


def _fake_prepared(root, plan):
    """A prepared set's manifest, splits.json and dataset.json, with two pairs per subject (bytes only)."""
    from pipeline.dataset.prepared import pair_paths, slice_stem, write_manifest
    from pipeline.dataset.split import write_splits
    rows = []
    for subject, split in plan.subjects.items():
        for index in (0, 1):
            image, mask = pair_paths(split, slice_stem(subject, index))
            for path in (image, mask):
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(f"{path}".encode())
            rows.append({"split": split, "subject": subject, "image": image, "mask": mask})
    write_manifest(root / "manifest.csv", rows)
    write_splits(root / "splits.json", plan)
    (root / "dataset.json").write_text('{"channels": 3}\n')


def test_fold_set_rotates_train_and_valid_and_leaves_test_out(tmp_path):
    from pipeline.dataset.folds import write_fold
    from pipeline.dataset.split import plan_splits
    from pipeline.errors import DatasetError
    plan = plan_splits([f"s{i}" for i in range(9)], {"train": 0.7, "valid": 0.15, "test": 0.15}, seed=3, folds=3)
    _fake_prepared(tmp_path / "prepared", plan)
    for k in range(3):
        out = tmp_path / f"fold{k}"
        counts = write_fold(tmp_path / "prepared", out, fold=k)
        rows = _rows(out / "manifest.csv")
        valid = {r["subject"] for r in rows if r["split"] == "valid"}
        assert valid == {s for s, f in plan.folds.items() if f == k} and counts["valid"] == 2 * len(valid)
        assert {r["subject"] for r in rows} == set(plan.folds) and not (out / "test").exists()
        for r in rows:  # the same bytes under the fold's split
            assert (out / r["image"]).read_bytes().decode().split("/", 1)[1] == r["image"].split("/", 1)[1]
        assert (out / "dataset.json").read_text() == '{"channels": 3}\n'
    with pytest.raises(DatasetError, match="fold 3 does not exist; the split has 3 folds .*cv.folds"):
        write_fold(tmp_path / "prepared", tmp_path / "fold3", fold=3)


def test_cv_stage_needs_every_fold_and_ignores_leftovers(tmp_path, capsys):
    from pipeline.dataset.split import plan_splits, write_splits
    from stages import cv as stage
    plan = plan_splits([f"s{i}" for i in range(9)], {"train": 0.7, "valid": 0.15, "test": 0.15}, seed=3, folds=2)
    (tmp_path / "prepared").mkdir()
    write_splits(tmp_path / "prepared" / "splits.json", plan)
    for k, dice in ((0, 0.8), (1, 0.9), (2, 0.1)):  # fold 2: left over from an earlier 3-fold run
        (tmp_path / "folds" / str(k)).mkdir(parents=True)
        (tmp_path / "folds" / str(k) / "eval.json").write_text(json.dumps({"dice_volume": dice, "hd95_px": None}))
    argv = ["--dataset", "x", "--prepared", str(tmp_path / "prepared"), "--folds", str(tmp_path / "folds"),
            "--out", str(tmp_path / "cv.json")]
    stage.main(argv)
    assert json.loads((tmp_path / "cv.json").read_text()) == {"folds": 2, "dice_volume": {"mean": 0.85, "std": 0.070711},
                                                               "hd95_px": None}
    assert "cv@x: 2 folds, test volume dice 0.850 ± 0.071 (sample std)" in capsys.readouterr().out
    (tmp_path / "folds" / "1" / "eval.json").unlink()
    with pytest.raises(SystemExit) as err:
        stage.main(argv)
    assert err.value.code == 1 and "1 of 2 folds have no eval.json; list every fold 0..1 in cv.folds" in capsys.readouterr().err
