"""Synthetic TCIA Pancreas-CT: per-patient DICOM CT series plus NIfTI pancreas labels, as published."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel import orientations as ornts
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from pipeline.synth.phantom import ellipsoid, smooth_noise

ROOT = "Pancreas-CT"
LABELS = "TCIA_pancreas_labels-02-05-2017"
STORED_OFFSET = 1024  # stored value = HU + 1024, undone by RescaleIntercept -1024
# What is uncertain about the published files is written both ways, one case each (cycling):
#   "tcia":   uint16 HU + 1024, RescaleIntercept -1024, positions in mm, label<n>.nii.gz in the
#             published convention (label[col, row, k] = slice with InstanceNumber k + 1, header
#             affine a plain pixdim diagonal that does not describe the series);
#   "hu":     signed int16 stored directly in HU (RescaleIntercept 0), ImagePositionPatient in slice
#             units and a blank SliceThickness (some re-exports), label<n>.nii (Kaggle/seed copy);
#   "header": label<n>.nii.gz whose header geometry does describe the series (stored RAS).
VARIANTS = ("tcia", "hu", "header")


def uid(seed: int, *parts: object) -> str:
    """A UID that depends only on the seed and ``parts``, so reruns write identical files."""
    return generate_uid(entropy_srcs=["pancreas-synth", str(seed), *map(str, parts)])


def lps_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """RAS+ affine of an axial series stored with DICOM's (column, row, slice) = (L, P, S) axes."""
    aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    aff[:3, 3] = [-origin[0], -origin[1], origin[2]]
    return aff


def write_series(
    folder: Path,
    stored: np.ndarray,
    *,
    spacing: Sequence[float],
    origin: Sequence[float],
    patient_id: str,
    study_uid: str,
    series_uid: str,
    file_names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    modality: str = "CT",
    seed: int = 0,
    intercept: int | None = -STORED_OFFSET,
    position_step: float | None = None,
    thickness: str | None = None,
) -> list[Path]:
    """Write a CT series, one file per slice, from ``stored`` (X=column, Y=row, Z=slice) uint16.

    ``orientation`` is ImageOrientationPatient (row then column direction cosines, LPS); the
    default axial one puts the column index towards patient left, the row index towards posterior.
    Slice ``k`` lies at ``origin + k * spacing[2] * normal`` (normal = row x column direction).
    ``file_names[k]`` names slice ``k``'s file and ``instance_numbers[k]`` its InstanceNumber
    (default: number 1 and ``1-001.dcm`` for the last slice along the normal, counting down, as
    TCIA numbers them from the top). ``stored`` uint16 is written unsigned, int16 signed;
    ``intercept`` None leaves out RescaleSlope/RescaleIntercept; ``position_step`` overrides the
    gap between ImagePositionPatient values (1.0: positions in slice units); ``thickness``
    overrides SliceThickness ("" writes it blank). Returns the paths in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    nx, ny, nz = stored.shape
    if instance_numbers is None:
        instance_numbers = [nz - k for k in range(nz)]
    if file_names is None:
        file_names = [f"1-{number:03d}.dcm" for number in instance_numbers]
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    paths = []
    for k in range(nz):
        ds = _slice_header(
            patient_id=patient_id, study_uid=study_uid, series_uid=series_uid, modality=modality,
            sop_uid=uid(seed, series_uid, k), instance=int(instance_numbers[k]),
            position=tuple(np.asarray(origin, float) + k * spacing[2] * normal), spacing=spacing,
            frame_uid=uid(seed, study_uid, "frame"), orientation=orientation,
        )
        if position_step is not None:
            position = np.asarray(origin, float) + k * position_step * normal
            ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
            ds.SliceLocation = f"{float(np.dot(position, normal)):.6g}"
        if thickness is not None:
            ds.SliceThickness = thickness
        if intercept is None:
            del ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType
        else:
            ds.RescaleIntercept = str(intercept)
        signed = stored.dtype.kind == "i"
        ds.PixelRepresentation = int(signed)
        ds.Rows, ds.Columns = ny, nx
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype("<i2" if signed else "<u2").tobytes()
        path = folder / file_names[k]
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def _slice_header(
    *, patient_id: str, study_uid: str, series_uid: str, modality: str, sop_uid: str, instance: int,
    position: Sequence[float], spacing: Sequence[float], frame_uid: str, orientation: Sequence[float],
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20151124"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality = modality
    ds.Manufacturer = "synthetic stand-in"
    ds.StudyDescription = "Pancreas"
    ds.SeriesDescription = "Pancreas"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientSex = "O"
    ds.SliceThickness = f"{spacing[2]:.4g}"
    ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
    ds.FrameOfReferenceUID = frame_uid
    ds.SliceLocation = f"{float(np.dot(position, np.cross(orientation[:3], orientation[3:]))):.6g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing, column spacing
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = str(-STORED_OFFSET)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def abdomen_phantom(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """An axial abdomen-like HU volume and its pancreas mask, on DICOM LPS (column, row, slice) axes.

    Air -1000, subcutaneous fat about -100, soft tissue and organs 30-60 (liver on the patient's
    right, spleen on the left), spine and ribs about 700, and an enhancing curved pancreas
    (100-150 HU) lying anterior to the spine from head (right) to tail (left); the mask is exactly
    the enhancing organ, and slices above and below it have no pancreas.
    """
    nx, ny, nz = shape
    sx, sy, sz = spacing
    cx, cy = nx / 2 + rng.uniform(-3, 3), ny / 2 + rng.uniform(-3, 3)
    half_w, half_h = nx * rng.uniform(0.40, 0.45), ny * rng.uniform(0.30, 0.35)
    body2d = ellipsoid((nx, ny), (cx, cy), (half_w, half_h))
    inner2d = ellipsoid((nx, ny), (cx, cy), (half_w - 8 / sx, half_h - 8 / sy))
    hu2d = np.full((nx, ny), -1000.0, np.float32)
    hu2d[body2d] = -100.0
    hu2d[inner2d] = 40.0
    # Column index grows towards the patient's left, row index towards posterior.
    liver = ellipsoid((nx, ny), (cx - half_w * 0.45, cy - half_h * 0.1), (half_w * 0.4, half_h * 0.6))
    spleen = ellipsoid((nx, ny), (cx + half_w * 0.6, cy + half_h * 0.3), (half_w * 0.18, half_h * 0.3))
    hu2d[liver & inner2d] = 60.0
    hu2d[spleen & inner2d] = 50.0
    spine_c = (cx, cy + half_h * 0.6)
    spine = ellipsoid((nx, ny), spine_c, (9 / sx, 9 / sy))
    canal = ellipsoid((nx, ny), (spine_c[0], spine_c[1] + 9 / sy), (3.5 / sx, 3.5 / sy))
    hu2d[spine] = 700.0
    hu2d[canal] = 20.0
    hu = np.repeat(hu2d[:, :, None], nz, axis=2)

    # Pancreas: a curved, elongated ellipsoid in mm, head on the right (low column) to tail.
    x = (np.arange(nx)[:, None, None] - cx) * sx
    y = (np.arange(ny)[None, :, None] - (cy + half_h * 0.15)) * sy
    z = (np.arange(nz)[None, None, :] - nz * rng.uniform(0.4, 0.6)) * sz
    angle = np.deg2rad(rng.uniform(-20, -5))
    u = x * np.cos(angle) - y * np.sin(angle)
    v = x * np.sin(angle) + y * np.cos(angle) - 0.012 * u**2 + 4.0
    length, width, height = rng.uniform(28, 36), rng.uniform(6, 9), nz * sz * rng.uniform(0.2, 0.3)
    dist = (u / length) ** 2 + (v / width) ** 2 + (z / height) ** 2
    wobble = smooth_noise(rng, (nx, ny, nz), 0.08, sigma=3.0)
    mask = (dist <= 1.0 + wobble) & inner2d[:, :, None]
    hu[mask] = rng.uniform(110, 140)

    hu += smooth_noise(rng, hu.shape, 8.0, sigma=1.5) + rng.normal(0, 6.0, hu.shape).astype(np.float32)
    hu[~body2d] = -1000.0 + rng.normal(0, 3.0, (int((~body2d).sum()), nz)).astype(np.float32)
    return hu.astype(np.float32), mask.astype(np.uint8)


def _gzip(data: bytes) -> bytes:
    """Gzip with mtime 0 and no file name, so the bytes depend only on the content."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def save_label(path: Path, mask_lps: np.ndarray, affine: np.ndarray, orientation: str) -> None:
    """Save ``mask_lps`` (DICOM axes, RAS ``affine``) as NIfTI stored in ``orientation``, its header
    describing the series' geometry (gzipped when ``path`` ends in ``.gz``)."""
    tf = ornts.ornt_transform(ornts.io_orientation(affine), ornts.axcodes2ornt(tuple(orientation)))
    data = ornts.apply_orientation(mask_lps, tf).astype(np.uint8)
    new_aff = affine @ ornts.inv_ornt_aff(tf, mask_lps.shape)
    img = nib.Nifti1Image(data, new_aff)
    img.set_qform(new_aff, code=1)
    img.set_sform(new_aff, code=1)
    img.header.set_xyzt_units("mm")
    path.write_bytes(_gzip(img.to_bytes()) if path.suffix == ".gz" else img.to_bytes())


def save_published_label(path: Path, mask_lps: np.ndarray, instance_numbers: Sequence[int],
                         spacing: Sequence[float]) -> None:
    """Save the label in the published convention: ``label[col, row, k]`` is the slice whose
    InstanceNumber is ``k + 1``, under a plain pixdim affine that says nothing of the series."""
    data = np.zeros_like(mask_lps, dtype=np.uint8)
    for k, number in enumerate(instance_numbers):
        data[:, :, number - 1] = mask_lps[:, :, k]
    img = nib.Nifti1Image(data, np.diag([*map(float, spacing), 1.0]))
    img.header.set_xyzt_units("mm")
    path.write_bytes(_gzip(img.to_bytes()) if path.suffix == ".gz" else img.to_bytes())


def _metadata_row(seed: int, case: int, study: str, series: str, count: int) -> str:
    location = f".\\Pancreas-CT\\PANCREAS_{case:04d}\\{study}\\{series}"
    return ",".join([uid(seed, case, "series"), "Pancreas-CT", "", f"PANCREAS_{case:04d}", uid(seed, case, "study"),
                     "Pancreas", "11-24-2015", "Pancreas", "CT", "CT Image Storage", str(count), location])


METADATA_HEADER = ("Series UID,Collection,3rd Party Analysis,Subject ID,Study UID,Study Description,Study Date,"
                   "Series Description,Modality,SOP Class Name,Number of Images,File Location")


def _case(out: Path, rng: np.random.Generator, *, case: int, seed: int, variant: str, size: Sequence[int],
          slices: Sequence[int], pixel_mm: Sequence[float], slice_mm: Sequence[float], label: str | None,
          label_depth_offset: int = 0) -> str:
    """Write one case's series (and label, unless ``label`` is None); returns its metadata.csv row."""
    n = int(rng.integers(size[0] // 8, size[1] // 8 + 1)) * 8
    nz = int(rng.integers(slices[0], slices[1] + 1))
    px = round(float(rng.uniform(*pixel_mm)), 4)
    dz = round(float(rng.choice(np.arange(slice_mm[0], slice_mm[1] + 1e-6, 0.25))), 2)
    spacing = (px, px, dz)
    origin = (-(n - 1) * px / 2, -(n - 1) * px / 2 + float(rng.uniform(-20, 20)), -float(rng.integers(100, 400)))
    hu, mask = abdomen_phantom(rng, (n, n, nz), spacing)
    number = int(rng.integers(10000, 100000))
    pid = f"PANCREAS_{case:04d}"
    study = f"11-24-2015-PANCREAS{case:04d}-Pancreas-{number}"
    series = f"Pancreas-{number}"
    instance_numbers = [nz - k for k in range(nz)]
    common = dict(spacing=spacing, origin=origin, patient_id=pid, study_uid=uid(seed, case, "study"),
                  series_uid=uid(seed, case, "series"), seed=seed, instance_numbers=instance_numbers)
    folder = out / ROOT / pid / study / series
    if variant == "hu":
        stored = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        write_series(folder, stored, intercept=0, position_step=1.0, thickness="", **common)
    else:
        stored = np.clip(np.rint(hu + STORED_OFFSET), 0, 4095).astype(np.uint16)
        write_series(folder, stored, **common)
    if label is not None:
        path = out / LABELS / label
        if label_depth_offset:
            mask = mask[:, :, : nz - label_depth_offset]
            instance_numbers = [k + 1 for k in range(nz - label_depth_offset)]
        if variant == "header" and not label_depth_offset:
            save_label(path, mask, lps_affine(spacing, origin), "RAS")
        else:
            save_published_label(path, mask, instance_numbers, spacing)
    return _metadata_row(seed, case, study, series, nz)


def generate(
    out: Path,
    *,
    subjects: int = 6,
    seed: int = 0,
    size: Sequence[int] = (128, 160),
    slices: Sequence[int] = (20, 40),
    pixel_mm: Sequence[float] = (0.7, 0.9),
    slice_mm: Sequence[float] = (1.5, 2.5),
    flawed: bool = True,
) -> None:
    """Write ``Pancreas-CT/PANCREAS_<nnnn>/<study>/<series>/1-NNN.dcm``, ``metadata.csv``, ``LICENSE``
    and ``TCIA_pancreas_labels-02-05-2017/label<nnnn>.nii.gz`` (``.nii`` for the "hu" variant).

    ``subjects`` good cases cycle through ``VARIANTS``; per case the in-plane size, slice count,
    pixel and slice spacing are drawn from the given ranges (real data: 512x512, 1.5-2.5 mm
    slices). With ``flawed``, two small extra cases follow, as in real mirrors: one patient
    without a label and one label one slice shorter than its series.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    (out / LABELS).mkdir(parents=True, exist_ok=True)
    ranges = dict(size=size, slices=slices, pixel_mm=pixel_mm, slice_mm=slice_mm)
    rows = []
    for case in range(1, subjects + 1):
        variant = VARIANTS[(case - 1) % len(VARIANTS)]
        label = f"label{case:04d}.nii" + ("" if variant == "hu" else ".gz")
        rows.append(_case(out, rng, case=case, seed=seed, variant=variant, label=label, **ranges))
    if flawed:
        small = dict(size=(64, 64), slices=(8, 8), pixel_mm=pixel_mm, slice_mm=slice_mm)
        rows.append(_case(out, rng, case=subjects + 1, seed=seed, variant="tcia", label=None, **small))
        rows.append(_case(out, rng, case=subjects + 2, seed=seed, variant="tcia",
                          label=f"label{subjects + 2:04d}.nii.gz", label_depth_offset=1, **small))
    (out / ROOT / "metadata.csv").write_text("\n".join([METADATA_HEADER, *rows]) + "\n")
    (out / ROOT / "LICENSE").write_text("Creative Commons Attribution 3.0 Unported (synthetic stand-in)\n")
