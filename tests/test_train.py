"""Training: a tiny UNet learns, its .keras checkpoint reloads exactly, the stage writes its outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from models.losses import get_loss
from models.metrics import default_metrics
from models.training import make_optimizer, snapshot_panel
from pipeline.reports.palette import MASK_PANEL_COLOURS
from models.unet import build_unet
from pipeline.dataset.prepared import DatasetInfo, write_info
from pipeline.learning.tfdata import make_dataset
from tests.conftest import ROOT, run

TINY = dict(
    seed=0, input_size=32, channels=1, head="sigmoid", base_filters=4, base_kernels=[3, 3],
    num_layers=3, dilation=[1, 1], dropout_rate=0.0, batch_norm=False, epochs=2, batch_size=4,
    optimizer="adam", learning_rate=0.01, clipvalue=None, loss="bce_dice_loss",
    mixed_precision=False, reduce_lr={"factor": 0.5, "patience": 1}, early_stopping_patience=3,
    snapshot_images=2,
)


def write_discs(split_dir: Path, n: int, *, size: int = 48, seed: int = 0) -> None:
    """Bright discs on noise, with their masks (0/255)."""
    rng = np.random.default_rng(seed)
    (split_dir / "images").mkdir(parents=True)
    (split_dir / "masks").mkdir(parents=True)
    for k in range(n):
        mask = np.zeros((size, size), np.uint8)
        centre = tuple(int(c) for c in rng.integers(size // 4, 3 * size // 4, 2))
        cv2.circle(mask, centre, int(rng.integers(size // 8, size // 4)), 255, -1)
        image = np.clip(rng.normal(60, 15, (size, size)) + (mask > 0) * 120, 0, 255).astype(np.uint8)
        cv2.imwrite(str(split_dir / "images" / f"s{k}_{k:03d}.png"), image)
        cv2.imwrite(str(split_dir / "masks" / f"s{k}_{k:03d}.png"), mask)


def tiny_model(num_classes: int = 1) -> keras.Model:
    model = build_unet(32, 1, num_classes, 4, (3, 3), 3, (1, 1), 0.0)
    loss = get_loss("bce_dice_loss" if num_classes == 1 else "cce_dice_loss", outputs=num_classes)
    model.compile(optimizer=make_optimizer("adam", learning_rate=0.01), loss=loss,
                  metrics=default_metrics())
    return model


def test_tiny_model_lowers_its_loss(tmp_path):
    keras.utils.set_random_seed(0)
    write_discs(tmp_path, 8)
    ds = make_dataset(tmp_path, input_size=32, channels=1, batch_size=4, shuffle=True, seed=0)
    model = tiny_model()
    before = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    model.fit(ds, epochs=8, verbose=0, shuffle=False)
    after = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before


@pytest.mark.parametrize("num_classes", [1, 3])
def test_checkpoint_reload_predicts_identically(tmp_path, num_classes):
    keras.utils.set_random_seed(1)
    model = tiny_model(num_classes)
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    y = np.eye(num_classes, dtype=np.float32)[np.random.default_rng(1).integers(0, num_classes, (2, 32, 32))]
    if num_classes == 1:
        y = (x > 0.5).astype(np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")  # custom losses/metrics found by name
    np.testing.assert_array_equal(np.asarray(again.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0)))
    assert again.evaluate(x, y, verbose=0, return_dict=True).keys() >= {"loss", "dice", "iou", "dice_coef"}


def test_snapshot_panel_layout():
    image = np.full((4, 4, 1), 0.5, np.float32)
    truth = np.zeros((4, 4), np.uint8)
    truth[0] = 1
    panel = snapshot_panel(image, truth, np.ones((4, 4), np.uint8), colours=MASK_PANEL_COLOURS)
    assert panel.shape == (4, 12, 3) and panel.dtype == np.uint8
    assert (panel[:, :4] == 128).all()
    assert (panel[0, 4:8] == 255).all() and (panel[1:, 4:8] == 0).all()
    assert (panel[:, 8:] == 255).all()


@pytest.mark.slow
@pytest.mark.parametrize("head, loss, outputs", [("sigmoid", "bce_dice_loss", 1), ("softmax", "cce_dice_loss", 2)])
def test_train_stage_writes_model_metrics_and_snapshots(tmp_path, head, loss, outputs):
    for split, n in (("train", 8), ("valid", 3)):
        write_discs(tmp_path / "data" / split, n, seed=len(split))
    write_info(tmp_path / "data", DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255",
                                              image_size=48, slice_axis=2))
    params = {"seed": 42, "datasets": {"demo": {"raw": "unused", "train": {**TINY, "head": head, "loss": loss}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "artifacts" / "demo"
    proc = run([sys.executable, "-m", "stages.train", "--dataset", "demo", "--params",
                str(tmp_path / "params.yaml"), "--data", str(tmp_path / "data"), "--out", str(out)], ROOT)
    assert "train@demo: 2 epochs" in proc.stdout
    model = keras.saving.load_model(out / "model.keras")
    assert model.output_shape == (None, 32, 32, outputs)  # the head from params, the classes from dataset.json
    assert model.count_params() == build_unet(32, 1, outputs, 4, (3, 3), 3, (1, 1), 0.0).count_params()
    served = tf.saved_model.load(str(out / "saved_model"))  # the serving export holds the same weights
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-6)
    summary = json.loads((out / "live" / "metrics.json").read_text())
    assert summary["step"] == 1 and {"dice", "iou", "dice_coef", "loss"} <= summary["eval"].keys()
    assert summary["best"]["step"] in (0, 1) and 0 <= summary["best"]["dice"] <= 1
    headline = json.loads((out / "train.json").read_text())
    assert headline == {"best_epoch": summary["best"]["step"] + 1, "val_dice": round(summary["best"]["dice"], 6),
                        "val_loss": round(summary["best"]["loss"], 6)}
    curves = {p.relative_to(out / "live" / "plots" / "metrics").as_posix()
              for p in (out / "live" / "plots" / "metrics").rglob("*.tsv")}
    assert {"train/loss.tsv", "eval/loss.tsv", "eval/dice.tsv", "eval/iou.tsv"} <= curves
    snaps = sorted(p.relative_to(out / "live" / "plots" / "images").as_posix()
                   for p in (out / "live" / "plots" / "images").rglob("*.png"))
    assert snaps == ["s0_000/0.png", "s0_000/1.png", "s2_002/0.png", "s2_002/1.png"]
    assert cv2.imread(str(out / "live" / "plots" / "images" / snaps[0])).shape == (32, 96, 3)


@pytest.mark.slow
def test_dvc_repro_train_writes_dvclive_outputs(dvc_repo):
    from tests.conftest import dvc, edit_params

    def tiny(params):
        params["datasets"]["faz"]["synth"]["subjects"] = 6
        params["datasets"]["faz"]["train"].update(TINY)

    edit_params(dvc_repo, tiny)
    dvc(dvc_repo, "repro", "train@faz")
    live = dvc_repo / "artifacts" / "faz" / "live"
    assert (dvc_repo / "artifacts" / "faz" / "model.keras").is_file()
    assert json.loads((live / "metrics.json").read_text())["step"] == 1
    assert list((live / "plots" / "images").rglob("1.png"))
    assert json.loads((dvc_repo / "artifacts/faz/train.json").read_text())["best_epoch"] in (1, 2)
    shown = dvc(dvc_repo, "metrics", "show", "--json").stdout
    # train.json and dvclive's full summary are outputs, not exp show columns (eval.json's two are)
    assert "train.json" not in shown and "live/metrics.json" not in shown
    assert "modified" not in dvc(dvc_repo, "status", "train@faz").stdout  # outputs as declared


def test_train_never_writes_into_its_data(tmp_path):
    """--out inside --data (or the data itself) is refused before any file is written or deleted."""
    from stages import train

    for split, n in (("train", 4), ("valid", 2)):
        write_discs(tmp_path / "data" / split, n, seed=len(split))
    write_info(tmp_path / "data", DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255",
                                              image_size=48, slice_axis=2))
    (tmp_path / "data" / "model.keras").write_bytes(b"the user's own model")
    params = {"seed": 42, "datasets": {"demo": {"raw": "unused", "train": {**TINY, "head": "sigmoid", "loss": "bce_dice_loss"}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    for out in (tmp_path / "data", tmp_path / "data" / "valid" / "model"):
        with pytest.raises(SystemExit) as err:
            train.main(["--dataset", "demo", "--params", str(tmp_path / "params.yaml"),
                        "--data", str(tmp_path / "data"), "--out", str(out)])
        assert err.value.code == 2 and "input" in str(err.value), err.value
        assert {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()} == before
