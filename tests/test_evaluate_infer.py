"""evaluate and infer stages on a tiny prepared set written here, with tiny Keras models."""

from __future__ import annotations

import csv
import json

import cv2
import keras
import nibabel as nib
import numpy as np
import pytest
import yaml

from models.losses import bce_dice_loss
from models.unet import build_unet
from pipeline.dataset.prepared import DatasetInfo, write_info
from stages import evaluate, infer

SIZE = 40
AFFINE = [[-0.9, 0.0, 0.0, 20.0], [0.0, 0.9, 0.0, -5.0], [0.0, 0.0, 3.0, 7.5], [0.0, 0.0, 0.0, 1.0]]


def _square(top, left, size):
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[top:top + size, left:left + size] = 255
    return m


@pytest.fixture
def prepared(tmp_path):
    """test/ split: subject 'vol' (3 slices of a volume, one empty) and 'flat' (2 slices of a 2D stack)."""
    root = tmp_path / "prepared"
    masks = {"vol_0001": _square(4, 4, 10), "vol_0002": _square(6, 8, 12),
             "vol_0003": np.zeros((SIZE, SIZE), np.uint8),
             "flat_0000": _square(20, 20, 8), "flat_0001": _square(2, 24, 14)}
    rows = []
    for stem, mask in masks.items():
        for kind in ("images", "masks"):
            (root / "test" / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "test" / kind / f"{stem}.png"), mask)  # image = mask: a perfect model exists
        subject, index = stem.split("_")
        rows.append({"split": "test", "subject": subject, "image": f"test/images/{stem}.png",
                     "mask": f"test/masks/{stem}.png", "slice_index": int(index)})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    placement = {"original": [SIZE, SIZE], "scaled": [SIZE, SIZE], "offset": [0, 0], "size": SIZE}
    geometry = {
        "vol": {"split": "test", "layout": "volume", "shape": [SIZE, SIZE, 5], "axis": 2, "affine": AFFINE,
                "placement": placement, "slices": {str(i): f"vol_{i:04d}.png" for i in (1, 2, 3)}},
        "flat": {"split": "test", "layout": "stack", "shape": [2, SIZE, SIZE], "axis": 0, "affine": None,
                 "placement": placement, "slices": {"0": "flat_0000.png", "1": "flat_0001.png"}},
    }
    (root / "geometry.json").write_text(json.dumps(geometry))
    write_info(root, _info(1))
    return root


def _info(num_classes):
    return DatasetInfo(num_classes=num_classes, channels=1, image_size=SIZE, slice_axis=2,
                       mask_encoding="binary_0_255" if num_classes == 1 else "class_index")


def _params(tmp_path, *, input_size, overlays=2, head="sigmoid"):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"tiny": {"raw": "unused",
        "train": {"input_size": input_size, "channels": 1, "head": head, "num_layers": 1, "batch_size": 2,
                  "loss": "bce_dice_loss" if head == "sigmoid" else "cce_dice_loss"},
        "evaluate": {"threshold": 0.5, "overlays": overlays}}}}))
    return path


def _identity_model(tmp_path):
    """Predicts the image itself: with image == mask every score is perfect."""
    inp = keras.Input((SIZE, SIZE, 1))
    out = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")(inp)
    model = keras.Model(inp, out)
    model.compile(loss="binary_crossentropy")
    path = tmp_path / "identity.keras"
    model.save(path)
    return path


def _tiny_unet(tmp_path, prepared):
    keras.utils.set_random_seed(0)
    model = build_unet(16, 1, 1, 4, (3, 3), 2, (1, 1), 0.0)
    model.compile(optimizer="adam", loss=bce_dice_loss)
    x = np.stack([cv2.resize(cv2.imread(str(p), 0), (16, 16)) for p in sorted((prepared / "test/images").glob("*.png"))])
    x = x[..., None].astype("float32") / 255
    model.fit(x, (x > 0.5).astype("float32"), epochs=2, verbose=0)
    path = tmp_path / "unet.keras"
    model.save(path)
    return path


def _run_evaluate(tmp_path, prepared, model, params):
    out, reports = tmp_path / "metrics", tmp_path / "reports"
    evaluate.main(["--dataset", "tiny", "--params", str(params), "--data", str(prepared), "--model", str(model),
                   "--out", str(out), "--reports", str(reports)])
    return out, reports


def test_evaluate_perfect_model_scores_exactly(tmp_path, prepared):
    out, reports = _run_evaluate(tmp_path, prepared, _identity_model(tmp_path), _params(tmp_path, input_size=SIZE))
    result = json.loads((out / "eval.json").read_text())
    details = json.loads((out / "details.json").read_text())
    assert list(result) == ["dice_volume", "hd95_px"]  # the headline first, unit in the name: exp show's columns
    assert result["dice_volume"] == details["dice_image"] == 1.0 and result["hd95_px"] == details["msd_px"] == 0.0
    assert details["dice_seeds_style"] == pytest.approx(1.0) and details["dice_seeds_style_bg"] == pytest.approx(1.0)
    assert details["precision_pixels"] == details["recall_pixels"] == 1.0 and details["loss"] is not None
    assert details["n_images"] == 5 and details["n_subjects"] == 2 and details["n_images_scored"] == 4
    assert details["n_empty_truth_images"] == 1 and details["n_empty_truth_images_with_prediction"] == 0
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == sorted(["vol_0001", "vol_0002", "vol_0003", "flat_0000", "flat_0001"])
    assert {r["subject"] for r in rows} == {"vol", "flat"}
    assert next(r for r in rows if r["image"] == "vol_0003")["empty_empty"] == "1.0"
    assert len(list((reports / "overlays").glob("*.png"))) == 2


def test_evaluate_tiny_trained_model_writes_keys_and_csv(tmp_path, prepared):
    out, _ = _run_evaluate(tmp_path, prepared, _tiny_unet(tmp_path, prepared), _params(tmp_path, input_size=16))
    result = json.loads((out / "eval.json").read_text())
    details = json.loads((out / "details.json").read_text())
    assert set(result) == {"dice_volume", "hd95_px"}
    assert {"msd_px", "dice_image", "dice_seeds_style", "dice_seeds_style_bg"} <= details.keys()
    assert 0.0 <= result["dice_volume"] <= 1.0 and details["loss"] > 0
    with open(out / "per_image.csv") as f:
        header = next(csv.reader(f))
    assert header[:4] == ["image", "subject", "dice", "iou"]
    with open(out / "per_subject.csv") as f:
        assert next(csv.reader(f))[:5] == ["subject", "slices", "dice_volume", "hd95_px", "msd_px"]


def test_infer_writes_valid_masks_pictures_and_aligned_volume(tmp_path, prepared):
    """The identity model predicts each test mask exactly, so the rebuilt volume must hold exactly the
    foreground of the volume's slices (a tiny trained UNet may predict nothing, and an empty
    volume would pass every check below)."""
    out = tmp_path / "infer"
    infer.main(["--dataset", "tiny", "--params", str(_params(tmp_path, input_size=SIZE)),
                "--model", str(_identity_model(tmp_path)),
                "--images", str(prepared / "test/images"), "--out", str(out), "--prepared", str(prepared)])
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 5
    for path in masks:
        m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert m.shape == (SIZE, SIZE) and m.dtype == np.uint8
        assert set(np.unique(m).tolist()) <= {0, 255}
    assert len(list((out / "colour").glob("*.png"))) == len(list((out / "overlays").glob("*.png"))) == 5
    montage = cv2.imread(str(out / "montage.png"))
    assert montage.shape[1] > montage.shape[0] / 2  # image | ground truth | prediction columns
    vol = nib.load(str(out / "volumes" / "vol.nii.gz"))
    assert np.allclose(vol.affine, AFFINE) and vol.shape == (SIZE, SIZE, 5)
    data = np.asarray(vol.dataobj)
    assert set(np.unique(data).tolist()) == {0, 1} and not data[..., [0, 4]].any()
    assert (data[..., 1].sum(), data[..., 2].sum(), data[..., 3].sum()) == (10 * 10, 12 * 12, 0)  # each on its slice
    assert not (out / "volumes" / "flat.nii.gz").exists()


def test_infer_any_folder_without_masks_or_geometry(tmp_path, prepared):
    folder = tmp_path / "loose"
    folder.mkdir()
    for p in sorted((prepared / "test/images").glob("*.png"))[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "infer"
    infer.main(["--dataset", "tiny", "--params", str(_params(tmp_path, input_size=SIZE)),
                "--model", str(_identity_model(tmp_path)), "--images", str(folder), "--out", str(out)])
    assert len(list((out / "masks").glob("*.png"))) == 2 and (out / "montage.png").is_file()
    assert not (out / "volumes").exists()
    # identity model: predicted mask == the image written as a mask
    p = sorted(folder.glob("*.png"))[0]
    assert np.array_equal(cv2.imread(str(out / "masks" / p.name), 0), cv2.imread(str(p), 0))


def test_infer_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(SystemExit, match=r"^infer@tiny: .*none: no \.png images found") as err:
        infer.main(["--dataset", "tiny", "--params", str(_params(tmp_path, input_size=SIZE)), "--model", "x",
                    "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert err.value.code == 1  # a data problem


def test_multiclass_evaluate_and_infer(tmp_path):
    """Three classes stored as indices: per-class Dice in details.json, infer masks keep index labels."""
    root = tmp_path / "mc"
    for kind in ("images", "masks"):
        (root / "test" / kind).mkdir(parents=True)
    for i in range(3):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[2 + i:12, 2:12] = 1
        mask[20:30, 20 + i:34] = 2
        cv2.imwrite(str(root / "test/images" / f"s{i}_000{i}.png"), mask * 100)
        cv2.imwrite(str(root / "test/masks" / f"s{i}_000{i}.png"), mask)
    write_info(root, _info(2))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"datasets": {"tiny": {"raw": "unused",
        "train": {"input_size": 16, "channels": 1, "head": "softmax", "loss": "cce_dice_loss", "num_layers": 1,
                  "batch_size": 2},
        "evaluate": {"threshold": 0.5, "overlays": 1}}}}))
    inp = keras.Input((16, 16, 1))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(inp))
    model.compile(loss="categorical_crossentropy")
    model.save(tmp_path / "mc.keras")
    out, _ = _run_evaluate(tmp_path, root, tmp_path / "mc.keras", params)
    details = json.loads((out / "details.json").read_text())
    assert {"dice_image_1", "dice_image_2", "dice_volume_1", "dice_volume_2"} <= details.keys()
    assert details["n_subjects"] == 3 and details["loss"] > 0
    infer.main(["--dataset", "tiny", "--params", str(params), "--model", str(tmp_path / "mc.keras"),
                "--images", str(root / "test/images"), "--out", str(tmp_path / "inf")])
    written = sorted((tmp_path / "inf/masks").glob("*.png"))
    assert len(written) == 3
    for path in written:
        assert set(np.unique(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)).tolist()) <= {0, 1, 2}


def _binning_model(path, size):
    """Softmax over 3 classes from the grey value alone: x < 0.2 -> 0, x < 0.6 -> 1, else 2 (fixed weights)."""
    inp = keras.Input((size, size, 1))
    conv = keras.layers.Conv2D(3, 1, activation="softmax")
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.array([0.0, 10.0, 30.0]).reshape(1, 1, 1, 3), np.array([0.0, -2.0, -14.0])])
    model.compile(loss="categorical_crossentropy")
    model.save(path)
    return path


def test_per_class_dice_and_hd95_count_a_missed_class(tmp_path):
    """Class 2 appears in one of three images and the model misses it: dice_2 is 0 over that image,
    not (0 + 1 + 1) / 3 from two images where class 2 is absent from both masks, and that subject's
    HD95 is the image diagonal, not the 0 of the class it found."""
    root = tmp_path / "mc"
    for kind in ("images", "masks"):
        (root / "test" / kind).mkdir(parents=True)
    for i in range(3):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[2:12, 2:12] = 1
        image = mask * 100  # grey 100 -> class 1 for the model
        if i == 0:
            mask[20:30, 20:30] = 2
            image[20:30, 20:30] = 100  # drawn like class 1: the model calls it 1, missing class 2
        cv2.imwrite(str(root / "test/images" / f"s{i}_0000.png"), image)
        cv2.imwrite(str(root / "test/masks" / f"s{i}_0000.png"), mask)
    write_info(root, _info(2))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"datasets": {"tiny": {"raw": "unused",
        "train": {"input_size": SIZE, "channels": 1, "head": "softmax", "loss": "cce_dice_loss", "num_layers": 1,
                  "batch_size": 3},
        "evaluate": {"threshold": 0.5, "overlays": 0}}}}))
    out, _ = _run_evaluate(tmp_path, root, _binning_model(tmp_path / "bin.keras", SIZE), params)
    result = json.loads((out / "details.json").read_text())
    assert result["dice_image_2"] == 0.0 and result["n_images_2"] == 1
    assert result["dice_image_1"] == pytest.approx((2 / 3 + 1 + 1) / 3)  # s0: 100 TP, 100 FP pixels of class 1
    subjects = {r["subject"]: r for r in csv.DictReader(open(out / "per_subject.csv"))}
    assert float(subjects["s1"]["hd95_px"]) == 0.0 and float(subjects["s0"]["dice_volume_2"]) == 0.0
    assert float(subjects["s0"]["hd95_px"]) > SIZE  # class 2 missed: the diagonal (56.6), averaged with class 1's


def test_evaluate_takes_the_classes_from_dataset_json_not_params(tmp_path, prepared):
    """The set says two classes: a sigmoid head is one usage line before any model is loaded."""
    write_info(prepared, _info(2))
    with pytest.raises(SystemExit, match=r"^evaluate@\w+: train\.head is sigmoid .*prepared/dataset\.json holds 2 "
                                         r"foreground classes; set train\.head: softmax$") as err:
        _run_evaluate(tmp_path, prepared, tmp_path / "not-loaded.keras", _params(tmp_path, input_size=SIZE))
    assert err.value.code == 2  # a params problem (UsageError)
    assert not (tmp_path / "metrics").exists()


def test_evaluate_refuses_a_model_of_another_head_and_a_set_without_dataset_json(tmp_path, prepared):
    params = _params(tmp_path, input_size=SIZE, head="softmax")  # 2 outputs; the identity model has 1
    with pytest.raises(SystemExit, match=r"identity\.keras: the model has 1 outputs, expected 2") as err:
        _run_evaluate(tmp_path, prepared, _identity_model(tmp_path), params)
    assert err.value.code == 1  # a data problem (DatasetError)
    (prepared / "dataset.json").unlink()
    with pytest.raises(SystemExit, match=r"dataset\.json: not found") as err:
        _run_evaluate(tmp_path, prepared, _identity_model(tmp_path), _params(tmp_path, input_size=SIZE))
    assert err.value.code == 1


def test_evaluate_reads_ground_truth_by_the_strict_rule(tmp_path, prepared):
    """A 0/128 mask used to count as foreground (`> 0`); now it stops evaluate naming the file."""
    import tensorflow as tf

    cv2.imwrite(str(prepared / "test/masks/flat_0000.png"), _square(20, 20, 8) // 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"0/255(.|\n)*flat_0000\.png"):
        _run_evaluate(tmp_path, prepared, _identity_model(tmp_path), _params(tmp_path, input_size=SIZE))


def test_evaluate_and_infer_never_write_over_their_inputs(tmp_path, prepared):
    """--out pointing at the prepared set (or inside it) is refused and the set is left byte for byte."""
    model = _identity_model(tmp_path)
    params = _params(tmp_path, input_size=SIZE)
    before = {p: p.read_bytes() for p in prepared.rglob("*") if p.is_file()}
    common = ["--dataset", "tiny", "--params", str(params), "--model", str(model)]
    runs = [
        (evaluate.main, [*common, "--data", str(prepared), "--out", str(prepared), "--reports", str(tmp_path / "r")]),
        (evaluate.main, [*common, "--data", str(prepared), "--out", str(tmp_path / "m"), "--reports", str(prepared / "x")]),
        (infer.main, [*common, "--images", str(prepared / "test" / "images"), "--out", str(prepared / "test")]),
        (infer.main, [*common, "--images", str(tmp_path / "prepared" / "test" / "images"), "--prepared", str(prepared),
                      "--out", str(model)]),
    ]
    for main, argv in runs:
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2 and "input" in str(err.value), err.value
        assert {p: p.read_bytes() for p in prepared.rglob("*") if p.is_file()} == before
    assert model.is_file() and not (tmp_path / "r").exists()


def test_volume_metrics_are_on_the_source_grid_in_mm(tmp_path):
    """A 20 x 20 x 4 volume of 0.9 x 0.9 x 3 mm stretched to 40 px squares: the stage's per-subject
    Dice, HD95 and surface distance equal those of the source-grid volumes, and a blob predicted on
    an empty slice (kept in the test split) costs volume Dice."""
    from pipeline.slices.resize import place_mask, placement_for
    from pipeline.slices.slicing import to_display
    from pipeline.evaluation.metrics import volume_scores

    spacing = [0.9, 0.9, 3.0]
    truth = np.zeros((20, 20, 4), np.uint8)
    truth[5:12, 6:14, 1:3] = 1
    pred = truth.copy()
    pred[2:5, 14:18, 3] = 1  # invented on slice 3, where the truth is empty
    place = placement_for((20, 20), size=SIZE, letterbox=False)
    root = tmp_path / "prepared"
    for kind in ("images", "masks"):
        (root / "test" / kind).mkdir(parents=True)
    for z in range(4):
        cv2.imwrite(str(root / "test/masks" / f"v_{z:04d}.png"), place_mask(to_display(truth[:, :, z], axis=2), place) * 255)
        cv2.imwrite(str(root / "test/images" / f"v_{z:04d}.png"), place_mask(to_display(pred[:, :, z], axis=2), place) * 255)
    (root / "geometry.json").write_text(json.dumps({"v": {
        "split": "test", "layout": "volume", "shape": [20, 20, 4], "axis": 2, "affine": AFFINE, "spacing": spacing,
        "placement": place.to_dict(), "slices": {str(z): f"v_{z:04d}.png" for z in range(4)}}}))
    write_info(root, _info(1))
    out, _ = _run_evaluate(tmp_path, root, _identity_model(tmp_path), _params(tmp_path, input_size=SIZE, overlays=0))
    result = json.loads((out / "eval.json").read_text())
    expected = volume_scores(pred, truth, spacing=spacing)
    assert result["dice_volume"] == pytest.approx(expected["dice"]) and expected["dice"] < 1.0
    assert result["hd95_mm"] == pytest.approx(expected["hd95"], abs=1e-5)  # eval.json rounds to 6 decimals
    assert result["hd95_mm"] != pytest.approx(volume_scores(pred, truth)["hd95"])  # not in voxels
    details = json.loads((out / "details.json").read_text())
    assert details["msd_mm"] == pytest.approx(expected["msd"], abs=1e-5)
    assert details["distance_unit"] == "mm" and details["truth_on_source_grid_exact"] is True
    assert details["n_empty_truth_images_with_prediction"] == 1


def test_distances_are_in_mm_only_where_the_source_gives_a_spacing():
    from pipeline.evaluation.scoring import distance_unit

    volume = {"layout": "volume", "spacing": [0.9, 0.9, 3.0], "spacing_unknown": []}
    assert distance_unit(volume) == "mm"
    assert distance_unit({**volume, "spacing_unknown": [0, 1, 2]}) == "px"  # a header with pixdim 1, no orientation
    assert distance_unit({"layout": "stack", "spacing": [1.0, 1.0]}) == "px" and distance_unit(None) == "px"
