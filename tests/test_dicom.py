"""pipeline.formats.dicom.read_series on tiny series written with pydicom: order, HU, geometry, errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from pipeline.formats.dicom import read_series
from pipeline.errors import DatasetError
from pipeline.synth.pancreas import lps_affine, save_label, uid, write_series

SPACING = (0.75, 0.8, 2.0)
ORIGIN = (-10.0, -20.0, -100.0)
SHAPE = (12, 10, 7)  # columns (towards patient left), rows (towards posterior), slices (towards superior)


def _write(folder: Path, stored: np.ndarray, *, series: str = "a", **kwargs) -> list[Path]:
    options = dict(spacing=SPACING, origin=ORIGIN, patient_id="PANCREAS_0001",
                   study_uid=uid(0, "study"), series_uid=uid(0, series))
    options.update(kwargs)
    return write_series(folder, stored, **options)


def _stored(value: int = 1024) -> np.ndarray:
    return np.full(SHAPE, value, np.uint16)


def test_stored_values_become_hu(tmp_path: Path) -> None:
    stored = (np.arange(np.prod(SHAPE)) % 2000 + 24).astype(np.uint16).reshape(SHAPE)
    _write(tmp_path, stored)
    hu, affine, spacing, meta = read_series(tmp_path)
    assert hu.dtype == np.float32
    # Stored axial LPS (L, P, S) -> canonical RAS flips the column and row axes.
    np.testing.assert_array_equal(hu, stored[::-1, ::-1, :].astype(np.float32) - 1024)
    assert meta["rescale_intercept"] == -1024 and meta["rescale_slope"] == 1
    assert meta["orientation"] == "LPS" and meta["modality"] == "CT"
    assert spacing == pytest.approx(SPACING)


def test_shuffled_file_names_keep_slice_order(tmp_path: Path) -> None:
    stored = _stored()
    stored[:, :, 3] = 1024 + 500  # marker slice, 3rd above the first
    names = [f"{n}.dcm" for n in np.random.default_rng(7).permutation(["b", "x", "a", "q", "m", "c", "z"])]
    _write(tmp_path, stored, file_names=names, instance_numbers=[5, 1, 7, 2, 6, 3, 4])
    assert sorted(names) != names
    hu, affine, _, meta = read_series(tmp_path)
    marked = np.flatnonzero((hu == 500).all(axis=(0, 1)))
    assert marked.tolist() == [3]
    assert (affine @ [0, 0, 3, 1])[2] == pytest.approx(ORIGIN[2] + 3 * SPACING[2])
    assert [Path(f).name for f in meta["files"]] == names


def test_patient_left_anterior_marker_lands_at_canonical_index(tmp_path: Path) -> None:
    stored = _stored()
    col, row, k = 10, 1, 2  # near patient's left (high column), anterior (low row)
    stored[col, row, k] = 1024 + 900
    _write(tmp_path, stored)
    hu, affine, _, _ = read_series(tmp_path)
    i, j, kk = np.argwhere(hu == 900)[0]
    assert (i, j, kk) == (SHAPE[0] - 1 - col, SHAPE[1] - 1 - row, k)
    assert np.all(np.diag(affine)[:3] > 0)  # canonical RAS: indices grow towards R, A, S
    # RAS x = -LPS x; patient's left is negative RAS x, and low i.
    lps = np.array(ORIGIN) + np.array([col * SPACING[0], row * SPACING[1], k * SPACING[2]])
    np.testing.assert_allclose(affine @ [i, j, kk, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-4)


def test_flipped_storage_gives_the_same_canonical_volume(tmp_path: Path) -> None:
    stored = (np.random.default_rng(1).integers(0, 2000, SHAPE)).astype(np.uint16)
    _write(tmp_path / "axial", stored)
    # Same physical content stored with row direction towards the right and column towards anterior.
    far = np.array(ORIGIN) + [(SHAPE[0] - 1) * SPACING[0], (SHAPE[1] - 1) * SPACING[1], 0]
    _write(tmp_path / "flipped", stored[::-1, ::-1, :], origin=tuple(far), orientation=(-1, 0, 0, 0, -1, 0))
    a, aff_a, _, meta_a = read_series(tmp_path / "axial")
    b, aff_b, _, meta_b = read_series(tmp_path / "flipped")
    assert (meta_a["orientation"], meta_b["orientation"]) == ("LPS", "RAS")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(aff_a, aff_b, atol=1e-4)


def test_label_in_other_stored_orientation_overlays_after_canonical(tmp_path: Path) -> None:
    stored = _stored()
    stored[2:5, 6:8, 1:4] = 1024 + 130
    mask = (stored == 1024 + 130).astype(np.uint8)
    _write(tmp_path / "ct", stored)
    save_label(tmp_path / "label.nii.gz", mask, lps_affine(SPACING, ORIGIN), "ARS")
    hu, affine, _, _ = read_series(tmp_path / "ct")
    label = nib.as_closest_canonical(nib.load(tmp_path / "label.nii.gz"))
    assert nib.aff2axcodes(nib.load(tmp_path / "label.nii.gz").affine) == ("A", "R", "S")
    np.testing.assert_array_equal(np.asanyarray(label.dataobj) == 1, hu == 130)
    np.testing.assert_allclose(label.affine, affine, atol=1e-4)


def test_no_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(DatasetError, match="no DICOM files"):
        read_series(tmp_path)


def test_truncated_file_is_named(tmp_path: Path) -> None:
    paths = _write(tmp_path, _stored())
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) - 50])
    with pytest.raises(DatasetError, match=rf"{paths[3].name}.*unreadable or cut short"):
        read_series(tmp_path)


def test_missing_slice(tmp_path: Path) -> None:
    paths = _write(tmp_path, _stored())
    paths[3].unlink()
    with pytest.raises(DatasetError, match=rf"missing slice.*{paths[2].name}.*{paths[4].name}.*4\.000 mm apart"):
        read_series(tmp_path)


def test_two_series_in_one_folder(tmp_path: Path) -> None:
    _write(tmp_path, _stored(), series="a")
    _write(tmp_path, _stored(), series="b", file_names=[f"2-{k:03d}.dcm" for k in range(SHAPE[2])])
    with pytest.raises(DatasetError, match="expected one DICOM series per folder, found 2") as err:
        read_series(tmp_path)
    assert f"{uid(0, 'a')} (7 files)" in str(err.value) and f"{uid(0, 'b')} (7 files)" in str(err.value)


def test_non_ct_modality(tmp_path: Path) -> None:
    _write(tmp_path, _stored(), modality="MR")
    with pytest.raises(DatasetError, match="expected Modality CT, found 'MR'"):
        read_series(tmp_path)
    assert read_series(tmp_path, modality=None)[3]["modality"] == "MR"


def test_mixed_orientations(tmp_path: Path) -> None:
    paths = _write(tmp_path, _stored())
    ds = pydicom.dcmread(paths[5])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43589]
    ds.save_as(paths[5])
    with pytest.raises(DatasetError, match=rf"{paths[5].name}: mixed slice orientations"):
        read_series(tmp_path)


def test_files_without_the_preamble_give_a_clear_error(tmp_path: Path) -> None:
    """Some exporters omit the 128-byte preamble and 'DICM'. SimpleITK cannot read such a series;
    the error must name the folder and say so, not leak pydicom's InvalidDicomError."""
    stored = (np.arange(np.prod(SHAPE)) % 900 + 24).astype(np.uint16).reshape(SHAPE)
    files = _write(tmp_path / "full", stored)
    (tmp_path / "bare").mkdir()
    for path in files:
        data = path.read_bytes()
        assert data[128:132] == b"DICM"
        (tmp_path / "bare" / path.name).write_bytes(data[132:])
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(tmp_path / "bare" / files[0].name)
    with pytest.raises(DatasetError, match=r"bare: SimpleITK could not read the series.*preamble") as err:
        read_series(tmp_path / "bare")
    assert err.value.path.endswith("bare")


def test_volume_is_simpleitks_buffer_not_a_second_copy(tmp_path: Path) -> None:
    import gc

    import SimpleITK as sitk

    stored = (np.arange(np.prod(SHAPE)) % 2000 + 24).astype(np.uint16).reshape(SHAPE)
    _write(tmp_path, stored)
    hu, _, _, _ = read_series(tmp_path)
    base = hu
    while isinstance(base, np.ndarray) and base.base is not None:  # views down to what owns the pixels
        base = base.base
    assert isinstance(getattr(base, "image", None), sitk.Image)  # no copy: the array holds the image
    gc.collect()  # the image lives as long as the array: no dangling view
    np.testing.assert_array_equal(hu, stored[::-1, ::-1, :].astype(np.float32) - 1024)
    hu[0, 0, 0] = 5.0  # writable, like the copy it replaces


def test_ct_without_rescale_tags_is_refused_unless_stored_as_hu(tmp_path: Path) -> None:
    """Issue 11: CT without RescaleSlope/RescaleIntercept was taken as HU (+1024 HU off if stored HU + 1024)."""
    stored = np.full(SHAPE, 40, np.int16)
    _write(tmp_path, stored, intercept=None)
    with pytest.raises(DatasetError, match=r"1-\d{3}\.dcm: no RescaleSlope/RescaleIntercept in any slice.*stored_as_hu"):
        read_series(tmp_path)
    hu, *_ = read_series(tmp_path, stored_as_hu=True)
    assert float(hu.max()) == 40.0


def test_rescale_tags_in_only_some_slices_are_refused(tmp_path: Path) -> None:
    paths = _write(tmp_path, _stored())
    ds = pydicom.dcmread(paths[3])
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.save_as(paths[3], enforce_file_format=True)
    with pytest.raises(DatasetError, match=rf"{paths[3].name}: no RescaleSlope/RescaleIntercept here but 6 of 7 slices"):
        read_series(tmp_path, stored_as_hu=True)  # mixed presence is refused whatever the param


def test_colour_series_in_a_ct_folder_is_refused(tmp_path: Path) -> None:
    """An RGB (e.g. secondary capture) series holds no HU: windowing it as HU would be nonsense."""
    paths = _write(tmp_path, _stored())
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PhotometricInterpretation = "RGB"
        ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DatasetError, match=r"PhotometricInterpretation RGB .*expected MONOCHROME1/2"):
        read_series(tmp_path)


def test_blank_slice_thickness_marks_the_slice_axis_spacing_unknown(tmp_path: Path) -> None:
    _write(tmp_path, _stored(), thickness="", position_step=1.0)
    _, _, spacing, meta = read_series(tmp_path)
    assert meta["spacing_unknown"] == (2,) and spacing[2] == pytest.approx(1.0)
    other = tmp_path / "b"
    _write(other, _stored())
    assert read_series(other)[3]["spacing_unknown"] == ()
