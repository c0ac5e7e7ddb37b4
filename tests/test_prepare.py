"""prepare_subject on hand-made subjects, and the prepare stage on a real synthetic lasc source."""

from __future__ import annotations

import csv
import subprocess
import sys
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.errors import DatasetError
from pipeline.dataset.prepare import DROP_EMPTY, keep_empty_slice, prepare_subject
from pipeline.dataset.prepared import check_set, read_info
from pipeline.sources.subject import Subject
from pipeline.synth import get_synthesizer
from stages import prepare as stage
from tests.conftest import ROOT, dvc, edit_params

OPTIONS = dict(size=32, letterbox=False, intensity={"mode": "none"}, axis=2, channels=1,
               min_foreground_pixels=1, keep_empty_fraction=0.0, seed=42)


def volume_subject(image, mask, *, modality="8bit", subject_id="case_01") -> Subject:
    return Subject(subject_id, np.asarray(image, np.float32), np.asarray(mask, np.uint8), (1.0, 1.0, 2.0),
                   ("raw/case_01.nii.gz", "raw/case_01_seg.nii.gz"), modality, "volume", affine=np.eye(4))


def decode(png: bytes, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), flags)


def test_empty_filter_and_kept_negatives_counts():
    mask = np.zeros((16, 16, 40), np.uint8)
    mask[4:8, 4:8, 10:13] = 1
    mask[0, 0, 20] = 1  # one pixel: below a threshold of 2
    subject = volume_subject(np.indices(mask.shape).sum(axis=0) % 7.0, mask)  # not constant: see test_bad_inputs
    strict = prepare_subject(subject, **{**OPTIONS, "min_foreground_pixels": 2})
    assert [r.slice_index for r in strict.records] == [10, 11, 12]
    assert strict.dropped == {DROP_EMPTY: 37} and strict.kept_empty == 0 and strict.slices_seen == 40
    some = prepare_subject(subject, **{**OPTIONS, "min_foreground_pixels": 2, "keep_empty_fraction": 0.3})
    expected = [i for i in range(40) if i not in (10, 11, 12) and keep_empty_slice(42, "case_01", i, 0.3)]
    assert 3 <= len(expected) <= 25  # a fraction, not none or all
    assert some.kept_empty == len(expected) and some.dropped == {DROP_EMPTY: 37 - len(expected)}
    assert sorted(r.slice_index for r in some.records if r.empty_kept) == expected
    every = prepare_subject(subject, **{**OPTIONS, "keep_empty_fraction": 1.0})
    assert len(every.records) == 40 and every.dropped == {DROP_EMPTY: 0}


def test_upright_marker_and_mask_encoding():
    image = np.zeros((20, 24, 3), np.float32)
    image[:, 23, :] = 200  # anterior edge (max Y) of an RAS+ volume
    mask = np.zeros(image.shape, np.uint8)
    mask[19, 10:14, :] = 1  # patient's right edge (max X)
    result = prepare_subject(volume_subject(image, mask), **{**OPTIONS, "size": 48})
    img, msk = decode(result.records[0].image_png), decode(result.records[0].mask_png)
    assert img.shape == msk.shape == (48, 48)
    assert img[0].min() == 200 and img[4:].max() == 0  # anterior at the top
    assert set(np.unique(msk).tolist()) == {0, 255} and np.nonzero(msk)[1].max() < 3  # right on the left


def test_ct_window_and_per_volume_percentiles_reach_the_pngs():
    hu = np.full((8, 8, 4), -1000.0, np.float32)
    hu[2:6, 2:6, :] = 40.0
    mask = np.ones(hu.shape, np.uint8)
    ct = prepare_subject(volume_subject(hu, mask, modality="CT"),
                         **{**OPTIONS, "size": 8, "intensity": {"mode": "window", "center": 40, "width": 400}})
    assert {int(decode(r.image_png)[4, 4]) for r in ct.records} == {128}
    mr = np.random.default_rng(3).uniform(50, 500, (8, 8, 4)).astype(np.float32)
    mr[..., 3] *= 0.3
    mr[4, 4, :] = 300.0
    out = prepare_subject(volume_subject(mr, mask, modality="MR"),
                          **{**OPTIONS, "size": 8, "intensity": {"mode": "percentile", "low": 1, "high": 99}})
    greys = [int(decode(r.image_png)[3, 3]) for r in out.records]  # (4, 4) RAS shows at (3, 3) upright
    assert len(set(greys)) == 1 and 0 < greys[0] < 255


def test_three_channel_images_and_letterbox():
    mask = np.ones((10, 20, 1), np.uint8)  # X=10, Y=20: upright 20 rows x 10 columns
    image = np.full(mask.shape, 90.0)
    image[0, 0, 0] = 91.0  # a constant image under a mask is refused (test_bad_inputs)
    out = prepare_subject(volume_subject(image, mask),
                          **{**OPTIONS, "channels": 3, "letterbox": True})
    img = decode(out.records[0].image_png)
    assert img.shape == (32, 32, 3) and img[:, :8].max() == 0 and img[:, 8:24].min() == 90
    assert out.placement.scaled == (32, 16)


def test_bad_subjects_raise_dataset_errors():
    with pytest.raises(DatasetError, match=r"case_01_seg.nii.gz: mask holds labels \[2\]; expected 0..1"):
        prepare_subject(volume_subject(np.zeros((4, 4, 2)), np.full((4, 4, 2), 2)), **OPTIONS)
    with pytest.raises(DatasetError, match="case_01.nii.gz: intensity mode 'none' expects 8-bit"):
        prepare_subject(volume_subject(np.full((4, 4, 2), -1000.0), np.ones((4, 4, 2))), **OPTIONS)
    with pytest.raises(DatasetError, match="must be equal"):
        prepare_subject(volume_subject(np.zeros((4, 4, 2)), np.ones((4, 4, 3))), **OPTIONS)


def test_slices_encoded_on_threads_give_the_same_records_in_slice_order():
    from pipeline.workers import thread_budget

    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 1500, (40, 56, 30)).astype(np.float32)
    mask = (rng.random(hu.shape) < 0.3).astype(np.uint8)
    mask[..., ::4] = 0  # some slices dropped: the kept indices are not 0..n
    subject = volume_subject(hu, mask)
    options = {**OPTIONS, "letterbox": True, "intensity": {"mode": "window", "center": 40, "width": 400}}
    one = prepare_subject(subject, **options)
    with thread_budget(3):
        three = prepare_subject(subject, **options)
    assert [r.slice_index for r in three.records] == [i for i in range(30) if i % 4]
    assert [(r.image_png, r.mask_png) for r in three.records] == [(r.image_png, r.mask_png) for r in one.records]
    assert three.placement == one.placement


# --- the stage, on a real synthetic lasc source ------------------------------------------------

@pytest.fixture(scope="module")
def lasc_raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw") / "lasc"
    raw.mkdir()
    get_synthesizer("lasc").generate(raw, subjects=4, seed=5)
    return raw


def params_file(tmp_path: Path, **prepare) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 64
    params["datasets"]["lasc"]["prepare"].update(prepare)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_stage(raw, out, params, *extra) -> None:
    stage.main(["--dataset", "lasc", "--raw", str(raw), "--out", str(out), "--params", str(params), *extra])


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stage_outputs_are_byte_identical_across_runs_and_workers(lasc_raw, tmp_path):
    params = params_file(tmp_path, keep_empty_fraction=0.1)
    run_stage(lasc_raw, tmp_path / "a", params, "--n-jobs", "1", "--reports", str(tmp_path / "ra"))
    run_stage(lasc_raw, tmp_path / "b", params, "--n-jobs", "2", "--reports", str(tmp_path / "rb"))
    run_stage(lasc_raw, tmp_path / "a2", params, "--n-jobs", "1")
    a = tree(tmp_path / "a")
    assert a == tree(tmp_path / "b") == tree(tmp_path / "a2")
    assert tree(tmp_path / "ra") == tree(tmp_path / "rb") and set(tree(tmp_path / "ra")) == {"samples.png", "split_counts.png", ".medseg-dvc-output", "card.png"}

    rows = list(csv.DictReader(open(tmp_path / "a" / "manifest.csv")))
    stats = json.loads(a["stats.json"])
    split_of = {}
    for row in rows:  # no subject in two splits, and every row points at a written pair
        assert split_of.setdefault(row["subject"], row["split"]) == row["split"]
        assert row["image"] in a and row["mask"] in a and row["image"].startswith(row["split"] + "/images/")
    assert split_of.items() <= stats["split_assignment"].items()
    assert sum(stats["pairs"].values()) == len(rows) and stats["kept_empty"] > 0
    assert stats["slices_seen"] == len(rows) + stats["dropped"][DROP_EMPTY]
    assert set(np.unique(cv2.imread(str(tmp_path / "a" / rows[0]["mask"]), cv2.IMREAD_UNCHANGED))) <= {0, 255}
    geometry = json.loads(a["geometry.json"])
    assert set(geometry) == set(split_of) and all(len(g["affine"]) == 4 for g in geometry.values())
    # the stored orientation of each source label file, under the one name stats.json uses too
    assert {g["mask_orientation"] for g in geometry.values()} <= {"LPS", "RAS", "LAS"}
    assert all("orientation" not in g for g in geometry.values())
    assert {r["subject"]: r["mask_orientation"] for r in stats["integrity"]["subjects"]} == \
        {k: g["mask_orientation"] for k, g in geometry.items()}
    info = read_info(tmp_path / "a")  # the set's own facts, read by augment/train/evaluate/infer
    assert (info.num_classes, info.channels, info.mask_encoding, info.image_size, info.slice_axis) == \
        (1, 1, "binary_0_255", 64, 2)
    assert check_set(tmp_path / "a") == []
    integrity = stats["integrity"]  # the check stage's report, for the subjects prepare read
    assert integrity["ok"] and integrity["subjects_loaded"] == len(split_of) and integrity["labels"] == [0, 1]
    assert {r["subject"] for r in integrity["subjects"]} == set(split_of)
    assert integrity["spacing"]["min"] <= integrity["spacing"]["median"] <= integrity["spacing"]["max"]
    assert all(r["percentiles"]["0.5"] <= r["percentiles"]["99.5"] for r in integrity["subjects"])


@pytest.fixture
def corrupt_raw(lasc_raw, tmp_path) -> Path:
    import shutil
    raw = tmp_path / "corrupt"
    shutil.copytree(lasc_raw, raw)
    victim = sorted(p for p in raw.rglob("imagesTr/la_*.nii*") if not p.name.startswith("."))[1]
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated download
    return raw


def test_on_error_fail_stops_with_file_and_problem(corrupt_raw, tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"^prepare@lasc: .*imagesTr/la_\d+\.nii: .*(truncated|corrupt)") as err:
        run_stage(corrupt_raw, tmp_path / "out", params_file(tmp_path), "--n-jobs", "2")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-out-*"))  # nothing half-written


def test_on_error_skip_records_the_subject_and_goes_on(corrupt_raw, tmp_path):
    run_stage(corrupt_raw, tmp_path / "out", params_file(tmp_path, on_error="skip"), "--n-jobs", "1")
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    (bad, reason), = stats["skipped_subjects"].items()
    assert ".nii" in reason and sum(stats["subjects"].values()) == 3
    assert bad not in (tmp_path / "out" / "manifest.csv").read_text()


def test_bad_params_give_one_line_errors(lasc_raw, tmp_path):
    with pytest.raises(SystemExit, match=r"^prepare@lasc: \S*params.yaml: datasets\.lasc\.prepare\.split: "
                                         r"train \+ valid \+ test must be 1") as err:
        run_stage(lasc_raw, tmp_path / "o", params_file(tmp_path, split={"train": 0.5, "valid": 0.1, "test": 0.1}))
    assert err.value.code == 2  # a params problem, not a data one
    with pytest.raises(SystemExit, match=r"^prepare@lasc: \S*params.yaml: datasets\.lasc\.prepare\.intensity\.mode: "
                                         r"input should be 'none', ") as err:
        run_stage(lasc_raw, tmp_path / "o", params_file(tmp_path, intensity={"mode": "zscore"}))
    assert err.value.code == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_dvc_repro_reruns_only_the_changed_dataset(dvc_repo):
    def small(params):
        params["image_size"] = 64
        for key in ("lasc", "ms"):
            params["datasets"][key]["synth"]["subjects"] = 3
    edit_params(dvc_repo, small)
    dvc(dvc_repo, "repro", "prepare@lasc", "prepare@ms")
    assert (dvc_repo / "data/prepared/ms/stats.json").is_file()
    assert (dvc_repo / "reports/lasc/prepare/samples.png").is_file()
    edit_params(dvc_repo, lambda p: p["datasets"]["ms"]["prepare"].update(keep_empty_fraction=0.5))
    out = dvc(dvc_repo, "repro", "prepare@lasc", "prepare@ms").stdout
    assert "Running stage 'prepare@ms'" in out and "Running stage 'prepare@lasc'" not in out
    assert "Stage 'prepare@lasc' didn't change" in out
    assert json.loads((dvc_repo / "data/prepared/ms/stats.json").read_text())["kept_empty"] > 0


def test_test_split_keeps_every_slice_and_the_manifest_marks_the_empty_ones(lasc_raw, tmp_path):
    run_stage(lasc_raw, tmp_path / "a", params_file(tmp_path), "--n-jobs", "1")
    rows = list(csv.DictReader(open(tmp_path / "a" / "manifest.csv")))
    geometry = json.loads((tmp_path / "a" / "geometry.json").read_text())
    test = [r for r in rows if r["split"] == "test"]
    assert test and {r["empty_kept"] for r in test} == {"0", "1"}
    assert all((r["empty_kept"] == "1") == (r["foreground_pixels"] == "0") for r in rows)
    for subject in {r["subject"] for r in test}:  # every slice of a test volume, in order
        depth = geometry[subject]["shape"][geometry[subject]["axis"]]
        assert sorted(int(r["slice_index"]) for r in test if r["subject"] == subject) == list(range(depth))
    assert all(r["empty_kept"] == "0" for r in rows if r["split"] != "test")  # keep_empty_fraction 0 there
    run_stage(lasc_raw, tmp_path / "b", params_file(tmp_path, empty_filter_splits=["train", "valid", "test"]),
              "--n-jobs", "1")
    filtered = list(csv.DictReader(open(tmp_path / "b" / "manifest.csv")))
    assert all(r["empty_kept"] == "0" for r in filtered) and len(filtered) < len(rows)


def test_target_spacing_gives_every_pixel_the_same_size():
    image, mask = np.full((16, 24, 3), 100, np.float32), np.zeros((16, 24, 3), np.uint8)
    image[0, 0, :] = 0  # not a constant image (prepare refuses those)
    mask[4:12, 6:18, :] = 1
    subject = Subject("case_01", image, mask, (2.0, 1.0, 3.0), ("raw/a.nii.gz",), "8bit", "volume", affine=np.eye(4))
    result = prepare_subject(subject, **{**OPTIONS, "size": 48, "target_spacing": 1.0})
    # upright slices are 24 rows (y, 1 mm) x 16 columns (x, 2 mm): 24 x 32 pixels of 1 mm, centred
    assert result.placement.scaled == (24, 32) and result.placement.offset == (12, 8)
    assert result.spacing == (1.0, 2.0) and result.pixel_spacing == (1.0, 1.0)
    img, msk = decode(result.records[0].image_png), decode(result.records[0].mask_png)
    assert img[20:30, 16:32].min() == 100 and img[:12].max() == 0 and msk.sum() == 12 * 16 * 255
    stretched = prepare_subject(subject, **{**OPTIONS, "size": 48})
    assert stretched.pixel_spacing == pytest.approx((0.5, 2 / 3))
    stack = Subject("s", np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.uint8), (1.0, 1.0), ("x.png",),
                    "8bit", "stack")
    with pytest.raises(DatasetError, match="gives none"):
        prepare_subject(stack, **{**OPTIONS, "target_spacing": 1.0, "keep_empty_fraction": 1.0})


def test_two_worker_command_prints_only_its_own_lines(lasc_raw, tmp_path):
    """Workers re-run the stage's module (as __mp_main__) and start from a server preloading it: no
    runpy warning, traceback or other stray line may reach the user's terminal."""
    proc = subprocess.run([sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(lasc_raw),
                           "--out", str(tmp_path / "out"), "--params", str(params_file(tmp_path)), "--n-jobs", "2"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [part.strip() for line in proc.stderr.splitlines() for part in line.split("\r") if part.strip()]
    assert lines and all(line.startswith("prepare@lasc:") for line in lines), lines
    assert proc.stdout.startswith("prepare@lasc:") and "pairs" in proc.stdout
