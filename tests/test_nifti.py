"""pipeline.formats.nifti and pipeline.formats.discover: canonical orientation, clear errors, tolerant discovery."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.formats.discover import find_nifti, natural_key, nifti_stem
from pipeline.errors import DatasetError
from pipeline.formats.nifti import check_same_grid, load_label_volume, load_volume, save_volume

SHAPE = (10, 12, 8)
SPACING = (1.0, 2.0, 3.0)
# Marker on the patient's left (low x in RAS), anterior (high y) and superior (high z).
MARKER = (2, 9, 6)


def ras_affine(shape=SHAPE, spacing=SPACING) -> np.ndarray:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)
    return aff


def marker_volume() -> np.ndarray:
    data = np.zeros(SHAPE, np.int16)
    data[MARKER] = 100
    data[0, 0, 0] = 7  # right-posterior-inferior corner... in RAS: left-posterior-inferior
    return data


def write(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.to_filename(str(path))
    return path


def test_ras_and_lps_files_of_same_anatomy_load_identically(tmp_path):
    ras = marker_volume()
    ras_aff = ras_affine()
    # The same anatomy stored LPS: x runs right->left, y anterior->posterior; voxel (0,0,0) of the
    # LPS array is the RAS voxel (X-1, Y-1, 0).
    lps = ras[::-1, ::-1, :].copy()
    lps_aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    lps_aff[:3, 3] = (ras_aff @ [SHAPE[0] - 1, SHAPE[1] - 1, 0, 1])[:3]
    a = load_volume(write(tmp_path / "ras.nii.gz", ras, ras_aff))
    b = load_volume(write(tmp_path / "lps.nii", lps, lps_aff))

    assert (a.orientation, b.orientation) == ("RAS", "LPS")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    assert a.array.dtype == np.int16 and a.array.shape == SHAPE  # whole numbers <= 16 bit: kept as stored
    assert tuple(np.argwhere(b.array == 100)[0]) == MARKER
    x, y, z = (b.affine @ [*MARKER, 1])[:3]
    assert x < 0 and y > 0 and z > 0  # left, anterior, superior in RAS+ mm
    assert b.spacing == SPACING


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "LAS", "PSL", "ILA"])
def test_save_volume_round_trips_any_stored_orientation(tmp_path, orientation):
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    path = tmp_path / "v.nii.gz"
    save_volume(path, data, ras_affine(), orientation=orientation)
    assert "".join(nib.aff2axcodes(nib.load(path).affine)) == orientation
    vol = load_volume(path)
    assert vol.orientation == orientation
    np.testing.assert_array_equal(vol.array, data)
    np.testing.assert_allclose(vol.affine, ras_affine(), atol=1e-5)


def test_scaled_int_data_is_returned_in_physical_units(tmp_path):
    img = nib.Nifti1Image(np.full(SHAPE, 10, np.int16), ras_affine())
    img.header.set_slope_inter(2.0, -5.0)
    img.to_filename(str(tmp_path / "s.nii"))
    assert float(load_volume(tmp_path / "s.nii").array.max()) == 15.0


def test_4d_with_singleton_time_axis_is_squeezed(tmp_path):
    data = marker_volume()[..., None]
    vol = load_volume(write(tmp_path / "v4.nii.gz", data, ras_affine()))
    assert vol.array.shape == SHAPE


@pytest.mark.parametrize("shape", [(10, 12), (10, 12, 8, 3)])
def test_non_3d_data_is_rejected(tmp_path, shape):
    path = write(tmp_path / "bad.nii.gz", np.zeros(shape, np.int16), np.eye(4))
    with pytest.raises(DatasetError, match=r"expected a 3D volume.*found shape"):
        load_volume(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "empty.nii").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty\.nii: empty file"):
        load_volume(tmp_path / "empty.nii")


def test_truncated_gzip_is_reported(tmp_path):
    path = write(tmp_path / "t.nii.gz", np.random.default_rng(0).integers(0, 999, SHAPE).astype(np.int16), ras_affine())
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match=r"t\.nii\.gz: truncated or damaged"):
        load_volume(path)


def test_uncompressed_data_shorter_than_header_says(tmp_path):
    path = write(tmp_path / "t.nii", marker_volume(), ras_affine())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"truncated or damaged file: voxel data shorter"):
        load_volume(path)


@pytest.mark.parametrize("offset, value", [(70, 1234), (42, -5)])  # datatype code, dim[1]
def test_corrupt_header_is_reported(tmp_path, offset, value):
    path = write(tmp_path / "c.nii", marker_volume(), ras_affine())
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 2] = np.int16(value).tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"c\.nii: corrupt NIfTI header"):
        load_volume(path)


@pytest.mark.parametrize("name, payload", [("x.nii", b"hello world" * 50), ("x.nii.gz", b"hello world" * 50)])
def test_not_a_nifti_file(tmp_path, name, payload):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DatasetError, match="not a NIfTI file"):
        load_volume(tmp_path / name)


def test_gzip_of_junk_is_not_a_nifti(tmp_path):
    (tmp_path / "j.nii.gz").write_bytes(gzip.compress(b"\x00" * 400, mtime=0))
    with pytest.raises(DatasetError, match="not a NIfTI file"):
        load_volume(tmp_path / "j.nii.gz")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_intensities(tmp_path, bad):
    data = marker_volume().astype(np.float32)
    data[1, 1, 1] = bad
    with pytest.raises(DatasetError, match=r"1 voxels are NaN or Inf"):
        load_volume(write(tmp_path / "n.nii.gz", data, ras_affine()))


def test_float_binary_mask_becomes_uint8(tmp_path):
    data = (marker_volume() > 0).astype(np.float32)
    vol = load_label_volume(write(tmp_path / "m.nii.gz", data, ras_affine()), allowed_labels=(0, 1))
    assert vol.array.dtype == np.uint8
    assert set(np.unique(vol.array).tolist()) == {0, 1}
    assert vol.array.sum() == 2


def test_label_outside_allowed_set_is_named(tmp_path):
    data = marker_volume().astype(np.uint8)
    data[data == 100] = 2
    path = write(tmp_path / "m.nii.gz", data, ras_affine())
    with pytest.raises(DatasetError, match=r"m\.nii\.gz: unexpected label values 2, 7 in 2 voxels: expected only \[0, 1\]"):
        load_label_volume(path, allowed_labels=(0, 1))
    assert load_label_volume(path, allowed_labels=range(8)).array.max() == 7


def test_non_integer_labels_are_rejected(tmp_path):
    data = np.zeros(SHAPE, np.float32)
    data[3, 3, 3] = 0.5
    with pytest.raises(DatasetError, match=r"non-integer label values 0\.5"):
        load_label_volume(write(tmp_path / "m.nii", data, ras_affine()), allowed_labels=(0, 1))


def test_check_same_grid_accepts_float32_header_noise():
    aff = ras_affine()
    check_same_grid("i.nii", aff, SHAPE, "m.nii", aff + 1e-6, SHAPE)


@pytest.mark.parametrize(
    "shape, change, expected",
    [
        ((10, 12, 9), None, r"shape \(10, 12, 9\) vs image \(10, 12, 8\)"),
        (SHAPE, "origin", r"origin shifted by 2\.5 mm"),
        (SHAPE, "spacing", r"spacing \[1\.0, 2\.0, 4\.0\] mm vs image \[1\.0, 2\.0, 3\.0\] mm"),
        (SHAPE, "direction", r"direction axes LAS vs image RAS"),
    ],
)
def test_check_same_grid_says_what_differs(shape, change, expected):
    aff = ras_affine()
    other = aff.copy()
    if change == "origin":
        other[0, 3] += 2.5
    elif change == "spacing":
        other[2, 2] = 4.0
    elif change == "direction":
        other[0, 0] = -1.0
    with pytest.raises(DatasetError, match=rf"m\.nii: mask does not lie on the grid of its image i\.nii: {expected}"):
        check_same_grid("i.nii", aff, SHAPE, "m.nii", other, shape)


def test_find_nifti_ignores_decoys_and_hidden_files_and_sorts_naturally(tmp_path):
    for rel in ["a/p10.nii", "a/p2.NII.GZ", "a/._p2.nii.gz", "a/.hidden.nii", "__MACOSX/a/p3.nii",
                ".git/x.nii", "a/notes.txt", "a/p1.nii.gz.bak"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_nifti(tmp_path)]
    assert found == ["a/p2.NII.GZ", "a/p10.nii"]
    assert nifti_stem("la_003.nii.gz") == "la_003" and nifti_stem("X.NII") == "X" and nifti_stem("x.txt") is None
    assert sorted(["P-10", "P-9"], key=natural_key) == ["P-9", "P-10"]
    with pytest.raises(DatasetError, match="folder not found"):
        find_nifti(tmp_path / "missing")


def test_affine_that_points_no_axis_anywhere_is_a_corrupt_header(tmp_path):
    """A damaged sform can keep a non-zero determinant yet leave an axis without a direction
    (nibabel's aff2axcodes gives None): a DatasetError, not a TypeError from ''.join."""
    affine = np.array([[-1.0, 0, 0, 0], [2.5e27, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    path = write(tmp_path / "s.nii", marker_volume(), affine)
    with pytest.raises(DatasetError, match=r"s\.nii: corrupt NIfTI header: affine .* maps no axis to a direction"):
        load_volume(path)


# --- loading internals: isal gzip with plain-gzip fallback, memory-mapped .nii --------------------


def test_gzip_is_read_through_isal_with_plain_gzip_fallback_giving_the_same_volume(tmp_path, monkeypatch):
    from isal import igzip
    from nibabel.openers import ImageOpener

    from pipeline.formats import nifti

    data = np.random.default_rng(1).integers(-1000, 2000, (40, 30, 7)).astype(np.int16)
    path = write(tmp_path / "v.nii.gz", data, np.diag([-0.8, -0.8, 2.0, 1.0]))  # LPS: flipped on load
    with ImageOpener(str(path)) as f:
        assert isinstance(f.fobj, igzip.IGzipFile)
    fast = load_volume(path)
    monkeypatch.setattr(nifti, "igzip", None)
    with ImageOpener(str(path)) as f:
        assert not isinstance(f.fobj, igzip.IGzipFile)
    plain = load_volume(path)
    assert fast.array.tobytes() == plain.array.tobytes() and np.array_equal(fast.affine, plain.affine)
    assert np.array_equal(fast.array, data[::-1, ::-1].astype(np.float32))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match=r"v\.nii\.gz: truncated or damaged"):
        load_volume(path)


def test_gzip_writes_stay_nibabels_byte_for_byte(tmp_path):
    import pipeline.formats.nifti  # noqa: F401  (registers the isal reader)

    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    write(tmp_path / "a.nii.gz", data, ras_affine())
    header = nib.Nifti1Image(data, ras_affine())
    header.set_qform(ras_affine(), code=1)
    header.set_sform(ras_affine(), code=1)
    expected = gzip.compress(header.to_bytes(), compresslevel=1, mtime=0)
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes()) == gzip.decompress(expected)
    assert (tmp_path / "a.nii.gz").read_bytes()[10:] == expected[10:]  # same deflate stream (header flags aside)


def test_uncompressed_nii_is_mapped_but_the_arrays_do_not_follow_the_file(tmp_path):
    image = write(tmp_path / "i.nii", np.full(SHAPE, 5, np.float32), ras_affine())
    label = write(tmp_path / "l.nii", np.ones(SHAPE, np.uint8), ras_affine())
    vol, lab = load_volume(image), load_label_volume(label, allowed_labels=(0, 1))
    assert not isinstance(vol.array, np.memmap) and not isinstance(lab.array, np.memmap)
    write(image, np.full(SHAPE, 9, np.float32), ras_affine())  # same size, rewritten in place
    write(label, np.zeros(SHAPE, np.uint8), ras_affine())
    assert (vol.array == 5).all() and (lab.array == 1).all()
    vol.array[0, 0, 0] = 1  # ours to change


@pytest.mark.parametrize("stored, kept", [
    (np.int16, np.int16), (np.uint16, np.uint16), (np.uint8, np.uint8), (np.int32, np.float32),
    (np.float64, np.float32),
])
def test_small_integer_volumes_keep_their_type_others_become_float32(tmp_path, stored, kept):
    data = np.random.default_rng(2).integers(0, 200, SHAPE).astype(stored)
    vol = load_volume(write(tmp_path / "v.nii.gz", data, np.diag([-0.8, -0.8, 2.0, 1.0])))
    assert vol.array.dtype == kept
    assert np.array_equal(vol.array, data[::-1, ::-1])


def test_scaled_integer_volume_is_float32_in_scaled_units(tmp_path):
    img = nib.Nifti1Image(np.full(SHAPE, 10, np.int16), ras_affine())
    img.header.set_slope_inter(0.5, -3.0)
    img.to_filename(str(tmp_path / "s.nii.gz"))
    vol = load_volume(tmp_path / "s.nii.gz")
    assert vol.array.dtype == np.float32 and np.all(vol.array == 2.0)


@pytest.mark.parametrize("spec", [{"mode": "percentile", "low": 0.5, "high": 99.5},
                                  {"mode": "window", "center": 40, "width": 400}])
def test_integer_volume_gives_the_grey_of_its_float32_values(tmp_path, spec):
    """Keeping int16 is a speed change only: the same uint8 as the float32 volume the readers gave before."""
    from pipeline.slices.intensity import to_uint8

    data = np.random.default_rng(3).normal(300, 400, (64, 48, 9)).astype(np.int16)
    vol = load_volume(write(tmp_path / "ct.nii.gz", data, np.diag([-0.8, -0.8, 2.0, 1.0])))
    assert vol.array.dtype == np.int16
    assert np.array_equal(to_uint8(vol.array, spec=spec), to_uint8(vol.array.astype(np.float32), spec=spec))


def test_chunked_gzip_reads_give_the_same_volume(tmp_path, monkeypatch):
    """nibabel reads a whole volume with one readinto; ours fills it a chunk at a time: same bytes."""
    from pipeline.formats import nifti

    data = np.random.default_rng(7).integers(-1000, 2000, (40, 30, 7)).astype(np.int16)
    path = write(tmp_path / "v.nii.gz", data, np.diag([-0.8, -0.8, 2.0, 1.0]))
    monkeypatch.setattr(nifti, "_READ_CHUNK", 999)  # an odd size: many calls, none aligned to a voxel
    chunked = load_volume(path)
    monkeypatch.setattr(nifti, "igzip", None)
    plain = load_volume(path)
    assert chunked.array.tobytes() == plain.array.tobytes() and np.array_equal(chunked.array, data[::-1, ::-1])
