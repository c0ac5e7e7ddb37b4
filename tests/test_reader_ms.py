"""MS brain MRI reader on its synthetic stand-in: layout, geometry, sequences, bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import openpyxl
import pytest

from pipeline.errors import DatasetError
from pipeline.slices.slicing import display_stack
from pipeline.sources import get_reader
from pipeline.synth import get_synthesizer

ms = get_reader("ms")


def synth(out: Path, subjects: int, seed: int = 2) -> Path:
    out.mkdir(parents=True)
    get_synthesizer("ms").generate(out, subjects=subjects, seed=seed)
    return out


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return synth(tmp_path_factory.mktemp("ms") / "raw", subjects=4)


@pytest.fixture
def copy(raw, tmp_path) -> Path:
    dst = tmp_path / "raw"
    shutil.copytree(raw, dst)
    return dst


def test_layout_as_published(raw):
    for n in range(1, 5):
        names = sorted(p.name for p in (raw / f"Patient-{n}").iterdir())
        assert names == sorted(f"{n}-{kind}.nii" for kind in
                               ["Flair", "T1", "T2", "LesionSeg-Flair", "LesionSeg-T1", "LesionSeg-T2"])
    img = nib.load(raw / "Patient-1" / "1-Flair.nii")
    assert img.get_data_dtype() == np.int16
    assert nib.load(raw / "Patient-4" / "4-LesionSeg-Flair.nii").get_data_dtype() == np.float32
    rows = list(openpyxl.load_workbook(raw / "patient_info.xlsx").active.values)
    assert rows[0][:2] == ("ID", "Gender") and [r[0] for r in rows[1:]] == [1, 2, 3, 4]


def test_discover_and_load_flair(raw):
    refs = ms.discover(raw)
    assert [r.subject_id for r in refs] == ["Patient-1", "Patient-2", "Patient-3", "Patient-4"]
    orientations = []
    for ref in refs:
        n = ref.subject_id.split("-")[1]
        assert ref.files == (str(raw / f"Patient-{n}" / f"{n}-Flair.nii"), str(raw / f"Patient-{n}" / f"{n}-LesionSeg-Flair.nii"))
        s = ms.load(ref)
        assert s.sources == ref.files and s.modality == "MR" and s.layout == "volume"
        assert s.image.dtype in (np.float32, np.int16) and s.mask.dtype == np.uint8 and s.image.shape == s.mask.shape
        nx, ny, nz = s.image.shape
        assert 128 <= nx <= 160 and 128 <= ny <= 192 and 20 <= nz <= 28
        if int(n) % 2:  # the stand-in's header without orientation: pixdim 1 is no spacing
            assert s.spacing == (1.0, 1.0, 1.0) and s.meta["spacing_unknown"] == (0, 1, 2)
        else:
            assert 0.9 <= s.spacing[0] == s.spacing[1] <= 1.0 and s.spacing[2] in (3.0, 4.0, 5.0)
            assert s.meta["spacing_unknown"] == ()
        assert set(np.unique(s.mask).tolist()) == {0, 1}
        per_slice = s.mask.sum(axis=(0, 1))
        assert (per_slice > 0).sum() >= 2 and (per_slice == 0).sum() >= 2  # lesion-free slices exist
        brain = s.image > 0.3 * s.image.max()
        assert s.image[s.mask == 1].mean() > 1.5 * s.image[brain & (s.mask == 0)].mean()  # bright on FLAIR
        assert s.meta["sequence"] == "Flair"
        orientations.append(s.orientation)
    assert orientations == ["PLS", "LPS", "PLS", "RAS"]


def test_lps_patient_is_flipped_to_ras(raw):
    ref = ms.discover(raw)[1]
    stored = np.asanyarray(nib.load(ref.files[0]).dataobj)
    s = ms.load(ref)
    assert s.orientation == "LPS"
    np.testing.assert_array_equal(s.image, stored[::-1, ::-1, :])
    assert "".join(nib.aff2axcodes(s.affine)) == "RAS"


@pytest.mark.parametrize("sequence, stem", [("t1", "T1"), ("T2", "T2"), ("FLAIR", "Flair")])
def test_sequence_option_is_case_insensitive(raw, sequence, stem):
    ref = ms.discover(raw, sequence=sequence)[0]
    assert Path(ref.files[0]).name == f"1-{stem}.nii" and Path(ref.files[1]).name == f"1-LesionSeg-{stem}.nii"
    assert ms.load(ref).meta["sequence"] == stem


def test_t1_mask_is_its_own(raw):
    flair = ms.load(ms.discover(raw)[0]).mask
    t1 = ms.load(ms.discover(raw, sequence="T1")[0]).mask
    assert 0 < t1.sum() <= flair.sum()


def test_unknown_sequence_lists_valid_ones(raw):
    with pytest.raises(DatasetError, match=r"unknown MS sequence 'PD'; valid: Flair, T1, T2"):
        ms.discover(raw, sequence="PD")


def test_extra_top_folder_gz_and_case_are_tolerated(raw, tmp_path):
    top = tmp_path / "download" / "MS dataset"
    shutil.copytree(raw, top)
    path = top / "Patient-2" / "2-Flair.nii"
    (top / "Patient-2" / "2-FLAIR.NII.GZ").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    path.unlink()
    (top / "Patient-2" / "._2-Flair.nii").write_bytes(b"\x00\x05\x16\x07junk")
    refs = ms.discover(tmp_path / "download")
    assert [r.subject_id for r in refs] == ["Patient-1", "Patient-2", "Patient-3", "Patient-4"]
    assert refs[1].files[0].endswith("2-FLAIR.NII.GZ")
    np.testing.assert_array_equal(ms.load(refs[1]).image, ms.load(ms.discover(raw)[1]).image)


def test_unpaired_files_are_all_listed(copy):
    (copy / "Patient-2" / "2-LesionSeg-Flair.nii").unlink()
    (copy / "Patient-3" / "3-Flair.nii").unlink()
    with pytest.raises(DatasetError) as err:
        ms.discover(copy)
    msg = str(err.value)
    assert "images without a <n>-LesionSeg-Flair mask:" in msg and "2-Flair.nii" in msg
    assert "masks without a <n>-Flair image:" in msg and "3-LesionSeg-Flair.nii" in msg
    assert len(ms.discover(copy, sequence="T2")) == 4  # other sequences still complete


def test_nothing_found_says_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"no MS patient volumes found: expected files like Patient-1/1-Flair\.nii"):
        ms.discover(tmp_path)


def test_mask_on_another_grid_is_rejected(copy):
    ref = ms.discover(copy)[0]
    img = nib.load(ref.files[1], mmap=False)
    data = np.asanyarray(img.dataobj)[:, :, :-1]
    nib.Nifti1Image(data, img.affine).to_filename(ref.files[1])
    with pytest.raises(DatasetError, match=r"1-LesionSeg-Flair\.nii: mask does not lie on the grid .*shape"):
        ms.load(ref)


def test_mask_labels_above_1_pass_on_to_prepare(copy):
    """Readers pass every class on; prepare.num_classes decides whether a 3 is a class or an error."""
    ref = ms.discover(copy)[1]
    img = nib.load(ref.files[1], mmap=False)
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = 3
    nib.Nifti1Image(data, img.affine).to_filename(ref.files[1])
    assert 3 in np.unique(ms.load(ref).mask)


def test_header_without_orientation_is_shown_as_stored_and_spacing_unknown(raw):
    """Issue 11: Mendeley headers carry zero orientation codes and pixdim 1.0. No orientation is invented:
    slice [:, :, k] is shown as stored (axis 0 down the rows, as the seed views it), spacing is unknown."""
    ref = ms.discover(raw)[0]
    img = nib.load(ref.files[0])
    assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 0
    stored = np.asanyarray(img.dataobj).astype(np.float32)
    s = ms.load(ref)
    assert s.orientation == "PLS" and s.meta["orientation_assumed"] == 1
    shown = display_stack(s.image, axis=2)
    for k in (0, stored.shape[2] // 2):
        np.testing.assert_array_equal(shown[k], stored[:, :, k])
    assert s.meta["spacing_unknown"] == (0, 1, 2)


def test_missing_orientation_param_overrides_the_view(raw):
    ref = ms.discover(raw)[0]
    stored = np.asanyarray(nib.load(ref.files[0]).dataobj).astype(np.float32)
    shown = display_stack(ms.load(ref, missing_orientation="RAS").image, axis=2)
    np.testing.assert_array_equal(shown[3], stored[::-1, ::-1, 3].T)  # RAS: radiological view of x, y
    with pytest.raises(DatasetError, match=r"prepare\.reader\.missing_orientation: 'XYZ' is not three axis codes"):
        ms.load(ref, missing_orientation="XYZ")
    assert ms.load(ms.discover(raw)[1], missing_orientation="RAS").orientation == "LPS"  # real headers win


def test_sequences_differ_in_shape_and_pair_only_with_their_own_mask(raw):
    """SOURCES.md: FLAIR/T1/T2 of one patient may differ in shape and are not co-registered."""
    flair = ms.load(ms.discover(raw)[1])
    t1 = ms.load(ms.discover(raw, sequence="T1")[1])
    assert flair.image.shape != t1.image.shape and t1.mask.shape == t1.image.shape


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_is_byte_identical_per_seed(tmp_path):
    a, b, c = (_tree(synth(tmp_path / name, subjects=2, seed=seed)) for name, seed in [("a", 7), ("b", 7), ("c", 8)])
    assert a == b
    assert a.keys() == c.keys() and a["Patient-1/1-Flair.nii"] != c["Patient-1/1-Flair.nii"]
