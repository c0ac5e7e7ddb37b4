"""Predicted slices back into a NIfTI volume aligned with the source."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.slices.resize import fit_to_square
from pipeline.slices.slicing import take_slice
from pipeline.learning.volume import rebuild_volume, save_nifti, volume_from_geometry


def _source(tmp_path):
    """A 20x14x6 label volume stored LPS-ish (flipped axes, anisotropic, shifted) as on disk."""
    mask = np.zeros((20, 14, 6), np.uint8)
    mask[3:9, 2:7, 1:3] = 1
    mask[12:15, 8:12, 4] = 1
    affine = np.array([[-0.8, 0, 0, 30.0], [0, -0.6, 0, 12.5], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(mask, affine), str(path))
    canon = nib.as_closest_canonical(nib.load(str(path)))
    return path, np.asarray(canon.dataobj).astype(np.uint8), canon.affine


def _prepared_entry(canon_mask, canon_affine, *, axis, size):
    """What prepare records: slices displayed upright and letterboxed into a square."""
    slices, squares, placement = {}, {}, None
    for index in range(canon_mask.shape[axis]):
        shown = take_slice(canon_mask, index, axis=axis)
        if not shown.any():
            continue
        _, sq, placement = fit_to_square(shown.copy(), shown, size=size, letterbox=True)
        name = f"s1_{index:04d}.png"
        slices[str(index)] = name
        squares[name] = sq
    entry = {"layout": "volume", "shape": list(canon_mask.shape), "axis": axis,
             "affine": np.round(canon_affine, 6).tolist(), "placement": placement.to_dict(), "slices": slices}
    return entry, squares


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rebuilt_nifti_has_source_affine_and_voxels(tmp_path, axis):
    path, canon_mask, canon_affine = _source(tmp_path)
    entry, squares = _prepared_entry(canon_mask, canon_affine, axis=axis, size=40)
    volume, affine = volume_from_geometry(entry, squares)
    out = tmp_path / "pred.nii.gz"
    save_nifti(out, volume, affine)
    back = nib.load(str(out))
    assert np.allclose(back.affine, canon_affine, atol=1e-5)
    assert np.allclose(back.get_qform(), canon_affine, atol=1e-5)
    # the labels sit where the source's are, in world coordinates, whatever the stored orientation
    assert np.array_equal(np.asarray(back.dataobj), canon_mask)
    src = nib.load(str(path))
    world_src = nib.affines.apply_affine(src.affine, np.argwhere(np.asarray(src.dataobj) > 0))
    world_out = nib.affines.apply_affine(back.affine, np.argwhere(np.asarray(back.dataobj) > 0))
    assert np.allclose(np.sort(world_src, axis=0), np.sort(world_out, axis=0))

    # stored in the source's own axis order: the very grid of the source file, voxel for voxel
    as_source = tmp_path / "pred_lps.nii.gz"
    save_nifti(as_source, volume, affine, orientation="".join(nib.aff2axcodes(src.affine)))
    stored = nib.load(str(as_source))
    assert np.allclose(stored.affine, src.affine, atol=1e-5) and stored.shape == src.shape
    assert np.array_equal(np.asarray(stored.dataobj), np.asarray(src.dataobj))
    assert stored.header.get_intent()[0] == "label"


def test_missing_slices_are_background_and_2d_entries_skipped(tmp_path):
    _, canon_mask, canon_affine = _source(tmp_path)
    entry, squares = _prepared_entry(canon_mask, canon_affine, axis=2, size=40)
    first = sorted(squares)[0]
    volume, _ = volume_from_geometry(entry, {first: squares[first]})
    index = int(first.split("_")[1].split(".")[0])
    assert np.array_equal(volume[..., index], canon_mask[..., index])
    assert volume.sum() == canon_mask[..., index].sum()
    assert volume_from_geometry({**entry, "layout": "stack", "affine": None}, squares) is None
    assert volume_from_geometry(entry, {}) is None


def test_rebuild_rejects_wrong_slice_sizes():
    with pytest.raises(ValueError, match="restores to"):
        rebuild_volume({0: np.zeros((5, 5), np.uint8)}, shape=(4, 4, 2), axis=2, placement=None)
    with pytest.raises(ValueError, match="outside"):
        rebuild_volume({3: np.zeros((4, 4), np.uint8)}, shape=(4, 4, 2), axis=2, placement=None)


def test_restores_exactly_only_with_every_slice_and_no_shrinking():
    from pipeline.learning.volume import restores_exactly
    from pipeline.slices.resize import placement_for

    def entry(shape, place, slices):
        return {"layout": "volume", "shape": list(shape), "axis": 2, "placement": place.to_dict(),
                "slices": {str(i): f"s_{i:04d}.png" for i in slices}}

    grown = placement_for((30, 20), size=64, letterbox=True)
    assert restores_exactly(entry((20, 30, 3), grown, range(3)))
    assert not restores_exactly(entry((20, 30, 3), grown, [0, 2]))  # a dropped empty slice is unknown
    assert not restores_exactly(entry((200, 300, 3), placement_for((300, 200), size=64, letterbox=True), range(3)))
    cropped = placement_for((30, 20), size=16, letterbox=False, spacing=(1.0, 1.0), target_spacing=1.0)
    assert not restores_exactly(entry((20, 30, 3), cropped, range(3)))
