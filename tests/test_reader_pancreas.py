"""The Pancreas-CT reader and its stand-in, checked against SOURCES.md: the TCIA tree, labels paired by case
number and by geometry or the published convention, HU, unknown spacing, per-subject problems."""

from __future__ import annotations

import gzip
import hashlib
import re
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
    assert (raw / LABELS / "label0001.nii.gz").is_file() and (raw / LABELS / "label0002.nii").is_file()
    assert (raw / ROOT / "LICENSE").is_file()
    metadata = (raw / ROOT / "metadata.csv").read_text().splitlines()
    assert metadata[0].startswith("Series UID,") and "\\PANCREAS_0001\\" in metadata[1]  # backslash locations
    generate(tmp_path, subjects=SUBJECTS, seed=4)
    assert _digest(tmp_path) == _digest(raw)



def good(raw: Path) -> list:
    return [r for r in reader.discover(raw) if r.problem is None]


def test_discover_pairs_by_case_number_nii_and_nii_gz(raw: Path) -> None:
    """SOURCES.md: TCIA labels are label<NNNN>.nii.gz, the seed/Kaggle copy label<NNNN>.nii: both pair by number."""
    refs = good(raw)
    assert [r.subject_id for r in refs] == [f"PANCREAS_{i:04d}" for i in range(1, SUBJECTS + 1)]
    for ref in refs:
        series, label = map(Path, ref.files)
        assert series.parent.parent.name == ref.subject_id and any(series.glob("*.dcm"))
        assert label.name.startswith(f"label{ref.option('case')}.nii")
    assert {Path(r.files[1]).suffix for r in refs} == {".gz", ".nii"}


def test_load_gives_hu_mask_and_provenance(raw: Path) -> None:
    pairings = set()
    for ref in good(raw):
        start = time.perf_counter()
        s = reader.load(ref)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"loading {ref.subject_id} took {elapsed:.2f} s"
        assert (s.layout, s.modality, s.orientation) == ("volume", "CT", "LPS")
        assert s.sources == ref.files
        assert s.image.dtype == np.float32 and s.mask.dtype == np.uint8
        assert s.image.shape == s.mask.shape and s.image.shape[0] in range(128, 161) and 20 <= s.image.shape[2] <= 40
        assert set(np.unique(s.mask).tolist()) == {0, 1}
        assert np.median(s.image[:4, :4, :]) == pytest.approx(-1000, abs=15)  # air in the corners
        organ = s.image[s.mask == 1]
        assert np.median(organ) > 100 and (organ > 70).mean() > 0.95  # mask sits on the enhancing organ
        assert s.image.max() > 600  # spine
        per_slice = s.mask.sum(axis=(0, 1))
        assert (per_slice == 0).any() and (per_slice > 0).any()
        pairings.add(s.meta["label_pairing"])
    assert pairings == {"published", "geometry"}


def test_published_label_convention_transposed_and_slice_k_is_instance_number_minus_1(raw: Path) -> None:
    """SOURCES.md: label slice k belongs to the DICOM with InstanceNumber k + 1 and is its pixel array
    transposed (the seed's rotate 90 + flip). The stand-in writes it so, checked here without the reader."""
    ref = good(raw)[0]
    label = np.asanyarray(nib.load(ref.files[1]).dataobj)
    for path in sorted(Path(ref.files[0]).glob("*.dcm"))[::5]:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        organ = label[:, :, int(ds.InstanceNumber) - 1].T == 1
        if organ.any():
            assert np.median(hu[organ]) > 100
    assert reader.load(ref).meta["label_pairing"] == "published"


def test_label_header_geometry_is_used_when_it_describes_the_series(raw: Path) -> None:
    subject = reader.load(good(raw)[2])
    assert subject.meta["label_pairing"] == "geometry" and "label_header_mismatch" not in subject.meta
    assert np.median(subject.image[subject.mask == 1]) > 100


def test_label_pairing_geometry_refuses_a_published_convention_label(raw: Path) -> None:
    with pytest.raises(DatasetError, match=OFF_GRID):
        reader.load(good(raw)[0], label_pairing="geometry")


def test_hu_stored_directly_with_intercept_0_signed(raw: Path) -> None:
    """SOURCES.md/issue: some downloads store HU directly (RescaleIntercept 0, signed int16)."""
    ref = good(raw)[1]
    ds = pydicom.dcmread(next(Path(ref.files[0]).glob("*.dcm")))
    assert float(ds.RescaleIntercept) == 0 and ds.PixelRepresentation == 1
    subject = reader.load(ref)
    assert subject.meta["rescale_intercept"] == 0.0 and subject.image.min() < -900


def test_positions_in_slice_units_and_blank_thickness_make_slice_spacing_unknown(raw: Path) -> None:
    """Slice positions 1.0 apart with a blank SliceThickness: the 1 mm is not a fact, so it is unknown."""
    ref = good(raw)[1]
    ds = pydicom.dcmread(next(Path(ref.files[0]).glob("*.dcm")))
    assert "SliceThickness" in ds and ds.SliceThickness in ("", None)  # present, blank
    subject = reader.load(ref)
    assert subject.meta["spacing_unknown"] == (2,) and subject.spacing[2] == pytest.approx(1.0)
    assert reader.load(good(raw)[0]).meta["spacing_unknown"] == ()


def test_stand_in_flaws_are_per_subject_problems(raw: Path) -> None:
    """A patient without a label and a label one slice short: listed, not fatal, refused by load."""
    refs = {r.subject_id: r for r in reader.discover(raw)}
    missing, short = refs[f"PANCREAS_{SUBJECTS + 1:04d}"], refs[f"PANCREAS_{SUBJECTS + 2:04d}"]
    assert "has no label" in missing.problem
    assert re.search(r"label has 7 slices but its series folder .* holds 8 DICOM files", short.problem)
    with pytest.raises(DatasetError, match="holds 8 DICOM files"):
        reader.load(short)


def test_label_without_series_partial_mirror_does_not_stop_discovery(copy: Path) -> None:
    """SOURCES.md: the Kaggle mirror lists PANCREAS_0001..0063 only: a label whose series is absent is
    that case's problem (skipped under on_error: skip), not the whole source's."""
    shutil.rmtree(copy / ROOT / "PANCREAS_0003")
    refs = {r.subject_id: r for r in reader.discover(copy)}
    assert "label has no patient folder PANCREAS_0003" in refs["PANCREAS_0003"].problem
    assert refs["PANCREAS_0001"].problem is None


def test_extra_top_folder_is_tolerated(raw: Path, tmp_path: Path) -> None:
    shutil.copytree(raw, tmp_path / "archive" / "pancreas-ct")
    refs = good(tmp_path)
    assert len(refs) == SUBJECTS and reader.load(refs[1]).mask.any()


def test_exclude_skips_cases(raw: Path) -> None:
    assert [r.subject_id for r in good(raw) if r.subject_id in
            {x.subject_id for x in reader.discover(raw, exclude=[2])}] == ["PANCREAS_0001", "PANCREAS_0003"]


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no PANCREAS_<nnnn> patient folders"):
        reader.discover(tmp_path)


def _rewrite_label(path: Path, change) -> None:
    img = nib.load(path, mmap=False)
    data, affine = change(np.asanyarray(img.dataobj).copy(), img.affine.copy())
    data_bytes = nib.Nifti1Image(data, affine).to_bytes()
    path.write_bytes(gzip.compress(data_bytes, mtime=0) if path.suffix == ".gz" else data_bytes)


def test_label_fitting_neither_geometry_nor_convention_is_refused(copy: Path) -> None:
    ref = good(copy)[0]
    _rewrite_label(Path(ref.files[1]), lambda d, a: (d[:-1], a))
    with pytest.raises(DatasetError, match=r"label0001\.nii\.gz: label does not fit its series .*neither its header "
                                           r"geometry nor the published convention"):
        reader.load(ref)


def test_geometry_label_off_by_an_origin_shift_falls_back_and_is_refused(copy: Path) -> None:
    ref = good(copy)[2]

    def shift(d, a):
        a[:3, 3] += [0, 0, 5.0]
        return d, a

    _rewrite_label(Path(ref.files[1]), shift)
    with pytest.raises(DatasetError, match=rf"{OFF_GRID}: origin shifted by 5 mm"):
        reader.load(ref, label_pairing="geometry")


def test_label_values_above_1_pass_on_to_prepare(copy: Path) -> None:
    """Multi-class labels are not refused by the reader: prepare.num_classes decides."""
    ref = good(copy)[0]
    _rewrite_label(Path(ref.files[1]), lambda d, a: (d * 2, a))
    assert set(np.unique(reader.load(ref).mask).tolist()) == {0, 2}


def test_truncated_label_and_series(copy: Path) -> None:
    ref = good(copy)[0]
    label = Path(ref.files[1])
    label.write_bytes(label.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"label0001\.nii\.gz: truncated or damaged"):
        reader.load(ref)
    slice_file = next(Path(ref.files[0]).glob("1-005.dcm"))
    slice_file.write_bytes(slice_file.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"1-005\.dcm: 1 of \d+ DICOM files are unreadable or cut short"):
        reader.load(ref)


def test_second_series_is_a_subject_problem_and_duplicate_case_stops(copy: Path) -> None:
    patient = copy / ROOT / "PANCREAS_0001"
    (study,) = patient.iterdir()
    shutil.copytree(study, patient / "01-01-2000-other-study")
    refs = {r.subject_id: r for r in reader.discover(copy)}
    assert "PANCREAS_0001: expected one folder of DICOM files, found" in refs["PANCREAS_0001"].problem
    shutil.copytree(copy / ROOT / "PANCREAS_0002", copy / "again" / "PANCREAS_0002")
    with pytest.raises(DatasetError, match="case 0002: .*; keep one copy"):
        reader.discover(copy)
