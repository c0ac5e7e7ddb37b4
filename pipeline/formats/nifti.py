"""The one NIfTI reader: volumes in RAS+ canonical order, with clear errors for damaged files."""

from __future__ import annotations

import gzip
import logging
import sys
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

if "nibabel" not in sys.modules and "pydicom" not in sys.modules:
    # nibabel imports pydicom (0.1 s, requests included) only to parse DICOM header extensions of
    # NIfTI files, which no reader here looks at; without it they stay raw bytes (nibabel's own
    # fallback). The DICOM reader imports pydicom itself when a series is read.
    sys.modules["pydicom"] = None  # type: ignore[assignment]  (import pydicom -> ImportError)
    try:
        import nibabel as nib
    finally:
        del sys.modules["pydicom"]
import nibabel as nib
from nibabel import orientations as ornts
from nibabel.filebasedimages import ImageFileError
from nibabel.openers import ImageOpener
from nibabel.spatialimages import HeaderDataError

try:  # python-isal: the same bytes out of gzip 2-3x faster than zlib; plain gzip when missing
    from isal import igzip, isal_zlib
except ImportError:  # pragma: no cover  (pinned in the project; the fallback is tested by patching)
    igzip = isal_zlib = None

from pipeline.formats.discover import find_nifti, nifti_stem  # noqa: F401  (re-exported for readers)
from pipeline.errors import DatasetError

# nibabel logs header fix-ups of broken files itself; we raise our own message instead.
logging.getLogger("nibabel.global").setLevel(logging.ERROR)

_DAMAGED = (EOFError, OSError, zlib.error, ValueError, MemoryError, OverflowError) + (
    (isal_zlib.error,) if isal_zlib is not None else ()
)
# Largest volume a reader loads, in bytes as held in memory (voxels x the larger of the stored
# dtype and float32, the type images are converted to): a 3.5 MB .nii.gz of zeros may declare
# gigabytes. Checked from the header alone, before any voxel is read; readers take it as the
# ``max_volume_bytes`` option, like the zip limits.
MAX_VOLUME_BYTES = 2 << 30


def volume_bytes(shape: Sequence[int], itemsize: int) -> int:
    """Bytes a volume of ``shape`` occupies once loaded: voxels x max(stored item size, float32)."""
    return int(np.prod([int(n) for n in shape], dtype=object)) * max(int(itemsize), 4)


def check_volume_size(path: Path | str, shape: Sequence[int], dtype: np.dtype | str, *, max_bytes: int) -> None:
    """Raise DatasetError when a volume of ``shape`` x ``dtype`` would exceed ``max_bytes`` in memory."""
    dtype = np.dtype(dtype)
    need = volume_bytes(shape, dtype.itemsize)
    if need > max_bytes:
        dims = "x".join(str(int(n)) for n in shape)
        raise DatasetError(
            path, f"declares {dims} {dtype.name} voxels, {need / 2**30:.1f} GiB in memory (as float32), which "
            f"exceeds max_volume_bytes={max_bytes}; a damaged header or a decompression bomb? If the volume is "
            "genuine, raise max_volume_bytes under datasets.<key>.prepare.reader",
        )


_GZIP = ImageOpener.compress_ext_map[".gz"]  # nibabel's own (writes stay nibabel's, byte for byte)


_READ_CHUNK = 1 << 22  # bytes inflated per call when nibabel reads a whole volume into its buffer

if igzip is not None:
    class _ChunkedGzipFile(igzip.IGzipFile):
        """isal's gzip reader whose ``readinto`` fills a large buffer a few MB at a time: one call for
        a whole volume would inflate into a temporary as large as the volume and copy it (twice the
        memory touched; half the page faults and ~25% of the read time saved on 512x512x120 int16)."""

        def readinto(self, buffer) -> int:  # noqa: ANN001  (any writable buffer)
            view, filled = memoryview(buffer).cast("B"), 0
            while filled < len(view):
                count = super().readinto(view[filled : filled + _READ_CHUNK])
                if not count:
                    break
                filled += count
            return filled


def _gzip_open(filename: str, mode: str = "rb", *args: object, **kwargs: object):
    """nibabel's gzip opener, reading through python-isal when installed (decompression gives the
    same bytes whoever does it; ~2.4x faster on a 512x512x60 int16 volume). Writes are unchanged."""
    if igzip is not None and mode in ("r", "rb"):
        return _ChunkedGzipFile(filename, "rb")
    return _GZIP[0](filename, mode, *args, **kwargs)


# nibabel's documented extension point for compressed image files (``ImageOpener.compress_ext_map``)
ImageOpener.compress_ext_map[".gz"] = (_gzip_open, _GZIP[1])


class Volume(NamedTuple):
    """A volume as read: ``array`` is ``(X, Y, Z)`` in RAS+ canonical order, ``affine`` maps
    those indices to RAS+ mm, ``spacing`` is ``(sx, sy, sz)`` mm, ``orientation`` the axis codes
    of the file as stored (e.g. ``"LPS"``), before canonicalisation."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str


def _gzip_damage(path: Path) -> str | None:
    """Why the gzip stream of ``path`` cannot be read to its end (None: not gzip, or intact)."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
    try:  # the first 64 MB is enough: a file isal cannot sniff is short; no bomb is read to its end
        with gzip.open(path, "rb") as f:
            for _ in range(4):
                if not f.read(1 << 24):
                    break
    except _DAMAGED as exc:
        return str(exc)
    return None


def _open(path: Path) -> nib.Nifti1Image:
    """The image, its data left in the file: gzip read through isal, plain ``.nii`` memory-mapped
    copy-on-write (no read into a buffer first: ~2x faster to a float32 volume; ``_read`` copies it)."""
    if not path.is_file():
        raise DatasetError(path, "file not found: expected a NIfTI volume (.nii or .nii.gz) here")
    if path.stat().st_size == 0:
        raise DatasetError(path, "empty file (0 bytes): expected a NIfTI volume; re-download or re-export it")
    try:
        img = nib.load(path, mmap="c")
    except HeaderDataError as exc:
        raise DatasetError(path, f"corrupt NIfTI header ({exc}); re-download or re-export the file") from exc
    except ImageFileError as exc:
        damage = _gzip_damage(path)  # isal fails the header sniff of a short file where gzip reads on
        if damage:
            raise DatasetError(path, f"truncated or damaged file ({damage}); re-download or re-export it") from exc
        raise DatasetError(
            path,
            f"not a NIfTI file ({exc}): expected a .nii/.nii.gz with a valid NIfTI-1/2 header; "
            "macOS '._*' files are not images and should be deleted",
        ) from exc
    except _DAMAGED as exc:
        raise DatasetError(path, f"truncated or damaged file ({exc}); re-download or re-export it") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DatasetError(path, f"not a NIfTI file: nibabel reads it as {type(img).__name__}; expected NIfTI-1/2")
    return img


def _read(path: Path, max_bytes: int = MAX_VOLUME_BYTES, *, as_stored: bool = False,
          channel: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Stored data (scaled, native dtype) in canonical order, canonical affine, stored axis codes
    (``as_stored``: the data and affine as the file stores them, for sources whose published
    convention is in array axes rather than in the header's geometry). ``channel`` picks one 3D
    volume of a 4D file (MSD multi-modal images store ``(X, Y, Z, C)``)."""
    img = _open(Path(path))
    if channel is not None and len(img.shape) == 4:
        if not 0 <= channel < img.shape[3]:
            raise DatasetError(path, f"channel {channel} asked for, the file holds channels 0..{img.shape[3] - 1}; "
                                     "fix the reader's channels option")
        img = img.slicer[..., channel]
    elif channel not in (None, 0):
        raise DatasetError(path, f"channel {channel} asked for, the file holds one 3D volume; "
                                 "fix the reader's channels option")
    shape = img.shape
    if any(int(n) <= 0 for n in shape):
        raise DatasetError(path, f"corrupt NIfTI header: dimensions {tuple(shape)} must be positive; re-export it")
    check_volume_size(path, shape, img.get_data_dtype(), max_bytes=max_bytes)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DatasetError(
            path, f"expected a 3D volume (X, Y, Z), found shape {tuple(img.shape)}; split 4D series into 3D files"
        )
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DatasetError(path, f"corrupt NIfTI header: unusable affine {affine!r}; fix the qform/sform")
    codes = nib.aff2axcodes(affine)
    if None in codes:
        raise DatasetError(path, f"corrupt NIfTI header: affine {np.round(affine, 4).tolist()} maps no axis to "
                                 "a direction; fix the qform/sform")
    orientation = "".join(codes)
    try:
        canon = img if as_stored else nib.as_closest_canonical(img)
        data = np.asanyarray(canon.dataobj)
    except HeaderDataError as exc:
        raise DatasetError(path, f"corrupt NIfTI header ({exc}); re-download or re-export the file") from exc
    except _DAMAGED as exc:
        raise DatasetError(
            path, f"truncated or damaged file: voxel data shorter than its header says ({exc}); re-download it"
        ) from exc
    # a view, not a copy: the flips of as_closest_canonical cost a full-volume copy (~0.15 s for
    # 512x512x120) that the uint8 conversion and display_stack make anyway
    return data.reshape(data.shape[:3]), np.asarray(canon.affine, dtype=np.float64), orientation


def _own(data: np.ndarray) -> np.ndarray:
    """``data`` detached from its file: a memory map (data already in the wanted dtype) becomes a copy,
    so the arrays never change if the file does."""
    base = data
    while base is not None and not isinstance(base, np.memmap):
        base = base.base if isinstance(base.base, np.ndarray) else None
    return np.array(data, order="K") if base is not None else data


def has_orientation(path: Path | str) -> bool:
    """False when the header gives no orientation (qform_code and sform_code both 0, as in Analyze-style
    exports): nibabel then invents a pixdim-only affine that is no fact about the patient."""
    header = _open(Path(path)).header
    return bool(int(header["qform_code"]) or int(header["sform_code"]))


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    sx, sy, sz = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return round(float(sx), 6), round(float(sy), 6), round(float(sz), 6)  # drop float32 header noise


def load_volume(path: Path | str, *, max_bytes: int = MAX_VOLUME_BYTES, as_stored: bool = False,
                channel: int | None = None) -> Volume:
    """Read an image volume in RAS+ canonical ``(X, Y, Z)`` order (``as_stored``: in the file's own
    axis order, with its stored affine; ``channel``: one channel of a 4D file).

    Whole numbers of at most 16 bits (most CT and MRI) keep the stored type: every float32 value
    of them is exact, the intensity rules convert slab by slab, and a float copy of the volume
    costs a pass and twice the memory. Anything else (scaled, float, 32-bit) is float32.

    Raises:
        DatasetError: missing/empty/truncated/not-NIfTI file, corrupt header, non-3D data, or
            NaN/Inf intensities, or a volume over ``max_bytes`` (see ``check_volume_size``).
    """
    path = Path(path)
    stored, affine, orientation = _read(path, max_bytes, as_stored=as_stored, channel=channel)
    if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:  # integers: finite, no check needed
        return Volume(_own(stored), affine, _spacing(affine), orientation)
    whole = stored.dtype.kind in "ui"
    data = _own(stored.astype(np.float32, copy=False))
    del stored
    if not whole and not np.isfinite(data.min() + data.max()):  # NaN or Inf propagate
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise DatasetError(path, f"{bad} voxels are NaN or Inf: expected finite intensities; fix or replace them")
    return Volume(data, affine, _spacing(affine), orientation)


def _unexpected_labels(data: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, int]:
    """(sorted values outside ``allowed``, number of such voxels).

    The common case, integer labels checked against ``0..k``, takes a min/max pass (about 10x
    faster than ``np.isin`` on a 512x512x120 volume); anything else, or a failed check, the full one.
    """
    if data.dtype.kind in "ui" and data.size and np.array_equal(allowed, np.arange(allowed[-1] + 1)):
        if np.iinfo(data.dtype).min >= 0 and np.iinfo(data.dtype).max <= allowed[-1]:  # uint8 vs 0..255
            return allowed[:0], 0
        if data.min() >= 0 and data.max() <= allowed[-1]:
            return allowed[:0], 0
    bad = ~np.isin(data, allowed)
    return np.unique(data[bad]), int(bad.sum())


ANY_LABEL = range(256)  # readers pass every class on; prepare checks them against prepare.num_classes


def load_label_volume(path: Path | str, *, allowed_labels: Iterable[int], max_bytes: int = MAX_VOLUME_BYTES,
                      as_stored: bool = False) -> Volume:
    """Read a label volume as uint8 class indices in RAS+ canonical ``(X, Y, Z)`` order
    (``as_stored``: in the file's own axis order, with its stored affine).

    Float masks holding whole numbers (e.g. 0.0/1.0) are accepted.

    Raises:
        DatasetError: as ``load_volume``, plus non-integer labels or labels outside ``allowed_labels``
            (the message lists the unexpected values).
    """
    path = Path(path)
    allowed = np.array(sorted({int(v) for v in allowed_labels}))
    if allowed.size == 0 or allowed.min() < 0 or allowed.max() > 255:
        raise ValueError(f"allowed_labels must be integers in 0..255, got {allowed.tolist()}")
    data, affine, orientation = _read(path, max_bytes, as_stored=as_stored)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise DatasetError(path, "label volume holds NaN or Inf: expected integer class labels")
    values, n_bad = _unexpected_labels(data, allowed)
    if n_bad:
        shown = ", ".join(f"{v:g}" for v in values[:10].tolist()) + (" ..." if values.size > 10 else "")
        kind = "non-integer" if np.any(values != np.round(values)) else "unexpected"
        raise DatasetError(
            path,
            f"{kind} label values {shown} in {n_bad} voxels: expected only "
            f"{_labels_text(allowed)}; is this an image instead of a mask?",
        )
    return Volume(_own(data.astype(np.uint8, copy=False)), affine, _spacing(affine), orientation)


def _labels_text(allowed: np.ndarray) -> str:
    if allowed.size > 3 and np.array_equal(allowed, np.arange(allowed[-1] + 1)):
        return f"whole numbers 0..{int(allowed[-1])}"
    return str(allowed.tolist())


def check_same_grid(
    image_path: Path | str,
    img_affine: np.ndarray,
    img_shape: Sequence[int],
    mask_path: Path | str,
    mask_affine: np.ndarray,
    mask_shape: Sequence[int],
    *,
    tol: float = 0.01,
) -> None:
    """Raise DatasetError unless image and mask lie on the same voxel grid.

    Compare canonical shapes and affines: spacing and origin may differ by ``tol`` of a voxel,
    direction cosines by ``1e-3``. The message says which of shape/spacing/direction/origin differ.
    """
    problems = []
    if tuple(img_shape) != tuple(mask_shape):
        problems.append(f"shape {tuple(mask_shape)} vs image {tuple(img_shape)}")
    a, b = np.asarray(img_affine, float), np.asarray(mask_affine, float)
    sa, sb = np.array(_spacing(a)), np.array(_spacing(b))
    if np.any(np.abs(sa - sb) > tol * sa):
        problems.append(f"spacing {np.round(sb, 4).tolist()} mm vs image {np.round(sa, 4).tolist()} mm")
    elif np.any(np.abs(a[:3, :3] / sa - b[:3, :3] / sb) > 1e-3):
        problems.append(f"direction axes {''.join(nib.aff2axcodes(b))} vs image {''.join(nib.aff2axcodes(a))}")
    shift = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    if shift > tol * float(sa.min()):
        problems.append(f"origin shifted by {shift:.3g} mm")
    if problems:
        raise DatasetError(
            mask_path,
            f"mask does not lie on the grid of its image {image_path}: {'; '.join(problems)}; "
            "expected identical shape and affine (resample the mask onto the image grid with nearest neighbour)",
        )


def save_volume(
    path: Path | str,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    orientation: str = "RAS",
    dtype: np.dtype | type | None = None,
    intent: str | None = None,
) -> None:
    """Write a RAS+ canonical ``(X, Y, Z)`` array to NIfTI, stored in axis order ``orientation``.

    ``affine`` maps the canonical indices to RAS+ mm; the stored array is flipped/permuted to
    ``orientation`` (e.g. ``"LPS"``) with its affine adjusted so it describes the same anatomy.
    ``.nii.gz`` output is byte-identical for identical input (nibabel writes gzip with mtime 0).
    ``intent`` sets the header's intent code (e.g. ``"label"`` for segmentations).
    """
    array = np.asarray(array if dtype is None else np.asarray(array).astype(dtype))
    ras = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(tuple(orientation.upper()))
    ornt = nib.orientations.ornt_transform(ras, target)
    stored = nib.orientations.apply_orientation(array, ornt)
    stored_affine = np.asarray(affine, float) @ nib.orientations.inv_ornt_aff(ornt, array.shape)
    img = nib.Nifti1Image(np.ascontiguousarray(stored), stored_affine)
    img.set_sform(stored_affine, code=1)
    img.set_qform(stored_affine, code=1)
    img.header.set_xyzt_units("mm")
    if intent:
        img.header.set_intent(intent)
    img.to_filename(str(path))
