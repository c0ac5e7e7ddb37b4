"""The Pancreas-CT reader and synthetic stand-in: discovery, pairing by geometry, HU, errors."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from pipeline.errors import DatasetError
from pipeline.sources import get_reader
from pipeline.synth.pancreas import LABELS, ROOT, generate

reader = get_reader("pancreas")
SUBJECTS = 3
OFF_GRID = r"mask does not lie on the grid of its image .*Pancreas-\d+"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pancreas")
    generate(out, subjects=SUBJECTS, seed=4)
    return out


@pytest.fixture
def copy(raw: Path, tmp_path: Path) -> Path:
    """A private copy of the stand-in that a test may damage."""
    shutil.copytree(raw, tmp_path / "raw")
    return tmp_path / "raw"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_layout_is_tcia_and_output_is_byte_identical(raw: Path, tmp_path: Path) -> None:
    patient = raw / ROOT / "PANCREAS_0001"
    (study,) = patient.iterdir()
    (series,) = study.iterdir()
    assert study.name.startswith("11-24-2015-PANCREAS0001-Pancreas-") and series.name.startswith("Pancreas-")
    names = sorted(p.name for p in series.iterdir())
    assert names[0] == "1-001.dcm" and all(n.endswith(".dcm") for n in names)
    assert (raw / LABELS / "label0001.nii.gz").is_file()
    generate(tmp_path, subjects=SUBJECTS, seed=4)
    assert _digest(tmp_path) == _digest(raw)


def test_discover_pairs_series_and_labels(raw: Path) -> None:
    refs = reader.discover(raw)
    assert [r.subject_id for r in refs] == [f"PANCREAS_{i:04d}" for i in range(1, SUBJECTS + 1)]
    for ref in refs:
        series, label = map(Path, ref.files)
        assert series.parent.parent.name == ref.subject_id and any(series.glob("*.dcm"))
        assert label.name == f"label{ref.option('case')}.nii.gz"


def test_load_gives_hu_mask_and_provenance(raw: Path) -> None:
    stored_orientations = set()
    for ref in reader.discover(raw):
        start = time.perf_counter()
        s = reader.load(ref)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"loading {ref.subject_id} took {elapsed:.2f} s"
        assert (s.layout, s.modality, s.orientation) == ("volume", "CT", "LPS")
        assert s.sources == ref.files
        assert s.image.dtype == np.float32 and s.mask.dtype == np.uint8
        assert s.image.shape == s.mask.shape and s.image.shape[0] in range(128, 161) and 20 <= s.image.shape[2] <= 40
        assert 0.7 <= s.spacing[0] == s.spacing[1] <= 0.9 and 1.5 <= s.spacing[2] <= 2.5
        np.testing.assert_allclose(np.diag(s.affine)[:3], s.spacing, rtol=1e-6)
        assert set(np.unique(s.mask).tolist()) == {0, 1}
        assert np.median(s.image[:4, :4, :]) == pytest.approx(-1000, abs=15)  # air in the corners
        organ = s.image[s.mask == 1]
        assert np.median(organ) > 100 and (organ > 70).mean() > 0.95  # mask sits on the enhancing organ
        ring = (np.abs(s.image - 125) < 25) & (s.mask == 0)
        assert ring.sum() < 0.2 * s.mask.sum()
        assert s.image.max() > 600  # spine
        per_slice = s.mask.sum(axis=(0, 1))
        assert (per_slice == 0).any() and (per_slice > 0).any()
        stored_orientations.add(s.meta["mask_orientation"])
    assert "LPS" not in stored_orientations and len(stored_orientations) == SUBJECTS


def test_pairing_by_file_order_would_fail(raw: Path) -> None:
    """The seeds' way (slices by file name, raw label array) puts the mask off the organ."""
    for ref in reader.discover(raw):
        files = sorted(Path(ref.files[0]).glob("*.dcm"))
        naive = np.stack([pydicom.dcmread(f).pixel_array.T for f in files], axis=-1).astype(np.float32) - 1024
        label = np.asanyarray(nib.load(ref.files[1]).dataobj)
        assert naive.shape == label.shape
        assert np.median(naive[label == 1]) < 90
        subject = reader.load(ref)
        assert np.median(subject.image[subject.mask == 1]) > 100


def test_extra_top_folder_is_tolerated(raw: Path, tmp_path: Path) -> None:
    shutil.copytree(raw, tmp_path / "archive" / "pancreas-ct")
    refs = reader.discover(tmp_path)
    assert len(refs) == SUBJECTS and reader.load(refs[1]).mask.any()


def test_exclude_skips_cases(raw: Path) -> None:
    assert [r.subject_id for r in reader.discover(raw, exclude=[2])] == ["PANCREAS_0001", "PANCREAS_0003"]


def test_unpaired_patient_and_label_in_one_error(copy: Path) -> None:
    (copy / LABELS / "label0002.nii.gz").unlink()
    shutil.rmtree(copy / ROOT / "PANCREAS_0003")
    with pytest.raises(DatasetError, match="2 problem") as err:
        reader.discover(copy)
    assert "PANCREAS_0002 has no label0002.nii.gz" in str(err.value)
    assert "label0003.nii.gz has no patient folder PANCREAS_0003" in str(err.value)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no PANCREAS_<nnnn> patient folders"):
        reader.discover(tmp_path)


def _rewrite_label(path: Path, change) -> None:
    img = nib.load(path)
    data, affine = change(np.asanyarray(img.dataobj).copy(), img.affine.copy())
    path.write_bytes(gzip.compress(nib.Nifti1Image(data, affine).to_bytes(), mtime=0))


def test_label_shape_mismatch_names_both_files(copy: Path) -> None:
    ref = reader.discover(copy)[0]
    _rewrite_label(Path(ref.files[1]), lambda d, a: (d[:, :, :-1], a))
    with pytest.raises(DatasetError, match=rf"label0001\.nii\.gz: {OFF_GRID}: shape"):
        reader.load(ref)


def test_label_geometry_mismatch(copy: Path) -> None:
    ref = reader.discover(copy)[0]

    def shift(d, a):
        a[:3, 3] += [0, 0, 5.0]
        return d, a

    _rewrite_label(Path(ref.files[1]), shift)
    with pytest.raises(DatasetError, match=rf"label0001\.nii\.gz: {OFF_GRID}: origin shifted by 5 mm"):
        reader.load(ref)


def test_label_values_outside_0_1(copy: Path) -> None:
    ref = reader.discover(copy)[0]
    _rewrite_label(Path(ref.files[1]), lambda d, a: (d * 2, a))
    with pytest.raises(DatasetError, match=r"label0001\.nii\.gz: unexpected label values 2 in \d+ voxels"):
        reader.load(ref)


def test_truncated_label_and_series(copy: Path) -> None:
    ref = reader.discover(copy)[1]
    label = Path(ref.files[1])
    label.write_bytes(label.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"label0002\.nii\.gz: truncated or damaged"):
        reader.load(ref)
    slice_file = next(Path(ref.files[0]).glob("1-005.dcm"))
    slice_file.write_bytes(slice_file.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"1-005\.dcm: 1 of \d+ DICOM files are unreadable or cut short"):
        reader.load(ref)


def test_second_series_and_duplicate_case_are_reported(copy: Path) -> None:
    patient = copy / ROOT / "PANCREAS_0001"
    (study,) = patient.iterdir()
    shutil.copytree(study, patient / "01-01-2000-other-study")
    shutil.copytree(copy / ROOT / "PANCREAS_0002", copy / "again" / "PANCREAS_0002")
    with pytest.raises(DatasetError, match="2 problem") as err:
        reader.discover(copy)
    assert "PANCREAS_0001: expected one folder of DICOM files, found" in str(err.value)
    assert "case 0002 found more than once" in str(err.value)
