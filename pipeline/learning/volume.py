"""Predicted 2D slices back into a subject's NIfTI label volume, aligned with the source volume."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.errors import DatasetError
from pipeline.formats.nifti import save_volume
from pipeline.slices.resize import Placement, restore_mask
from pipeline.slices.slicing import from_display


def rebuild_volume(slices: Mapping[int, np.ndarray], *, shape: tuple[int, int, int], axis: int,
                   placement: Placement | None) -> np.ndarray:
    """Stack predicted display slices into an ``(X, Y, Z)`` RAS+ uint8 label volume.

    Each ``slices[index]`` is a square label map on the prepared grid: the letterbox/resize is
    undone with ``restore_mask`` (nearest only), the display orientation with ``from_display``,
    and it lands at ``index`` along ``axis``. Slices not given stay 0 (background).
    """
    if len(shape) != 3:
        raise ValueError(f"expected a 3D volume shape, found {tuple(shape)}")
    volume = np.zeros(tuple(int(s) for s in shape), dtype=np.uint8)
    plane = tuple(s for i, s in enumerate(volume.shape) if i != axis)
    for index, mask in sorted(slices.items()):
        if not 0 <= index < volume.shape[axis]:
            raise ValueError(f"slice index {index} outside 0..{volume.shape[axis] - 1} along axis {axis}")
        ras = from_display(restore_mask(mask, placement) if placement is not None else mask, axis=axis)
        if ras.shape != plane:
            raise ValueError(f"slice {index} restores to {ras.shape}, the volume's slices are {plane}")
        target = [slice(None)] * 3
        target[axis] = index
        volume[tuple(target)] = ras
    return volume


def volume_from_geometry(entry: Mapping, predictions: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(volume, affine)`` for one ``geometry.json`` entry, or None for 2D sources / no predicted slice.

    ``entry`` is what prepare writes per subject (layout, shape, axis, affine, placement and
    ``slices``: slice index -> PNG name); ``predictions`` maps PNG names to square label maps.
    The volume is RAS+ canonical; :func:`save_nifti` stores it in the source's own axis order.
    """
    if entry.get("layout") != "volume" or entry.get("affine") is None:
        return None
    found = {int(i): predictions[name] for i, name in entry.get("slices", {}).items() if name in predictions}
    if not found:
        return None
    placement = Placement.from_dict(entry["placement"]) if entry.get("placement") else None
    volume = rebuild_volume(found, shape=tuple(entry["shape"][:3]), axis=int(entry["axis"]), placement=placement)
    return volume, np.asarray(entry["affine"], dtype=np.float64)


def restore_subject(entry: Mapping, squares: Mapping[str, np.ndarray]) -> np.ndarray:
    """One subject's labels on its source grid from square label maps keyed by PNG name.

    ``entry`` is the subject's ``geometry.json`` record. Volumes come back ``(X, Y, Z)`` RAS+
    (as the reader gave them), 2D stacks ``(N, H, W)``; slices without a square stay background.
    """
    placement = Placement.from_dict(entry["placement"]) if entry.get("placement") else None
    found = {int(i): squares[name] for i, name in entry.get("slices", {}).items() if name in squares}
    shape = tuple(int(n) for n in entry["shape"][:3])
    if entry.get("layout") == "volume":
        return rebuild_volume(found, shape=shape, axis=int(entry["axis"]), placement=placement)
    stack = np.zeros(shape, dtype=np.uint8)
    for index, square in found.items():
        stack[index] = restore_mask(square, placement) if placement is not None else square
    return stack


def restores_exactly(entry: Mapping) -> bool:
    """Whether square masks of this subject map back to the source grid without loss.

    Every slice must be there (a slice the empty filter dropped comes back as background), and
    nearest-neighbour enlargement followed by nearest-neighbour reduction gives back every pixel
    (checked for all sizes up to 512); a shrunk or cropped slice loses detail.
    """
    depth = entry["shape"][int(entry.get("axis", 0))] if entry.get("layout") == "volume" else entry["shape"][0]
    if len(entry.get("slices", {})) != int(depth):
        return False
    if not entry.get("placement"):
        return True
    place = Placement.from_dict(entry["placement"])
    return (all(s >= o for s, o in zip(place.scaled, place.original)) and min(place.offset) >= 0
            and all(off + s <= place.size for off, s in zip(place.offset, place.scaled)))


def save_nifti(path: Path, volume: np.ndarray, affine: np.ndarray, *, orientation: str | None = None) -> None:
    """Write a uint8 label volume as a NIfTI label map, stored in axis order ``orientation``.

    Given the source label file's stored orientation (geometry.json's ``mask_orientation``), the file has
    the source's shape, axis order and affine, so viewers that insist on identical grids (ITK-SNAP)
    open it on the source image; without it, the array is stored as given with ``affine``.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise DatasetError(path, f"expected a 4x4 affine, found shape {affine.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stored_as = orientation or "".join(nib.aff2axcodes(affine))
    save_volume(path, volume, affine, orientation=stored_as, dtype=np.uint8, intent="label")
