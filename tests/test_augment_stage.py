"""stages.augment on tiny prepared sets written here, and augment@faz in a real `dvc repro`."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.dataset.prepared import DatasetInfo, read_info, write_info
from stages import augment
from tests.conftest import dvc, edit_params

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"train": 5, "valid": 2, "test": 2}


def write_prepared(root: Path, *, multiclass: bool = False) -> Path:
    """A prepared set: 64..128 px grey pairs with a bright blob as mask, manifest.csv, stats.json, extra file."""
    rng = np.random.default_rng(0)
    rows = []
    for split, n in SPLITS.items():
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(n):
            size = (64, 96, 128)[i % 3]
            image = rng.integers(0, 60, (size, size)).astype(np.uint8)
            centre = (int(rng.integers(size // 3, 2 * size // 3)), int(rng.integers(size // 3, 2 * size // 3)))
            cv2.circle(image, centre, size // 6, 200, -1)
            mask = np.where(image > 128, 1 if multiclass else 255, 0).astype(np.uint8)
            if multiclass:
                mask[: size // 2][mask[: size // 2] > 0] = 2
            stem = f"{split}{i % 2}_{i}"
            cv2.imwrite(str(root / split / "images" / f"{stem}.png"), image)
            cv2.imwrite(str(root / split / "masks" / f"{stem}.png"), mask)
            rows.append({"split": split, "subject": f"{split}{i % 2}", "image": f"{split}/images/{stem}.png",
                         "mask": f"{split}/masks/{stem}.png"})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "stats.json").write_text(json.dumps({"pairs": len(rows)}))
    write_info(root, DatasetInfo(num_classes=2 if multiclass else 1, channels=1, image_size=128, slice_axis=2,
                                 mask_encoding="class_index" if multiclass else "binary_0_255"))
    (root / "README.txt").write_text("extra file\n")
    return root


def write_params(path: Path, **augment_options) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["faz"]["augment"].update(augment_options)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(tmp_path: Path, src: Path, name: str, *, n_jobs: int = 1, reports: bool = False, **options) -> Path:
    out = tmp_path / name
    argv = ["--dataset", "faz", "--params", str(write_params(tmp_path / f"{name}.yaml", **options)),
            "--in", str(src), "--out", str(out), "--n-jobs", str(n_jobs)]
    if reports:
        argv += ["--reports", str(tmp_path / f"{name}-reports")]
    augment.main(argv)
    return out


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    return write_prepared(tmp_path / "prepared")


def test_writes_a_complete_set(tmp_path, prepared):
    out = run(tmp_path, prepared, "out", copies=2, reports=True)
    before, after = digest(prepared), digest(out)
    for rel, sha in before.items():
        if not rel.startswith("train/"):
            assert after[rel] == sha, f"{rel} changed"  # valid, test and top-level files byte-identical
        else:
            assert after[rel] == sha  # originals kept unchanged
    train = sorted(p.name for p in (out / "train" / "images").iterdir())
    assert len(train) == SPLITS["train"] * 3
    assert sorted(p.name for p in (out / "train" / "masks").iterdir()) == train
    assert "train0_0_aug1.png" in train and "train0_0_aug2.png" in train
    for path in (out / "train" / "masks").iterdir():
        assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))) <= {0, 255}
    with open(out / "augment_manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SPLITS["train"] * 3
    row = next(r for r in rows if r["image"] == "train/images/train0_2_aug2.png")
    assert row["source_image"] == "train/images/train0_2.png" and row["subject"] == "train0"
    assert row["copy"] == "2" and int(row["seed"]) > 0
    assert all("name" in t for t in json.loads(row["applied"]))
    assert (tmp_path / "out-reports" / "samples.png").stat().st_size > 1000
    assert read_info(out) == read_info(prepared)  # dataset.json travels with the set


def test_a_folder_without_dataset_json_is_refused_before_writing(tmp_path, prepared):
    (prepared / "dataset.json").unlink()
    with pytest.raises(SystemExit, match=r"augment@faz: .*dataset\.json: not found"):
        run(tmp_path, prepared, "out")
    assert not (tmp_path / "out").exists()


def test_same_bytes_across_runs_and_workers(tmp_path, prepared):
    one = digest(run(tmp_path, prepared, "a", n_jobs=1, copies=2))
    assert one == digest(run(tmp_path, prepared, "b", n_jobs=1, copies=2))
    assert one == digest(run(tmp_path, prepared, "c", n_jobs=2, copies=2))
    assert one != digest(run(tmp_path, prepared, "d", n_jobs=1, copies=2, seed=7))


def test_multiclass_masks_keep_their_labels(tmp_path):
    src = write_prepared(tmp_path / "multi", multiclass=True)
    out = run(tmp_path, src, "out", copies=3)
    seen = set()
    for path in (out / "train" / "masks").glob("*_aug*.png"):
        labels = set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)).tolist())
        assert labels <= {0, 1, 2}
        seen |= labels
    assert seen == {0, 1, 2}  # both classes still there (an all-background output would pass the line above)


def test_without_originals(tmp_path, prepared):
    out = run(tmp_path, prepared, "out", copies=1, keep_original=False)
    assert all("_aug1" in p.name for p in (out / "train" / "images").iterdir())
    assert len(list((out / "train" / "images").iterdir())) == SPLITS["train"]


def test_bad_spec_fails_before_writing(tmp_path, prepared):
    message = r"^augment@faz: \S*\.yaml: datasets\.faz\.augment\.transforms\[0\]: Rotat: unknown transform; did you mean Rotate"
    with pytest.raises(SystemExit, match=message) as err:
        run(tmp_path, prepared, "out", transforms=[{"name": "Rotat", "p": 0.5}])
    assert err.value.code == 2  # a params problem
    assert not (tmp_path / "out").exists()


def test_unpaired_train_image_is_named(tmp_path, prepared):
    (prepared / "train" / "masks" / "train1_1.png").unlink()
    with pytest.raises(SystemExit, match=r"(?s)augment@faz: .*1 image\(s\) without a mask: train1_1"):
        run(tmp_path, prepared, "out")


def test_transform_that_resizes_is_refused(tmp_path, prepared):
    with pytest.raises(SystemExit, match="augmented mask has shape"):
        run(tmp_path, prepared, "out", transforms=[{"name": "Resize", "height": 32, "width": 32, "p": 1.0}])


@pytest.mark.slow
def test_augment_param_change_reruns_augment_not_prepare(dvc_repo):
    dvc(dvc_repo, "repro", "augment@faz")
    assert any((dvc_repo / "data" / "augmented" / "faz" / "train" / "images").glob("*_aug1.png"))
    edit_params(dvc_repo, lambda p: p["datasets"]["faz"]["augment"].update(copies=2))
    status = dvc(dvc_repo, "status", "augment@faz").stdout
    assert "augment@faz" in status and "prepare@faz" not in status
    out = dvc(dvc_repo, "repro", "augment@faz").stdout
    assert "Running stage 'augment@faz'" in out
    assert "Running stage 'prepare@faz'" not in out and "Running stage 'synth@faz'" not in out
    assert any((dvc_repo / "data" / "augmented" / "faz" / "train" / "images").glob("*_aug2.png"))
