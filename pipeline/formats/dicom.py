"""The one DICOM series reader: slices ordered by position, HU values, RAS+ canonical geometry."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import DatasetError
from pipeline.formats.nifti import MAX_VOLUME_BYTES, check_volume_size, ornts

if TYPE_CHECKING:  # pydicom and SimpleITK: ~0.15 s to import, so only when a series is read
    import pydicom
    import SimpleITK as sitk

DICOM_SUFFIXES = {"", ".dcm", ".dicom", ".ima"}
NAMED_SUFFIXES = {".dcm", ".dicom", ".ima"}  # files named as DICOM slices: a damaged one is an error, not clutter
# What publishers and file managers leave beside the slices; never a slice, whatever the content
# (a DICOMDIR carries the DICOM preamble too).
CLUTTER_NAMES = {"dicomdir", "readme", "license", "licence", "thumbs.db", ".ds_store", "desktop.ini"}
ENHANCED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
}
MAX_TILT_DEGREES = 0.5  # slices stacked further off their normal than this are a tilted (sheared) series
_HEADER_TAGS = [
    "Modality", "ImageOrientationPatient", "ImagePositionPatient", "SeriesInstanceUID", "StudyInstanceUID",
    "PatientID", "RescaleSlope", "RescaleIntercept", "SeriesDescription", "InstanceNumber",
    "Rows", "Columns", "BitsAllocated", "NumberOfFrames", "SOPClassUID", "GantryDetectorTilt",
    "PhotometricInterpretation", "SliceThickness", "SpacingBetweenSlices",
]
GREY = ("MONOCHROME1", "MONOCHROME2")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_slice_file(path: Path) -> bool:
    """True for a file that may be a DICOM slice, judged by name and content, not by suffix alone:
    ``.dcm``/``.dicom``/``.ima`` files, and suffix-less files with the ``DICM`` preamble. Hidden
    files, DICOMDIR, README, LICENSE, Thumbs.db and other suffixes are clutter, not slices."""
    name = path.name.lower()
    if name.startswith(".") or name in CLUTTER_NAMES or path.suffix.lower() not in DICOM_SUFFIXES:
        return False
    if path.suffix.lower() in NAMED_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def dicom_files(folder: Path) -> list[Path]:
    """The files in ``folder`` that may be DICOM slices (see :func:`is_slice_file`), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_slice_file(p))


def clutter_files(folder: Path) -> list[Path]:
    """Visible files in ``folder`` that are not DICOM slices (README, DICOMDIR, Thumbs.db...): ignored, counted."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and not is_slice_file(p))


def canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``array`` and its RAS ``affine`` to RAS+ exactly as nibabel's ``as_closest_canonical``."""
    ornt = ornts.io_orientation(affine)
    if np.array_equal(ornt, ornts.axcodes2ornt(("R", "A", "S"))):
        return array, affine
    return ornts.apply_orientation(array, ornt), affine @ ornts.inv_ornt_aff(ornt, array.shape)


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """RAS+ affine mapping (x, y, z) = (column, row, slice) indices of a SimpleITK image to mm.

    SimpleITK geometry is LPS (DICOM patient coordinates); RAS flips the sign of x and y.
    """
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), float)
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


class _SitkBuffer:
    """Lends SimpleITK's pixel buffer to numpy and keeps its image alive as the array's base, so the
    volume is not copied a second time (``GetArrayViewFromImage`` alone leaves a dangling view)."""

    def __init__(self, image: sitk.Image) -> None:
        self.image = image
        import SimpleITK as sitk

        interface = dict(sitk.GetArrayViewFromImage(image).__array_interface__)
        interface["data"] = (interface["data"][0], False)  # writable, as the copy was: the image is ours alone
        self.__array_interface__ = interface


def _owning_view(image: sitk.Image) -> np.ndarray:
    """``image``'s pixels as a ``(Z, Y, X)`` array sharing its buffer and owning the image."""
    return np.asarray(_SitkBuffer(image))


def read_series(
    folder: Path, *, modality: str | None = "CT", spacing_tolerance: float = 0.1, max_bytes: int = MAX_VOLUME_BYTES,
    stored_as_hu: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict[str, Any]]:
    """Read the single DICOM series in ``folder``.

    Slices are ordered by position along the slice normal (GDCM sorting), never by file name;
    RescaleSlope/RescaleIntercept are applied, so CT comes back in HU.

    Args:
        folder: a folder holding exactly one series (one file per slice).
        modality: the Modality tag every slice must carry (None: accept any).
        spacing_tolerance: largest allowed deviation of the gap between consecutive slices from
            the median gap, as a fraction of it (a larger one means a missing slice).
        max_bytes: largest volume to load, in bytes as float32 (see ``nifti.check_volume_size``),
            checked from the headers before any pixel is read.
        stored_as_hu: the series stores HU directly and carries no RescaleSlope/RescaleIntercept
            (some re-exports); without it a CT series lacking them is refused, because its stored
            values may be HU + 1024 and would come out 1024 HU too bright.

    Returns:
        ``(image, affine, spacing, meta)``: float32 ``(X, Y, Z)`` array in RAS+ canonical
        orientation, its 4x4 RAS+ affine in mm, ``(sx, sy, sz)`` in mm, and ``meta`` with the
        series' ``orientation`` as stored (axis codes, e.g. ``"LPS"``), UIDs, patient id,
        modality, rescale, the slice files and their InstanceNumbers in position order,
        ``ignored_files`` (the names of the non-slice files beside them: README, DICOMDIR...), the
        ``stored_affine`` (before RAS+ reorientation) and ``spacing_unknown``: the canonical axes
        whose spacing the header does not really give (no SliceThickness or SpacingBetweenSlices:
        positions may then be in slice units, not mm).

    Raises:
        DatasetError: no DICOM files, several series, unreadable or cut-short files, wrong
            modality, multi-frame files, mixed orientations or slice sizes, gantry tilt, missing or
            duplicate slices, a volume over ``max_bytes``.
    """
    import pydicom
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(folder, "expected a folder holding one DICOM series, found no such folder")
    candidates = dicom_files(folder)
    if not candidates:
        raise DatasetError(folder, "no DICOM files (.dcm or no suffix) found; point the reader at a series folder")
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    by_series = {sid: reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    if len(by_series) > 1:
        listing = ", ".join(f"{sid} ({len(files)} files)" for sid, files in by_series.items())
        raise DatasetError(
            folder, f"expected one DICOM series per folder, found {len(by_series)}: {listing}; "
            "move each series into its own folder"
        )
    names = [Path(n) for n in next(iter(by_series.values()), [])]
    unreadable = sorted(set(candidates) - set(names))
    if unreadable:
        shown = ", ".join(p.name for p in unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        raise DatasetError(
            unreadable[0] if len(unreadable) == 1 else folder,
            f"{len(unreadable)} of {len(candidates)} DICOM files are unreadable or cut short ({shown}); "
            "download them again",
        )
    try:  # force: GDCM accepts files without the 128-byte preamble, so pydicom must read them too
        headers = [pydicom.dcmread(n, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True)
                   for n in names]
    except Exception as exc:  # noqa: BLE001  (pydicom raises InvalidDicomError, a bare Exception)
        raise DatasetError(folder, f"a DICOM header cannot be read ({type(exc).__name__}: {exc}); "
                                   "download the series again") from exc
    _check_frames(names, headers)
    _check_sizes(folder, names, headers, max_bytes=max_bytes)  # before geometry: an odd-sized scout names itself
    _check_headers(folder, names, headers, modality=modality, spacing_tolerance=spacing_tolerance)
    _check_pixels(folder, names, headers, modality=modality, stored_as_hu=stored_as_hu)

    reader.SetFileNames([str(n) for n in names])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        with open(names[0], "rb") as f:
            bare = f.read(132)[128:] != b"DICM"
        hint = "; its files lack the 128-byte DICOM preamble: save them again with one" if bare else ""
        raise DatasetError(folder, f"SimpleITK could not read the series: {str(err).strip()[:300]}{hint}") from err
    array = np.transpose(_owning_view(image), (2, 1, 0))
    affine = sitk_affine(image)
    stored_affine, stored_shape = affine, tuple(int(n) for n in array.shape)
    stored = "".join(ornts.aff2axcodes(affine))
    array, affine = canonical(array, affine)  # views: each axial slice stays one contiguous block
    spacing = tuple(round(float(s), 6) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    first = headers[0]
    meta = {
        "orientation": stored,
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "study_uid": str(first.get("StudyInstanceUID", "")),
        "patient_id": str(first.get("PatientID", "")),
        "modality": str(first.get("Modality", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "rescale_slope": float(first.get("RescaleSlope", 1.0)),
        "rescale_intercept": float(first.get("RescaleIntercept", 0.0)),
        "files": tuple(str(n) for n in names),
        "ignored_files": tuple(p.name for p in clutter_files(folder)),
        "instance_numbers": tuple(_instance_number(h) for h in headers),
        "stored_affine": stored_affine,
        "stored_shape": stored_shape,  # (columns, rows, slices) as read, before RAS+ reorientation
        "spacing_unknown": _unknown_spacing_axes(headers, stored_affine),
    }
    return array, affine, spacing, meta


def _check_frames(names: list[Path], headers: list[pydicom.Dataset]) -> None:
    """Raise on an Enhanced (multi-frame) file: a whole volume in one file, not one slice per file."""
    for name, h in zip(names, headers):
        frames = int(h.get("NumberOfFrames", 1) or 1)
        kind = ENHANCED_SOP_CLASSES.get(str(h.get("SOPClassUID", "")))
        if frames > 1 or kind:
            what = f"{kind or 'a multi-frame'} file with {frames} frames"
            raise DatasetError(name, f"{what}: expected one slice per file (classic CT Image Storage); convert it "
                                     "to single-frame slices (e.g. dcm2niix to NIfTI, or emf2sf) and point the "
                                     "reader at those")


def _check_sizes(folder: Path, names: list[Path], headers: list[pydicom.Dataset], *, max_bytes: int) -> None:
    """Raise on slices of different sizes (the odd file named) and on a volume over ``max_bytes``."""
    sizes = [(int(h.get("Rows", 0) or 0), int(h.get("Columns", 0) or 0)) for h in headers]
    usual = Counter(sizes).most_common(1)[0][0]  # ties: the first slice's size
    odd = [i for i, size in enumerate(sizes) if size != usual]
    if odd:
        first = odd[0]
        raise DatasetError(
            names[first], f"slice is {sizes[first][0]}x{sizes[first][1]} (rows x columns) but {len(sizes) - len(odd)} "
            f"of the {len(sizes)} slices in {folder.name} are {usual[0]}x{usual[1]} ({len(odd)} odd file(s)); "
            "remove the odd files (a scout or localizer?) or download the series again")
    bits = max(int(h.get("BitsAllocated", 16) or 16) for h in headers)
    check_volume_size(folder, (usual[1], usual[0], len(names)), f"u{max(1, bits // 8)}", max_bytes=max_bytes)


def _present(header: pydicom.Dataset, tag: str) -> bool:
    """The tag is there with a value (a blank ``SliceThickness`` counts as absent)."""
    value = header.get(tag)
    return value is not None and str(value).strip() != ""


def _instance_number(header: pydicom.Dataset) -> int | None:
    return int(header.InstanceNumber) if _present(header, "InstanceNumber") else None


def _unknown_spacing_axes(headers: list[pydicom.Dataset], stored_affine: np.ndarray) -> tuple[int, ...]:
    """Canonical axes whose spacing is not given in mm: the slice axis when no slice carries a
    SliceThickness or SpacingBetweenSlices (positions are then all there is, and some exports
    write them in slice units)."""
    if any(_present(h, "SliceThickness") or _present(h, "SpacingBetweenSlices") for h in headers):
        return ()
    slice_axis = int(ornts.io_orientation(stored_affine)[2, 0])
    return (slice_axis,)


def _check_pixels(folder: Path, names: list[Path], headers: list[pydicom.Dataset], *, modality: str | None,
                  stored_as_hu: bool) -> None:
    """Refuse colour slices in a CT series and CT whose conversion to HU is missing or mixed."""
    colour = [(n, h.get("PhotometricInterpretation")) for n, h in zip(names, headers)
              if _present(h, "PhotometricInterpretation") and str(h.PhotometricInterpretation) not in GREY]
    if colour and modality == "CT":
        raise DatasetError(colour[0][0], f"PhotometricInterpretation {colour[0][1]} ({len(colour)} of {len(names)} "
                                         f"files): expected MONOCHROME1/2 greyscale CT; a colour series (screen "
                                         "capture, secondary capture) holds no HU: leave it out of the CT folder")
    has = [_present(h, "RescaleSlope") and _present(h, "RescaleIntercept") for h in headers]
    if any(has) and not all(has):
        odd = names[has.index(False)]
        raise DatasetError(odd, f"no RescaleSlope/RescaleIntercept here but {sum(has)} of {len(names)} slices of "
                                f"{folder.name} have them: expected every slice or none; re-export the series")
    if modality == "CT" and not any(has) and not stored_as_hu:
        raise DatasetError(names[0], "no RescaleSlope/RescaleIntercept in any slice: cannot tell HU from stored "
                                     "values (often HU + 1024); if this series stores HU directly set "
                                     "prepare.reader.stored_as_hu: true, else re-export it with the rescale tags")


def _check_headers(
    folder: Path, names: list[Path], headers: list[pydicom.Dataset], *, modality: str | None,
    spacing_tolerance: float,
) -> None:
    """Raise on wrong modality, mixed orientations, missing geometry, missing or duplicate slices."""
    if modality is not None:
        wrong = [(n, h.get("Modality")) for n, h in zip(names, headers) if h.get("Modality") != modality]
        if wrong:
            raise DatasetError(
                wrong[0][0], f"expected Modality {modality}, found {wrong[0][1]!r} "
                f"({len(wrong)} of {len(names)} files in {folder.name}); point the reader at the {modality} series"
            )
    geometry = ("ImageOrientationPatient", "ImagePositionPatient")
    missing = [n.name for n, h in zip(names, headers) if any(tag not in h for tag in geometry)]
    if missing:
        raise DatasetError(
            folder, f"slices without ImageOrientationPatient/ImagePositionPatient: {', '.join(missing[:10])}; "
            "expected image slices of a CT volume"
        )
    iops = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
    odd = np.abs(iops - iops[0]).max(axis=1) > 1e-4
    if odd.any():
        first_odd = int(np.argmax(odd))
        raise DatasetError(
            names[first_odd], f"mixed slice orientations in one series: {list(iops[first_odd])} here, "
            f"{list(iops[0])} in {names[0].name}; expected one ImageOrientationPatient for all slices"
        )
    if len(names) < 2:
        return
    normal = np.cross(iops[0, :3], iops[0, 3:])
    points = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    pos = points @ normal
    order = np.argsort(pos, kind="stable")
    _check_tilt(folder, names[order[0]], headers[order[0]], points[order[-1]] - points[order[0]], normal)
    gaps = np.diff(pos[order])
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > spacing_tolerance * max(step, 1e-6))
    if step <= 1e-6 or bad.size:
        i = int(bad[0]) if bad.size else 0
        a, b = names[order[i]], names[order[i + 1]]
        kind = "duplicate slice position" if gaps[i] <= 1e-6 else "missing slice (non-uniform spacing)"
        raise DatasetError(
            folder, f"{kind}: {a.name} at {pos[order[i]]:.3f} mm and {b.name} at {pos[order[i + 1]]:.3f} mm "
            f"are {gaps[i]:.3f} mm apart, expected {step:.3f} mm like the other slices "
            f"({bad.size} irregular gaps); re-download the series or remove the stray files"
        )


def _check_tilt(folder: Path, first: Path, header: pydicom.Dataset, span: np.ndarray, normal: np.ndarray) -> None:
    """Raise when the slices are stacked off their normal (gantry tilt): the voxel grid is sheared,
    and reading it as a box would misplace every slice but the first."""
    length = float(np.linalg.norm(span))
    if length <= 1e-6:
        return
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(span @ normal)) / length))))
    if angle > MAX_TILT_DEGREES:
        tag = header.get("GantryDetectorTilt")
        stated = f" (GantryDetectorTilt {float(tag):g})" if tag not in (None, "") else ""
        raise DatasetError(
            folder, f"gantry tilt: slices are stacked {angle:.1f} degrees off their normal{stated}, first slice "
            f"{first.name}; expected an orthogonal series: resample it first (dcm2niix corrects gantry tilt) "
            "and use the result, or leave the case out")
