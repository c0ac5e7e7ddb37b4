"""Generic MSD / nnU-Net v2 readers from a params block, and the nnU-Net v2 export round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import yaml

from pipeline.dataset.split import split_warnings
from pipeline.errors import DatasetError, UsageError
from pipeline.sources import get_reader
from pipeline.synth import get_synthesizer
from stages import check as check_stage
from stages import export as export_stage
from stages import prepare as prepare_stage
from tests.conftest import ROOT
from tests.interchange_data import write_msd, write_nnunet


def block(raw: Path, *, reader: str | None, reader_options: dict, **prepare) -> dict:
    """A params-only dataset block: raw, reader, and the settings that differ from the defaults."""
    classes = prepare.get("num_classes", 1)
    train = {"head": "softmax", "loss": "cce_dice_loss"} if classes > 1 else {}
    return {"raw": str(raw), **({"reader": reader} if reader else {}), "synth": {},
            "prepare": {"reader": reader_options, "intensity": {"mode": "auto"}, **prepare},
            "augment": {}, "train": train, "evaluate": {}}


def byod_params(tmp_path: Path, raw: Path, *, reader: str | None, reader_options: dict, **prepare) -> Path:
    """params.yaml with the project's defaults and one dataset ``byod``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = {"byod": block(raw, reader=reader, reader_options=reader_options, **prepare)}
    params["image_size"] = 32
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def prepare(raw: Path, out: Path, params: Path, *extra: str) -> None:
    prepare_stage.main(["--dataset", "byod", "--raw", str(raw), "--out", str(out), "--params", str(params),
                        "--n-jobs", "1", *extra])


def png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_nnunet_reader_selects_a_channel_and_maps_labels(tmp_path):
    raw = write_nnunet(tmp_path / "Dataset001_Toy")
    reader = get_reader("nnunet")
    refs = reader.discover(raw, channels=[1], labels={1: 1, 2: 1})
    assert [r.subject_id for r in refs] == [f"case_{i:03d}" for i in range(5)]
    assert refs[0].files[0].endswith("case_000_0001.nii.gz")  # the ADC channel's own file
    subject = reader.load(refs[0], channels=[1], labels={1: 1, 2: 1})
    source = nib.load(refs[0].files[0]).get_fdata()
    np.testing.assert_allclose(subject.image, source, rtol=1e-6)  # diagonal affine: already RAS
    assert subject.modality == "MR" and set(np.unique(subject.mask)) == {0, 1}
    assert reader.num_classes(raw) == 2 and reader.num_classes(raw, labels={1: 1, 2: 1}) == 1


def test_nnunet_ct_channel_gets_the_ct_window(tmp_path, capsys):
    raw = write_nnunet(tmp_path / "ct", channels=1, names=("CT",))
    assert get_reader("nnunet").modality(raw) == "CT"
    out = tmp_path / "prepared"
    with pytest.raises(SystemExit) as err:  # the json lists two foreground labels, params say one class
        prepare(raw, out, byod_params(tmp_path, raw, reader="nnunet", reader_options={}))
    assert err.value.code == 2 and "gives 2 foreground class(es); set num_classes: 2" in str(err.value)
    prepare(raw, out, byod_params(tmp_path, raw, reader="nnunet", reader_options={}, num_classes=2))
    info = json.loads((out / "dataset.json").read_text())
    assert info["num_classes"] == 2 and info["channels"] == 1
    image = png(next((out / "train" / "images").iterdir()))
    # window 40/400 HU maps -160..240 to 0..255: background noise around 100 HU lands near 166
    # (percentiles, the MR default, would stretch it to about 60); the zeros are the letterbox
    assert 150 < np.median(image[image > 0]) < 180


def test_msd_reader_stacks_three_channels_into_the_png(tmp_path):
    raw = write_msd(tmp_path / "Task01_BrainTumour")
    out = tmp_path / "prepared"
    params = byod_params(tmp_path, raw, reader="msd", reader_options={"channels": [0, 1, 3], "labels": {1: 1, 2: 2}},
                         channels=3, num_classes=2)
    prepare(raw, out, params, "--reports", str(tmp_path / "reports"))
    info = json.loads((out / "dataset.json").read_text())
    assert info["channels"] == 3 and info["num_classes"] == 2
    card = png(tmp_path / "reports" / "card.png")  # the dataset card: counts, histograms, montage
    assert card.shape[0] >= 800 and card.shape[1] >= 1200 and card.std() > 10
    image = png(next((out / "train" / "images").iterdir()))
    assert image.shape == (32, 32, 3)
    b, g, r = (image[..., i].astype(int) for i in range(3))
    assert not np.array_equal(r, b)  # three different channels, not grey replicated


def test_msd_stacked_channels_need_three_png_channels(tmp_path):
    raw = write_msd(tmp_path / "Task01_BrainTumour")
    params = byod_params(tmp_path, raw, reader="msd", reader_options={"channels": [0, 1, 2], "labels": {1: 1, 2: 1}},
                         channels=1)
    with pytest.raises(SystemExit) as err:
        prepare(raw, tmp_path / "o", params)
    assert err.value.code == 1 and "prepare.channels: 3" in str(err.value)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("options, expected", [
    ({"channels": [0, 1]}, "one channel index (grey) or three"),
    ({"labels": {"x": 1}}, "source label -> class"),
    ({"modality": "PET"}, "expected CT or MR"),
])
def test_bad_reader_options_are_usage_errors(tmp_path, options, expected):
    """The readers' own check (the schema checks types; these are the rules it cannot express)."""
    raw = write_nnunet(tmp_path / "nn")
    with pytest.raises(UsageError, match=re.escape(expected)):
        get_reader("nnunet").discover(raw, **options)


def test_missing_channel_file_and_unknown_channel_are_named(tmp_path):
    raw = write_nnunet(tmp_path / "nn")
    (raw / "imagesTr" / "case_002_0001.nii.gz").unlink()
    with pytest.raises(DatasetError, match="case_002: case_002_0001.nii.gz"):
        get_reader("nnunet").discover(raw, channels=[1])
    with pytest.raises(DatasetError, match=r"channel\(s\) \[4\] not in"):
        get_reader("nnunet").discover(raw, channels=[4])
    msd = write_msd(tmp_path / "msd")
    with pytest.raises(DatasetError, match="use reader: msd"):
        get_reader("nnunet").discover(msd)


def test_unknown_reader_is_a_usage_error(tmp_path):
    raw = write_nnunet(tmp_path / "nn")
    with pytest.raises(SystemExit) as err:
        prepare(raw, tmp_path / "o", byod_params(tmp_path, raw, reader="nnUNet", reader_options={}))
    assert err.value.code == 2 and "datasets.byod.reader" in str(err.value)


def test_split_warnings_name_empty_and_single_subject_splits():
    lines = split_warnings({"a": "train", "b": "train", "c": "valid"})
    assert any("'valid' holds a single subject" in line for line in lines)
    assert any("'test' is empty" in line for line in lines)
    assert split_warnings({s: split for s, split in zip("abcdef", ["train"] * 2 + ["valid"] * 2 + ["test"] * 2)}) == []


def test_prepare_warns_about_a_single_subject_split(tmp_path, capsys):
    raw = write_nnunet(tmp_path / "nn", cases=4)
    prepare(raw, tmp_path / "o", byod_params(tmp_path, raw, reader="nnunet", reader_options={"labels": {1: 1, 2: 1}}))
    assert "warning: split 'valid' holds a single subject" in capsys.readouterr().err


def test_export_round_trips_through_the_nnunet_reader_and_check(tmp_path, capsys):
    lasc = tmp_path / "lasc"
    lasc.mkdir()
    get_synthesizer("lasc").generate(lasc, subjects=6, seed=5)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 32
    params["datasets"]["lasc"]["raw"] = str(lasc)
    params["datasets"]["exported"] = block(tmp_path / "unused", reader="nnunet", reader_options={})
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    prepared, out = tmp_path / "prepared", tmp_path / "Dataset501_Lasc"
    prepare_stage.main(["--dataset", "lasc", "--raw", str(lasc), "--out", str(prepared), "--params", str(params_path),
                        "--n-jobs", "1"])
    export_stage.main(["--dataset", "lasc", "--prepared", str(prepared), "--out", str(out), "--params", str(params_path)])

    assignment = json.loads((prepared / "stats.json").read_text())["split_assignment"]
    folds = json.loads((out / "splits_final.json").read_text())
    assert folds == [{"train": sorted(s for s, v in assignment.items() if v == "train"),
                      "val": sorted(s for s, v in assignment.items() if v == "valid")}]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "MR"} and meta["labels"] == {"background": 0, "class_1": 1}
    assert meta["numTraining"] == len(folds[0]["train"]) + len(folds[0]["val"])
    tests = sorted(p.name for p in (out / "imagesTs").iterdir())
    assert tests == sorted(f"{s}_0000.nii.gz" for s, v in assignment.items() if v == "test")

    # read back through the generic reader: same voxels, same label, same grid as the source
    back = get_reader("nnunet")
    refs = back.discover(out)
    assert {r.subject_id for r in refs} == set(folds[0]["train"]) | set(folds[0]["val"])
    lasc_reader = get_reader("lasc")
    original = {r.subject_id: r for r in lasc_reader.discover(lasc)}
    for ref in refs:
        a, b = back.load(ref), lasc_reader.load(original[ref.subject_id])
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
        assert a.orientation == b.orientation

    capsys.readouterr()
    # the project's own integrity check on the exported folder (exits 1 on any problem)
    check_stage.main(["--dataset", "exported", "--raw", str(out), "--params", str(params_path), "--n-jobs", "1"])
    assert f"{len(refs)} loaded, 0 problem(s)" in capsys.readouterr().out

    # an existing folder that is not an export is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as err:
        export_stage.main(["--dataset", "lasc", "--prepared", str(prepared), "--out", str(other),
                           "--params", str(params_path)])
    assert err.value.code == 2 and (other / "keep.txt").read_text() == "x"


def test_overlay_legend_shows_each_error_colour():
    from pipeline.reports.overlay import error_legend, error_overlay, with_legend
    from pipeline.reports.palette import ERROR_COLOURS

    image = np.full((64, 200), 90, np.uint8)
    pred, truth = np.zeros((64, 200), np.uint8), np.zeros((64, 200), np.uint8)
    pred[10:20, 10:20] = truth[10:20, 15:25] = 1
    out = with_legend(error_overlay(image, pred, truth), error_legend())
    assert out.shape[0] > 64 and out.shape[1] == 200
    strip = out[64:].reshape(-1, 3)
    for colour in ERROR_COLOURS.values():
        assert (strip == colour).all(axis=1).any(), f"swatch {colour} missing from the legend"


def test_training_shows_steps_and_eta_only_in_a_terminal(tmp_path):
    import os

    from stages.train import fit_verbosity

    leader, follower = os.openpty()
    with open(follower, "w") as terminal, open(tmp_path / "log.txt", "w") as log:
        assert fit_verbosity(terminal) == 1  # keras' progress bar: step k/n and the ETA of the epoch
        assert fit_verbosity(log) == 2       # under dvc repro / CI: one line per epoch
    os.close(leader)


def test_config_checks_a_params_only_block_against_its_generic_reader(tmp_path, capsys):
    from stages import config

    raw = write_nnunet(tmp_path / "nn")
    good = byod_params(tmp_path, raw, reader="nnunet", reader_options={"channels": [1], "labels": {1: 1, 2: 1}})
    config.main(["--params", str(good)])
    assert "ok (1 dataset(s): byod)" in capsys.readouterr().out
    bad = byod_params(tmp_path, raw, reader="nnunet", reader_options={"chanels": [1]})
    with pytest.raises(SystemExit) as err:
        config.main(["--params", str(bad)])
    assert err.value.code == 2 and "did you mean channels?" in capsys.readouterr().err
