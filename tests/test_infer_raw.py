"""infer --raw on unlabelled scans as published: the mask comes back on the source grid for every source."""

from __future__ import annotations

import shutil
import zipfile

import cv2
import keras
import nibabel as nib
import numpy as np
import pytest
import yaml

from pipeline.synth import get_synthesizer
from stages import infer
from tests.conftest import ROOT

INPUT = 64


@pytest.fixture(scope="module")
def bright_model(tmp_path_factory):
    """Predicts the image itself (probability = grey / 255): foreground wherever the scan is bright."""
    inp = keras.Input((INPUT, INPUT, 1))
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")(inp))
    path = tmp_path_factory.mktemp("model") / "bright.keras"
    model.save(path)
    return path


def _params(tmp_path, key, **prepare):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 128
    params["datasets"][key]["train"].update(input_size=INPUT, channels=1, batch_size=4)
    params["datasets"][key]["prepare"].update(prepare)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _infer(tmp_path, key, raw, model, **prepare):
    out = tmp_path / "out"
    infer.main(["--dataset", key, "--params", str(_params(tmp_path, key, **prepare)), "--raw", str(raw),
                "--model", str(model), "--out", str(out)])
    assert cv2.imread(str(out / "montage.png")) is not None
    return out


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("key", ["lasc", "ms"])
def test_nifti_scan_gets_a_mask_with_its_shape_and_affine(tmp_path, bright_model, key):
    """An oblique, LPS-stored, anisotropic volume with a bright block off-centre: the mask covers the
    block at the same stored voxels (a flip or transpose anywhere would put it elsewhere)."""
    data = np.random.default_rng(0).uniform(1, 100, (40, 30, 12)).astype(np.float32)
    block = np.zeros(data.shape, bool)
    block[4:16, 18:28, 2:9] = True
    data[block] = 1000
    affine = np.array([[-1.2, 0.1, 0, 30], [0, -0.9, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    scan = tmp_path / "new_scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), scan)
    out = _infer(tmp_path, key, scan, bright_model)
    mask = nib.load(out / "new_scan.nii.gz")
    assert mask.shape == data.shape and np.allclose(mask.affine, affine, atol=1e-5)
    stored = np.asarray(mask.dataobj)
    assert stored.dtype == np.uint8 and set(np.unique(stored).tolist()) <= {0, 1}
    assert _dice(stored > 0, block) > 0.9


def test_dicom_series_gets_a_nifti_on_the_series_grid(tmp_path, bright_model):
    raw = tmp_path / "raw"
    raw.mkdir()
    get_synthesizer("pancreas").generate(raw, subjects=1, seed=3, size=(48, 56), slices=(6, 8))
    from pipeline.formats.dicom import read_series

    series = next(p.parent for p in sorted(raw.rglob("*.dcm")))
    image, affine, _, meta = read_series(series, modality="CT")  # the series' own grid, RAS+
    out = _infer(tmp_path, "pancreas", series, bright_model)
    (written,) = out.glob("*.nii.gz")
    stored = nib.load(written)
    mask = nib.as_closest_canonical(stored)
    assert mask.shape == image.shape and np.allclose(mask.affine, affine, atol=1e-3)
    assert "".join(nib.aff2axcodes(stored.affine)) == meta["orientation"]  # stored in the series' axis order
    assert np.asarray(mask.dataobj).any()  # the window makes soft tissue bright: something is segmented


def test_2d_image_gets_a_png_mask_at_its_own_size(tmp_path, bright_model):
    image = np.random.default_rng(1).integers(0, 60, (90, 150), dtype=np.uint8)
    image[10:50, 100:140] = 250  # top right: not mirrored, not transposed
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    out = _infer(tmp_path, "faz", tmp_path / "scan.png", bright_model)
    mask = cv2.imread(str(out / "masks" / "scan.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == image.shape and set(np.unique(mask).tolist()) <= {0, 255}
    assert _dice(mask > 0, image > 127) > 0.9


def test_zip_of_2d_slices_gets_one_mask_per_slice_at_source_size(tmp_path, bright_model):
    raw = tmp_path / "raw"
    raw.mkdir()
    get_synthesizer("aisd").generate(raw, subjects=2, seed=4)
    with zipfile.ZipFile(next(raw.rglob("image.zip"))) as zf:
        members = sorted(m for m in zf.namelist() if m.endswith(".png"))
        case = members[0].rsplit("/", 1)[0]
        (tmp_path / "case").mkdir()
        for m in members:
            if m.startswith(case + "/"):
                (tmp_path / "case" / m.rsplit("/", 1)[1]).write_bytes(zf.read(m))
    shutil.make_archive(str(tmp_path / "one_case"), "zip", tmp_path, "case")
    out = _infer(tmp_path, "aisd", tmp_path / "one_case.zip", bright_model)
    slices = sorted((tmp_path / "case").glob("*.png"))
    masks = sorted((out / "masks" / "case").glob("*.png"))
    assert [m.name for m in masks] == [s.name for s in slices] and len(masks) > 1
    for s, m in zip(slices, masks):
        assert cv2.imread(str(m), cv2.IMREAD_UNCHANGED).shape == cv2.imread(str(s), 0).shape


def test_out_over_the_scan_is_refused_and_the_scan_kept(tmp_path, bright_model):
    folder = tmp_path / "scans"
    folder.mkdir()
    image = np.random.default_rng(2).integers(0, 255, (32, 32), dtype=np.uint8)
    cv2.imwrite(str(folder / "scan.png"), image)
    with pytest.raises(SystemExit) as err:
        infer.main(["--dataset", "faz", "--params", str(_params(tmp_path, "faz")), "--raw", str(folder),
                    "--model", str(bright_model), "--out", str(folder)])
    assert err.value.code == 2 and np.array_equal(cv2.imread(str(folder / "scan.png"), 0), image)
