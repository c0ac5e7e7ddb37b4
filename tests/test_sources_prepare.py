"""The publishers' facts through the prepare stage (and augment): pinned official test cases, the
publisher's classes kept as several classes, per-subject pairing problems skipped, unknown spacing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.dataset.augment import augment_set
from pipeline.synth import get_synthesizer
from stages import prepare as stage
from tests.conftest import ROOT


def params_file(tmp_path: Path, key: str, **prepare) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 64
    params["datasets"][key]["prepare"].update(prepare)
    if prepare.get("num_classes", 1) > 1:  # several classes train with a softmax head (checked with the params)
        params["datasets"][key]["train"].update(head="softmax", loss="cce_dice_loss")
    path = tmp_path / f"params-{key}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def synth(root: Path, key: str, subjects: int, seed: int = 3) -> Path:
    raw = root / key
    raw.mkdir(parents=True)
    get_synthesizer(key).generate(raw, subjects=subjects, seed=seed)
    return raw


def run(key: str, raw: Path, out: Path, params: Path) -> dict:
    stage.main(["--dataset", key, "--raw", str(raw), "--out", str(out), "--params", str(params), "--n-jobs", "1"])
    return json.loads((out / "stats.json").read_text())


@pytest.fixture(scope="module")
def aisd_raw(tmp_path_factory) -> Path:
    return synth(tmp_path_factory.mktemp("raw"), "aisd", subjects=5)


def test_aisd_official_test_case_lands_in_test_and_stats_say_it_was_pinned(aisd_raw, tmp_path):
    stats = run("aisd", aisd_raw, tmp_path / "out", params_file(tmp_path, "aisd"))
    assert stats["split_assignment"]["0073410"] == "test"
    assert stats["pinned_splits"] == {"0073410": "test"}
    assert stats["integrity"]["reader_counts"]["label_4_only_slices"] == 5
    assert stats["integrity"]["reader_counts"]["missing_masks"] == 1
    off = run("aisd", aisd_raw, tmp_path / "off", params_file(tmp_path, "aisd", reader={"pin_test_cases": False}))
    assert off["pinned_splits"] == {}


def test_aisd_publisher_classes_refused_as_one_class_then_kept_with_num_classes_5(aisd_raw, tmp_path):
    """Multi-class: labels above 1 pass the reader, prepare checks them against num_classes and writes
    class indices; augment keeps every class (nearest neighbour only)."""
    with pytest.raises(SystemExit, match=r"prepare@aisd: .*mask\.zip::mask/.*mask holds labels \[2, 3, 4, 5\]|"
                                         r"prepare@aisd: .*mask holds labels \[.*\].*set prepare\.num_classes"):
        run("aisd", aisd_raw, tmp_path / "bad", params_file(tmp_path, "aisd", reader={"multiclass": True}))
    out = tmp_path / "multi"
    run("aisd", aisd_raw, out, params_file(tmp_path, "aisd", reader={"multiclass": True}, num_classes=5))
    values = set()
    for path in sorted((out / "train" / "masks").glob("*.png")):
        values |= set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)).tolist())
    assert values <= set(range(6)) and len(values - {0}) >= 2  # class indices, not 0/255
    augmented = tmp_path / "aug"
    augmented.mkdir()
    augment_set(out, augmented, specs=[{"name": "Rotate", "p": 1.0, "limit": [20, 20]},
                                       {"name": "ElasticTransform", "p": 1.0, "alpha": 50, "sigma": 6}],
                seed=1, copies=1)
    after = set()
    for path in sorted((augmented / "train" / "masks").glob("*_aug1.png")):
        after |= set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)).tolist())
    assert after <= values and len(after - {0}) >= 2


def test_pancreas_pairing_problems_are_skipped_before_splitting_and_spacing_unknown_recorded(tmp_path):
    raw = synth(tmp_path / "raw", "pancreas", subjects=3, seed=4)
    params = params_file(tmp_path, "pancreas", on_error="skip")
    stats = run("pancreas", raw, tmp_path / "out", params)
    assert sorted(stats["skipped_subjects"]) == ["PANCREAS_0004", "PANCREAS_0005"]
    assert set(stats["split_assignment"]) == {"PANCREAS_0001", "PANCREAS_0002", "PANCREAS_0003"}
    geometry = json.loads((tmp_path / "out" / "geometry.json").read_text())
    assert geometry["PANCREAS_0002"]["spacing_unknown"] == [2] and geometry["PANCREAS_0001"]["spacing_unknown"] == []
    with pytest.raises(SystemExit, match=r"prepare@pancreas: .*PANCREAS_0004: patient has no label0004\.nii\.gz"):
        run("pancreas", raw, tmp_path / "fail", params_file(tmp_path, "pancreas", on_error="fail"))
    assert not (tmp_path / "fail").exists()
