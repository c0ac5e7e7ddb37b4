"""LASC / MSD Task02_Heart reader on its synthetic stand-in: dataset.json, decoys, pairing, bad input."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.formats.nifti import load_volume
from pipeline.sources import get_reader
from pipeline.synth import get_synthesizer

lasc = get_reader("lasc")
TRAIN = ["la_003", "la_004", "la_005", "la_007"]


def synth(out: Path, subjects: int, seed: int = 5, layout: str = "msd") -> Path:
    """The MSD form by default here (dataset.json, .nii.gz); the Kaggle form has its own tests."""
    out.mkdir(parents=True)
    get_synthesizer("lasc").generate(out, subjects=subjects, seed=seed, layout=layout)
    return out


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return synth(tmp_path_factory.mktemp("lasc") / "raw", subjects=4)


@pytest.fixture
def copy(raw, tmp_path) -> Path:
    dst = tmp_path / "raw"
    shutil.copytree(raw, dst)
    return dst


def test_layout_as_published(raw):
    task = raw / "Task02_Heart"
    meta = json.loads((task / "dataset.json").read_text())
    assert meta["modality"] == {"0": "MRI"} and meta["labels"] == {"0": "background", "1": "left atrium"}
    assert (meta["numTraining"], meta["numTest"]) == (4, 2)
    assert meta["training"][0] == {"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}
    assert meta["test"] == ["./imagesTs/la_001.nii.gz", "./imagesTs/la_002.nii.gz"]
    assert sorted(p.name for p in (task / "imagesTs").iterdir()) == ["la_001.nii.gz", "la_002.nii.gz"]
    for sub in ("imagesTr", "labelsTr"):
        names = sorted(p.name for p in (task / sub).iterdir())
        assert names == sorted([f"{c}.nii.gz" for c in TRAIN] + [f"._{c}.nii.gz" for c in TRAIN])
    with pytest.raises(DatasetError, match="not a NIfTI file"):  # the decoys really are junk
        load_volume(task / "imagesTr" / "._la_003.nii.gz")


def test_discover_and_load(raw):
    refs = lasc.discover(raw)
    assert [r.subject_id for r in refs] == TRAIN
    task = raw / "Task02_Heart"
    orientations = []
    for ref in refs:
        assert ref.files == (str(task / "imagesTr" / f"{ref.subject_id}.nii.gz"), str(task / "labelsTr" / f"{ref.subject_id}.nii.gz"))
        s = lasc.load(ref)
        assert s.sources == ref.files and s.modality == "MR" and s.layout == "volume"
        assert s.image.dtype in (np.float32, np.int16) and s.mask.dtype == np.uint8 and s.image.shape == s.mask.shape
        nx, ny, nz = s.image.shape
        assert 96 <= nx <= 128 and 96 <= ny <= 144 and 40 <= nz <= 60
        assert s.spacing[0] in (1.25, 1.3) and s.spacing[2] in (1.25, 1.37)
        assert set(np.unique(s.mask).tolist()) == {0, 1}
        per_slice = s.mask.sum(axis=(0, 1))
        assert (per_slice > 0).sum() >= 3 and (per_slice == 0).sum() >= 3
        body = s.image > 0.1 * s.image.max()
        assert s.image[s.mask == 1].mean() > 2 * s.image[body & (s.mask == 0)].mean()  # bright atrium
        orientations.append(s.orientation)
        assert "".join(nib.aff2axcodes(s.affine)) == "RAS"
    assert orientations == ["LPS", "RAS", "LAS", "LPS"]
    assert lasc.notes(raw) == ["imagesTs: 2 volumes have no labels and are not used"]


def test_pairs_by_file_name_without_dataset_json(copy, raw):
    (copy / "Task02_Heart" / "dataset.json").unlink()
    refs = lasc.discover(copy)
    assert [r.subject_id for r in refs] == TRAIN
    assert [Path(f).name for f in refs[0].files] == ["la_003.nii.gz", "la_003.nii.gz"]


def test_unpaired_files_without_json_are_all_listed(copy):
    task = copy / "Task02_Heart"
    (task / "dataset.json").unlink()
    (task / "labelsTr" / "la_004.nii.gz").unlink()
    shutil.copy(task / "labelsTr" / "la_005.nii.gz", task / "labelsTr" / "la_099.nii.gz")
    with pytest.raises(DatasetError, match=r"images without a label: .*la_004\.nii\.gz; labels without an image: .*la_099\.nii\.gz"):
        lasc.discover(copy)


def test_missing_files_listed_in_json_are_all_named(copy):
    task = copy / "Task02_Heart"
    (task / "imagesTr" / "la_005.nii.gz").unlink()  # its ._ decoy stays: it must not stand in
    (task / "labelsTr" / "la_007.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"dataset\.json: files listed under 'training' are missing: image \./imagesTr/la_005\.nii\.gz, label \./labelsTr/la_007\.nii\.gz"):
        lasc.discover(copy)


def test_extra_top_folder_and_uncompressed_files_are_tolerated(raw, tmp_path):
    top = tmp_path / "download" / "archive"
    shutil.copytree(raw, top)
    gz = top / "Task02_Heart" / "imagesTr" / "la_004.nii.gz"
    (gz.parent / "LA_004.NII").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    refs = lasc.discover(tmp_path / "download")
    assert [r.subject_id for r in refs] == TRAIN
    assert refs[1].files[0].endswith("LA_004.NII")
    np.testing.assert_array_equal(lasc.load(refs[1]).image, lasc.load(lasc.discover(raw)[1]).image)


def test_a_case_stored_twice_is_named_not_guessed(copy):
    gz = copy / "Task02_Heart" / "labelsTr" / "la_004.nii.gz"
    (gz.parent / "la_004.nii").write_bytes(gzip.decompress(gz.read_bytes()))
    with pytest.raises(DatasetError, match=r"labelsTr: one case stored twice: la_004\.nii(\.gz)? and la_004\.nii"):
        lasc.discover(copy)


def test_nothing_found_says_what_was_expected(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"no dataset\.json and no imagesTr folder found: expected Task02_Heart/dataset\.json"):
        lasc.discover(tmp_path)


def test_label_on_another_grid_is_rejected(copy):
    ref = lasc.discover(copy)[0]
    img = nib.load(ref.files[1], mmap=False)
    shifted = img.affine.copy()
    shifted[:3, 3] += 5.0
    nib.Nifti1Image(np.asanyarray(img.dataobj), shifted).to_filename(ref.files[1])
    with pytest.raises(DatasetError, match=r"labelsTr/la_003\.nii\.gz: mask does not lie on the grid .*origin shifted by 8\.66 mm"):
        lasc.load(ref)


def test_labels_above_1_pass_on_and_non_integer_labels_are_rejected(copy):
    """Multi-class labels reach prepare (its num_classes decides); a label volume that is not whole numbers
    (an image saved as a label) is refused by the reader."""
    ref = lasc.discover(copy)[0]
    img = nib.load(ref.files[1], mmap=False)
    data = np.asanyarray(img.dataobj).copy()
    data[data == 1] = 2
    nib.Nifti1Image(data, img.affine).to_filename(ref.files[1])
    assert set(np.unique(lasc.load(ref).mask).tolist()) == {0, 2}
    nib.Nifti1Image(data.astype(np.float32) * 0.3, img.affine).to_filename(ref.files[1])
    with pytest.raises(DatasetError, match=r"non-integer label values 0\.6 in \d+ voxels"):
        lasc.load(ref)


def test_kaggle_form_uncompressed_nii_appledouble_decoys_no_dataset_json(tmp_path):
    """SOURCES.md: the Kaggle copy (the seed reads Left_Atrial_Segmentation/imagesTr/*.nii) may lack
    dataset.json and ship .nii; macOS ._ files beside the volumes are not NIfTI."""
    raw = synth(tmp_path / "kaggle", subjects=3, layout="kaggle")
    tree = _tree(raw)
    assert not any(k.endswith("dataset.json") for k in tree)
    assert "Left_Atrial_Segmentation/imagesTr/la_003.nii" in tree and "Left_Atrial_Segmentation/imagesTr/._la_003.nii" in tree
    refs = lasc.discover(raw)
    assert [r.subject_id for r in refs] == TRAIN[:3]
    subject = lasc.load(refs[0])
    assert subject.mask.any() and subject.image[subject.mask == 1].mean() > subject.image.mean()
    assert lasc.notes(raw) and "imagesTs" in lasc.notes(raw)[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_is_byte_identical_per_seed(tmp_path):
    a, b, c = (_tree(synth(tmp_path / name, subjects=1, seed=seed)) for name, seed in [("a", 7), ("b", 7), ("c", 8)])
    assert a == b
    key = "Task02_Heart/imagesTr/la_003.nii.gz"
    assert a.keys() == c.keys() and a[key] != c[key]
