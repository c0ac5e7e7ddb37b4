"""Pinned splits end to end: prepare writes splits.json, and prepare with split.file reproduces it byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.synth import get_synthesizer
from stages import prepare as stage
from tests.conftest import ROOT, dvc, edit_params, run
from tests.test_prepare import tree


@pytest.fixture(scope="module")
def lasc6(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw") / "lasc"
    raw.mkdir()
    get_synthesizer("lasc").generate(raw, subjects=6, seed=5)
    return raw


def params_file(tmp_path: Path, **split) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 32
    params["datasets"]["lasc"]["prepare"].setdefault("split", {}).update(split)
    path = tmp_path / f"params-{len(list(tmp_path.glob('params-*')))}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def prepare(raw: Path, out: Path, params: Path) -> None:
    stage.main(["--dataset", "lasc", "--raw", str(raw), "--out", str(out), "--params", str(params), "--n-jobs", "1"])


def test_prepare_with_its_own_split_file_is_byte_identical(lasc6, tmp_path):
    prepare(lasc6, tmp_path / "a", params_file(tmp_path, folds=2))
    written = json.loads((tmp_path / "a" / "splits.json").read_text())
    assert sorted(written["subjects"].values()) == ["test", "train", "train", "train", "train", "valid"]
    assert [len(f["val"]) for f in written["folds"]] == [3, 2] or [len(f["val"]) for f in written["folds"]] == [2, 3]
    pinned = tmp_path / "pinned.json"
    shutil.copyfile(tmp_path / "a" / "splits.json", pinned)
    # another seed and other ratios would draw another split: the file overrides them
    other = params_file(tmp_path, folds=2, seed=7, train=0.5, valid=0.25, test=0.25)
    prepare(lasc6, tmp_path / "free", other)
    assert json.loads((tmp_path / "free" / "splits.json").read_text())["subjects"] != written["subjects"]
    prepare(lasc6, tmp_path / "b", params_file(tmp_path, folds=2, seed=7, train=0.5, valid=0.25, test=0.25,
                                                file=str(pinned)))
    assert tree(tmp_path / "b") == tree(tmp_path / "a")


def test_split_file_problems_name_the_file_and_the_ids(lasc6, tmp_path):
    prepare(lasc6, tmp_path / "a", params_file(tmp_path))
    doc = json.loads((tmp_path / "a" / "splits.json").read_text())
    doc["subjects"]["la_999"] = "test"
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match=rf"^prepare@lasc: {pinned}: 1 subject\(s\) in the split file are not in "
                                         r"the data: la_999; remove them"):
        prepare(lasc6, tmp_path / "b", params_file(tmp_path, file=str(pinned)))
    assert not (tmp_path / "b").exists()
    gone = sorted(doc["subjects"])[0]
    del doc["subjects"][gone], doc["subjects"]["la_999"]
    doc["folds"] = []  # (a hand-made file without folds)
    pinned.write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match=rf"not in the split file: {gone}; add them"):
        prepare(lasc6, tmp_path / "b", params_file(tmp_path, file=str(pinned), new_subjects="fail"))
    prepare(lasc6, tmp_path / "b", params_file(tmp_path, file=str(pinned), new_subjects="train"))
    assert json.loads((tmp_path / "b" / "splits.json").read_text())["subjects"][gone] == "train"
    with pytest.raises(SystemExit, match="lies in the output folder"):
        prepare(lasc6, tmp_path / "a", params_file(tmp_path, file=str(tmp_path / "a" / "splits.json")))


@pytest.mark.slow
def test_dvc_pins_a_split_and_reruns_prepare_when_the_file_changes(dvc_repo):
    def small(params):
        params["image_size"] = 32
        params["datasets"]["lasc"]["synth"]["subjects"] = 6
    edit_params(dvc_repo, small)
    dvc(dvc_repo, "repro", "prepare@lasc")
    prepared = dvc_repo / "data/prepared/lasc"
    first = tree(prepared)
    shutil.copyfile(prepared / "splits.json", dvc_repo / "splits/lasc.json")
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-qm", "pin lasc"], dvc_repo)
    dvc(dvc_repo, "exp", "run", "prepare@lasc", "-S", "++datasets.lasc.prepare.split.file=splits/lasc.json",
        "-S", "++datasets.lasc.prepare.split.seed=7")
    assert tree(prepared) == first  # another seed, same pinned subjects, same bytes

    doc = json.loads((dvc_repo / "splits/lasc.json").read_text())
    moved = next(s for s, split in sorted(doc["subjects"].items()) if split == "train")
    doc["subjects"][moved] = "test"
    doc["folds"] = []
    (dvc_repo / "splits/lasc.json").write_text(json.dumps(doc))
    out = dvc(dvc_repo, "repro", "prepare@lasc").stdout
    assert "Running stage 'prepare@lasc'" in out
    assert json.loads((prepared / "stats.json").read_text())["split_assignment"][moved] == "test"
    assert f"test/images/{moved}_" in (prepared / "manifest.csv").read_text()
