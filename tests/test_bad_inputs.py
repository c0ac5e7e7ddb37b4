"""Bad-input corpus: corrupted synthetic sources run end to end through stages.prepare.

Each case starts from a real synthetic source (pipeline.synth), breaks one thing the way real
downloads break, and checks that prepare
  * with ``on_error: fail`` exits with one line naming the file and the problem (no traceback),
    leaves no output folder and writes nothing anywhere else;
  * with ``on_error: skip``, where the problem belongs to one subject, records that subject and the
    reason in stats.json and prepares the others; problems of the source as a whole (unpaired
    files, unsafe or empty archives) fail under ``skip`` too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest
import yaml

from pipeline.synth import get_synthesizer
from stages import prepare

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = {"ms": 2, "lasc": 2, "pancreas": 2, "faz": 4, "aisd": 2}


# ---- corruption helpers -------------------------------------------------------------------------


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def edit_nifti(path: Path, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    img = nib.load(path, mmap=False)  # no memmap: an uncompressed .nii is rewritten in place
    data = edit(np.asarray(img.dataobj))
    header = img.header.copy()
    header.set_data_dtype(data.dtype)
    nib.save(nib.Nifti1Image(data, img.affine, header), path)


def rewrite_zip(path: Path, edit: Callable[[list[tuple[zipfile.ZipInfo, bytes]]], list]) -> None:
    """Rewrite ``path`` with the (ZipInfo, bytes) entries ``edit`` returns."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    entries = edit(entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)


def replace_member(path: Path, name: str, data: bytes) -> None:
    def edit(entries):
        assert name in [i.filename for i, _ in entries], name
        return [(i, data if i.filename == name else d) for i, d in entries]

    rewrite_zip(path, edit)


def add_member(path: Path, info: zipfile.ZipInfo | str, data: bytes) -> None:
    if isinstance(info, str):
        info = zipfile.ZipInfo(info)
    info.compress_type = zipfile.ZIP_DEFLATED
    rewrite_zip(path, lambda entries: [*entries, (info, data)])


def first_member(path: Path, suffix: str = ".png", index: int = 0) -> str:
    with zipfile.ZipFile(path) as zf:
        return sorted(n for n in zf.namelist() if n.endswith(suffix) and "__MACOSX" not in n)[index]


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def series_folder(raw: Path, case: str = "0001") -> Path:
    return next(p.parent for p in sorted((raw / "Pancreas-CT" / f"PANCREAS_{case}").rglob("*.dcm")))


def slices_by_position(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.dcm"))
    return sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))


# ---- the corpus ---------------------------------------------------------------------------------
# Each corruptor breaks ``raw`` in place and returns the subject id it broke (for on_error: skip),
# or None when the source as a whole is unusable (discovery fails under both policies).


def ms_truncated(raw: Path) -> str:
    truncate(raw / "Patient-1" / "1-Flair.nii")
    return "Patient-1"


def ms_corrupt_header(raw: Path) -> str:
    path = raw / "Patient-1" / "1-Flair.nii"
    data = bytearray(path.read_bytes())
    data[42:44] = struct.pack("<h", -5)  # dim[1] (NIfTI-1 header, dim starts at byte 40)
    path.write_bytes(bytes(data))
    return "Patient-1"


def ms_image_without_mask(raw: Path) -> None:
    (raw / "Patient-2" / "2-LesionSeg-Flair.nii").unlink()


def ms_mask_without_image(raw: Path) -> None:
    (raw / "Patient-1" / "1-Flair.nii").unlink()


def lasc_file(raw: Path, folder: str, case: str = "la_003") -> Path:
    """The stand-in's volume (``.nii`` in the Kaggle form, ``.nii.gz`` in the MSD form)."""
    return next(p for p in sorted(raw.rglob(f"{folder}/{case}.nii*")) if not p.name.startswith("."))


def lasc_truncated_gz(raw: Path) -> str:
    truncate(lasc_file(raw, "imagesTr"), 0.6)
    return "la_003"


def lasc_nan(raw: Path) -> str:
    def edit(data):
        data = data.astype(np.float32)
        data[data.shape[0] // 2, :, :] = np.nan
        data[0, 0, 0] = np.inf
        return data

    edit_nifti(lasc_file(raw, "imagesTr"), edit)
    return "la_003"


def lasc_stray_labels(raw: Path) -> str:
    def edit(data):
        data = data.astype(np.uint8)
        data[tuple(np.argwhere(data == 1)[0])] = 3
        return data

    edit_nifti(lasc_file(raw, "labelsTr"), edit)
    return "la_003"


def lasc_shape_mismatch(raw: Path) -> str:
    edit_nifti(lasc_file(raw, "labelsTr"), lambda d: d[:, :, :-3])
    return "la_003"


def lasc_mask_without_image(raw: Path) -> None:
    lasc_file(raw, "imagesTr", "la_004").unlink()


def pancreas_dicom_cut_short(raw: Path) -> str:
    truncate(slices_by_position(series_folder(raw))[5], 0.6)
    return "PANCREAS_0001"


def pancreas_missing_slice(raw: Path) -> str:
    files = slices_by_position(series_folder(raw))
    files[len(files) // 2].unlink()
    return "PANCREAS_0001"


def pancreas_two_series(raw: Path) -> str:
    target = series_folder(raw, "0001")
    for path in sorted(series_folder(raw, "0002").glob("*.dcm")):
        shutil.copy2(path, target / f"x{path.name}")
    return "PANCREAS_0001"


def pancreas_image_without_mask(raw: Path) -> str:
    """A patient without its label is that patient's problem: skip leaves it out."""
    next((raw / "TCIA_pancreas_labels-02-05-2017").glob("label0002.nii*")).unlink()
    return "PANCREAS_0002"


def pancreas_mask_without_image(raw: Path) -> str:
    """A label without its series (a partial mirror) is that case's problem: skip leaves it out."""
    shutil.rmtree(raw / "Pancreas-CT" / "PANCREAS_0002")
    return "PANCREAS_0002"


def pancreas_stray_labels(raw: Path) -> str:
    def edit(data):
        data = data.astype(np.uint8)
        data[tuple(np.argwhere(data == 1)[0])] = 7
        return data

    edit_nifti(next((raw / "TCIA_pancreas_labels-02-05-2017").glob("label0001.nii*")), edit)
    return "PANCREAS_0001"


def aisd_case(raw: Path) -> str:
    return first_member(raw / "image.zip").split("/")[1]


def aisd_shape_mismatch(raw: Path) -> str:
    name = first_member(raw / "mask.zip", index=3)
    replace_member(raw / "mask.zip", name, png(np.zeros((40, 30), np.uint8)))
    return name.split("/")[1]


def aisd_not_a_png(raw: Path) -> str:
    name = first_member(raw / "image.zip", index=2)
    jpeg = cv2.imencode(".jpg", np.full((64, 64), 90, np.uint8))[1].tobytes()
    replace_member(raw / "image.zip", name, jpeg)
    return name.split("/")[1]


def aisd_stray_mask_values(raw: Path) -> str:
    name = first_member(raw / "mask.zip", index=1)
    with zipfile.ZipFile(raw / "mask.zip") as zf:
            mask = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
    mask[:4, :4] = 128
    replace_member(raw / "mask.zip", name, png(mask))
    return name.split("/")[1]


def aisd_encrypted_member(raw: Path) -> str:
    """Set the 'encrypted' flag of one member in place (zipfile cannot write encrypted members)."""
    name = first_member(raw / "image.zip", index=2)
    data = bytearray((raw / "image.zip").read_bytes())
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1 and data[local + 30:local + 30 + len(encoded)] != encoded:
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1 and data[central + 46:central + 46 + len(encoded)] != encoded:
        central = data.find(b"PK\x01\x02", central + 4)
    data[local + 6] |= 1
    data[central + 8] |= 1
    (raw / "image.zip").write_bytes(bytes(data))
    return name.split("/")[1]


def aisd_empty_archive(raw: Path) -> None:
    with zipfile.ZipFile(raw / "mask.zip", "w"):
        pass


def aisd_dotdot_entry(raw: Path) -> None:
    add_member(raw / "image.zip", f"../{aisd_case(raw)}/99.png", png(np.zeros((8, 8), np.uint8)))


def faz_absolute_entry(raw: Path) -> None:
    add_member(raw / "FAZ.zip", "/tmp/FAZ_sgementation/deep_all/99.png", png(np.zeros((8, 8), np.uint8)))


def faz_symlink_entry(raw: Path) -> None:
    info = zipfile.ZipInfo("FAZ_sgementation/deep_all/99.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    add_member(raw / "FAZ.zip", info, b"/etc/passwd")


def faz_zip_bomb(raw: Path) -> None:
    add_member(raw / "FAZ.zip", "FAZ_sgementation/deep_all/99.png", bytes(8 << 20))  # 8 MiB of zeros


def faz_not_a_png(raw: Path) -> str:
    replace_member(raw / "FAZ.zip", "FAZ_sgementation/deep_all/1.png", b"<html><body>404 Not Found</body></html>")
    return "deep_1"


def faz_image_without_mask(raw: Path) -> None:
    rewrite_zip(raw / "FAZ.zip",
                lambda entries: [(i, d) for i, d in entries if i.filename != "FAZ_sgementation/deep_all/2.json"])


def faz_empty_archive(raw: Path) -> None:
    with zipfile.ZipFile(raw / "FAZ.zip", "w"):
        pass


def ms_header_declares_gigabytes(raw: Path) -> str:
    """A header whose dimensions promise gigabytes (a decompression bomb, or a damaged header)."""
    path = raw / "Patient-1" / "1-Flair.nii"
    data = bytearray(path.read_bytes())
    data[42:48] = struct.pack("<hhh", 4096, 4096, 400)  # dim[1..3]: 6.7 G voxels, 25 GiB as float32
    path.write_bytes(bytes(data))
    return "Patient-1"


def lasc_constant_image(raw: Path) -> str:
    edit_nifti(lasc_file(raw, "imagesTr"), lambda d: np.zeros_like(d))
    return "la_003"


def lasc_duplicate_id(raw: Path) -> None:
    """An MSD dataset.json (the Kaggle form ships none) listing one case twice."""
    task = lasc_file(raw, "imagesTr").parent.parent
    cases = sorted(p.name for p in (task / "imagesTr").iterdir() if not p.name.startswith("."))
    training = [{"image": f"./imagesTr/{c}", "label": f"./labelsTr/{c}"} for c in cases]
    (task / "dataset.json").write_text(json.dumps({"training": [*training, dict(training[0])]}))


def pancreas_gantry_tilt(raw: Path) -> str:
    """Slices stacked 15 degrees off their normal, as a tilted gantry writes them."""
    for k, path in enumerate(slices_by_position(series_folder(raw))):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + k * float(ds.SliceThickness or 2.0) * np.tan(np.radians(15)), z]
        ds.GantryDetectorTilt = 15
        ds.save_as(path)
    return "PANCREAS_0001"


def pancreas_enhanced_ct(raw: Path) -> str:
    """The series as one Enhanced (multi-frame) CT file instead of one file per slice."""
    files = slices_by_position(series_folder(raw))
    slices = [pydicom.dcmread(p) for p in files]
    ds = slices[0]
    ds.NumberOfFrames = len(slices)
    ds.PixelData = b"".join(s.PixelData for s in slices)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    for path in files:
        path.unlink()
    ds.save_as(files[0].parent / "1-001.dcm")
    return "PANCREAS_0001"


def pancreas_mixed_slice_sizes(raw: Path) -> str:
    path = slices_by_position(series_folder(raw))[4]
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    ds.Rows, ds.Columns = pixels.shape[0] // 2, pixels.shape[1] // 2
    ds.PixelData = np.ascontiguousarray(pixels[::2, ::2]).tobytes()
    ds.save_as(path)
    return "PANCREAS_0001"


def faz_nested_zip(raw: Path) -> None:
    buffer = raw / "inner.zip"
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("FAZ_sgementation/deep_all/99.png", png(np.zeros((8, 8), np.uint8)))
    add_member(raw / "FAZ.zip", "FAZ_sgementation/inner.zip", buffer.read_bytes())
    buffer.unlink()


def faz_double_colon_folder(raw: Path) -> None:
    (raw / "FAZ::v2").mkdir()
    (raw / "FAZ.zip").rename(raw / "FAZ::v2" / "FAZ.zip")


@dataclass(frozen=True)
class Case:
    key: str
    corrupt: Callable[[Path], str | None]
    file: str  # regex the message must match where it names the file
    problem: str  # regex for the problem


CASES = {
    "ms-truncated-nii": Case("ms", ms_truncated, r"Patient-1/1-Flair\.nii", r"truncated|damaged"),
    "ms-corrupt-header": Case("ms", ms_corrupt_header, r"Patient-1/1-Flair\.nii", r"corrupt NIfTI header"),
    "ms-image-without-mask": Case("ms", ms_image_without_mask, r"2-Flair\.nii", r"images without a <n>-LesionSeg-Flair mask"),
    "ms-mask-without-image": Case("ms", ms_mask_without_image, r"1-LesionSeg-Flair\.nii", r"masks without a <n>-Flair image"),
    "lasc-truncated-gz": Case("lasc", lasc_truncated_gz, r"imagesTr/la_003\.nii", r"truncated|damaged"),
    "lasc-nan": Case("lasc", lasc_nan, r"imagesTr/la_003\.nii", r"NaN"),
    "lasc-stray-labels": Case("lasc", lasc_stray_labels, r"labelsTr/la_003\.nii", r"mask holds labels \[3\].*prepare\.num_classes"),
    "lasc-shape-mismatch": Case("lasc", lasc_shape_mismatch, r"labelsTr/la_003\.nii", r"mask does not lie on the grid of its image"),
    "lasc-mask-without-image": Case("lasc", lasc_mask_without_image, r"la_004\.nii", r"labels without an image"),
    "pancreas-dicom-cut-short": Case("pancreas", pancreas_dicom_cut_short, r"PANCREAS_0001/.*/1-\d{3}\.dcm", r"DICOM files are unreadable or cut short"),
    "pancreas-missing-slice": Case("pancreas", pancreas_missing_slice, r"PANCREAS_0001/", r"missing slice \(non-uniform spacing\)|label has \d+ slices but its series folder .* holds \d+ DICOM files"),
    "pancreas-two-series": Case("pancreas", pancreas_two_series, r"PANCREAS_0001/", r"expected one DICOM series per folder, found 2|label has \d+ slices but its series folder .* holds \d+ DICOM files"),
    "pancreas-image-without-mask": Case("pancreas", pancreas_image_without_mask, r"PANCREAS_0002", r"has no label0002\.nii\.gz"),
    "pancreas-mask-without-image": Case("pancreas", pancreas_mask_without_image, r"label0002\.nii", r"has no patient folder"),
    "pancreas-stray-labels": Case("pancreas", pancreas_stray_labels, r"label0001\.nii\.gz", r"mask holds labels \[7\]"),
    "aisd-shape-mismatch": Case("aisd", aisd_shape_mismatch, r"mask\.zip::mask/\d{7}/\d+\.png", r"mask is 40x30 but its image"),
    "aisd-not-a-png": Case("aisd", aisd_not_a_png, r"image\.zip::image/\d{7}/\d+\.png", r"says PNG but the content is JPEG"),
    "aisd-stray-mask-values": Case("aisd", aisd_stray_mask_values, r"mask\.zip::mask/\d{7}/\d+\.png", r"mask values \[0, .*128.*\]: expected the publisher's classes 0-5"),
    "aisd-encrypted-member": Case("aisd", aisd_encrypted_member, r"image\.zip::image/\d{7}/\d+\.png", r"encrypted"),
    "aisd-empty-archive": Case("aisd", aisd_empty_archive, r"mask\.zip", r"empty archive"),
    "aisd-dotdot-entry": Case("aisd", aisd_dotdot_entry, r"image\.zip", r"'\.\.' path component"),
    "faz-absolute-entry": Case("faz", faz_absolute_entry, r"FAZ\.zip", r"absolute path"),
    "faz-symlink-entry": Case("faz", faz_symlink_entry, r"FAZ\.zip", r"symbolic link"),
    "faz-zip-bomb": Case("faz", faz_zip_bomb, r"FAZ\.zip", r"compression ratio \d+ exceeds max_ratio"),
    "faz-not-a-png": Case("faz", faz_not_a_png, r"FAZ\.zip::FAZ_sgementation/deep_all/1\.png", r"says PNG but"),
    "faz-image-without-mask": Case("faz", faz_image_without_mask, r"deep_all/2\.png", r"image without LabelMe JSON"),
    "faz-empty-archive": Case("faz", faz_empty_archive, r"FAZ\.zip", r"empty archive"),
    # nothing lost, ever: hostile sizes, real-world oddities and useless output
    "ms-header-declares-gigabytes": Case("ms", ms_header_declares_gigabytes, r"Patient-1/1-Flair\.nii",
                                         r"4096x4096x400 .* exceeds max_volume_bytes=\d+"),
    "lasc-constant-image": Case("lasc", lasc_constant_image, r"imagesTr/la_003\.nii",
                                r"image is constant \(0 everywhere\) under a non-empty mask"),
    "lasc-duplicate-id": Case("lasc", lasc_duplicate_id, r"Left_Atrial_Segmentation/dataset\.json",
                              r"duplicate case ids under 'training': 'la_003' \(entries 0, 2\)"),
    "pancreas-gantry-tilt": Case("pancreas", pancreas_gantry_tilt, r"PANCREAS_0001/",
                                 r"gantry tilt: slices are stacked 15\.0 degrees off their normal"),
    "pancreas-enhanced-ct": Case("pancreas", pancreas_enhanced_ct, r"PANCREAS_0001/.*/1-001\.dcm",
                                 r"Enhanced CT file with \d+ frames: expected one slice per file"),
    "pancreas-mixed-slice-sizes": Case("pancreas", pancreas_mixed_slice_sizes, r"PANCREAS_0001/.*\.dcm",
                                       r"slice is \d+x\d+ \(rows x columns\) but \d+ of the \d+ slices"),
    "faz-nested-zip": Case("faz", faz_nested_zip, r"FAZ\.zip::FAZ_sgementation/inner\.zip", r"a zip inside the zip"),
    "faz-double-colon-folder": Case("faz", faz_double_colon_folder, r"FAZ::v2/FAZ\.zip", r"the path contains '::'"),
}


# ---- running prepare ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Callable[[str], Path]:
    """Synthesise each source once per module (small), on demand."""
    root = tmp_path_factory.mktemp("pristine")
    made: dict[str, Path] = {}

    def get(key: str) -> Path:
        if key not in made:
            out = root / key
            out.mkdir()
            extra = {"flawed": False} if key == "pancreas" else {}  # its real-world flaws have their own tests
            get_synthesizer(key).generate(out, subjects=SUBJECTS[key], seed=7, **extra)
            made[key] = out
        return made[key]

    return get


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 64
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_prepare(key: str, raw: Path, out: Path, params: Path, on_error: str) -> str | None:
    """The SystemExit message of prepare, or None when it succeeded."""
    try:
        prepare.main(["--dataset", key, "--raw", str(raw), "--out", str(out), "--params", str(params),
                      "--n-jobs", "1", "--on-error", on_error])
    except SystemExit as exc:
        assert exc.code == 1, f"prepare exited {exc.code} for bad data; data problems exit 1"
        return str(exc)  # the one line the stage edge printed
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, pristine, params_file, tmp_path):
    case = CASES[name]
    raw = tmp_path / "raw"
    shutil.copytree(pristine(case.key), raw)
    subject = case.corrupt(raw)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    before = files_under(tmp_path)

    out = outputs / "prepared"
    message = run_prepare(case.key, raw, out, params_file, "fail")
    assert message is not None, f"{name}: prepare accepted the corrupted source"
    assert message.startswith(f"prepare@{case.key}: ") and "Traceback" not in message
    assert re.search(case.file, message), f"{name}: file not named: {message}"
    assert re.search(case.problem, message), f"{name}: problem not named: {message}"
    assert not out.exists(), f"{name}: output folder created"
    assert files_under(tmp_path) == before, f"{name}: files written: {files_under(tmp_path) - before}"

    skipped = run_prepare(case.key, raw, out, params_file, "skip")
    if subject is None:  # the source as a whole is unusable: skip cannot help
        assert skipped is not None and not out.exists()
        assert files_under(tmp_path) == before
    else:
        assert skipped is None, f"{name}: on_error skip still failed: {skipped}"
        stats = json.loads((out / "stats.json").read_text())
        assert list(stats["skipped_subjects"]) == [subject]
        reason = stats["skipped_subjects"][subject]
        assert re.search(case.file, reason) and re.search(case.problem, reason), reason
        subjects = {row.split(",")[1] for row in (out / "manifest.csv").read_text().splitlines()[1:]}
        assert subjects and subject not in subjects  # the others were prepared, this one not
        written = files_under(tmp_path) - before
        assert written == {"outputs/prepared", *(f"outputs/prepared/{f}" for f in files_under(out))}
    assert "\n" not in message, f"{name}: message is not one line:\n{message}"


def test_archive_limits_come_from_params(pristine, tmp_path):
    """The zip limits are reader options in params: lowering max_member_bytes refuses a clean source."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 64
    params["datasets"]["faz"]["prepare"]["reader"] = {"max_member_bytes": 1000}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    message = run_prepare("faz", pristine("faz"), tmp_path / "out", path, "fail")
    assert message is not None and "exceeds max_member_bytes=1000" in message
    assert not (tmp_path / "out").exists()


def test_cli_prints_one_line_and_no_traceback(pristine, params_file, tmp_path):
    """Through the real command line: exit status 1, the message on stderr, no traceback."""
    raw = tmp_path / "raw"
    shutil.copytree(pristine("lasc"), raw)
    lasc_nan(raw)
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(raw), "--out",
         str(tmp_path / "out"), "--params", str(params_file), "--n-jobs", "2"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"prepare@lasc: .*imagesTr/la_003\.nii: \d+ voxels are NaN or Inf", last), proc.stderr
    assert not (tmp_path / "out").exists()


# ---- hostile paths and outputs (issue: nothing lost, ever) ---------------------------------------

HOSTILE_NAME = "My Heart's \"scans\"; $(touch PWNED) `touch PWNED2` ; echo x > PWNED3 Ærø-ñ"


@pytest.mark.slow
def test_dvc_repro_with_a_hostile_raw_path(pristine, dvc_repo, tmp_path):
    """A raw folder whose path holds spaces, quotes, ``;``, ``$( )``, backticks and non-ASCII letters:
    `dvc repro` prepares it and no shell ever runs a word of it."""
    from tests.conftest import dvc, edit_params

    raw = tmp_path / HOSTILE_NAME / "Task02 Heart"
    shutil.copytree(pristine("lasc"), raw)

    def edit(params):
        params["datasets"]["lasc"]["raw"] = str(raw)
        params["image_size"] = 64

    edit_params(dvc_repo, edit)
    dvc(dvc_repo, "repro", "prepare@lasc")
    manifest = (dvc_repo / "data" / "prepared" / "lasc" / "manifest.csv").read_text().splitlines()
    assert len(manifest) > 1 and {row.split(",")[1] for row in manifest[1:]} == {"la_003", "la_004"}
    for folder in (dvc_repo, tmp_path, raw.parent, ROOT, Path.cwd()):
        assert not list(folder.glob("PWNED*")), f"a shell ran part of the path in {folder}"
    assert "${item.raw}" not in (dvc_repo / "dvc.yaml").read_text().split("prepare:")[1].split("deps:")[0]


def test_prepare_out_equal_to_raw_keeps_the_download(pristine, params_file, tmp_path):
    """`prepare --raw D --out D` used to replace the download with the PNG set and exit 0."""
    raw = tmp_path / "download"
    shutil.copytree(pristine("ms"), raw)
    (raw / "my notes.txt").write_text("keep me\n")
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--dataset", "ms", "--raw", str(raw), "--out", str(raw),
         "--params", str(params_file), "--n-jobs", "1"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a command-line mistake
    last = proc.stderr.strip().splitlines()[-1]
    assert str(raw) in last and "same path as the input" in last, proc.stderr
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before


def test_volume_limits_come_from_params(pristine, tmp_path):
    """max_volume_bytes is a reader option: lowering it refuses a clean DICOM series before reading pixels."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 64
    params["datasets"]["pancreas"]["prepare"]["reader"] = {"max_volume_bytes": 1000}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    message = run_prepare("pancreas", pristine("pancreas"), tmp_path / "out", path, "fail")
    assert message is not None and re.search(r"PANCREAS_0001/.*: declares \d+x\d+x\d+ .* exceeds max_volume_bytes=1000",
                                             message), message
    assert not (tmp_path / "out").exists()


def test_clutter_beside_dicom_slices_is_ignored_and_counted(pristine, params_file, tmp_path):
    """README, LICENSE, DICOMDIR (which has the DICOM preamble too) and Thumbs.db beside the slices,
    and an extension-less note in a patient folder: prepared as if absent, listed in stats.json."""
    raw = tmp_path / "raw"
    shutil.copytree(pristine("pancreas"), raw)
    series = series_folder(raw)
    (series / "README").write_text("exported by PACS\n")
    (series / "LICENSE").write_text("CC BY 3.0\n")
    (series / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))
    (series / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (series / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (raw / "Pancreas-CT" / "PANCREAS_0002" / "notes").write_text("scanner was recalibrated\n")
    out = tmp_path / "out"
    assert run_prepare("pancreas", raw, out, params_file, "fail") is None
    stats = json.loads((out / "stats.json").read_text())
    assert stats["skipped_subjects"] == {} and sum(stats["subjects"].values()) == 2
    assert stats["integrity"]["reader_counts"]["ignored_files"] == 4
    assert any("PANCREAS_0002/notes" in note for note in stats["notes"]), stats["notes"]


def test_augment_refuses_a_transform_that_leaves_uint8(pristine, params_file, tmp_path):
    """Normalize turns the 8-bit images into floats around 0: written as PNG they are black."""
    from stages import augment

    prepared = tmp_path / "prepared"
    assert run_prepare("faz", pristine("faz"), prepared, params_file, "fail") is None
    params = yaml.safe_load(params_file.read_text())
    params["datasets"]["faz"]["augment"]["transforms"] = [{"name": "HorizontalFlip", "p": 0.5},
                                                          {"name": "Normalize", "p": 0.5}]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = tmp_path / "augmented"
    with pytest.raises(SystemExit) as err:
        augment.main(["--dataset", "faz", "--params", str(path), "--in", str(prepared), "--out", str(out),
                      "--n-jobs", "1"])
    message = str(err.value)
    assert err.value.code == 2, message  # a params problem, found by the schema before any work
    assert re.search(r"transforms\[1\]:? Normalize: turns the 8-bit image into float32", message), message
    assert "\n" not in message and not out.exists()
