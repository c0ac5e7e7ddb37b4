"""The AISD reader on its synthetic stand-in and on hand-made image.zip/mask.zip pairs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.dataset.integrity import summarise, summarise_subject
from pipeline.sources import aisd
from pipeline.synth.aisd import generate


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aisd")
    generate(out, subjects=6, seed=3)
    return out


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array.astype(np.uint8))[1].tobytes()


def write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)


def slice_pair(k: int, size: int = 8, scale: int = 255) -> tuple[bytes, bytes]:
    """Image slice k is filled with 10*k; its mask has exactly k foreground pixels."""
    mask = np.zeros(size * size, np.uint8)
    mask[:k] = scale
    return png(np.full((size, size), 10 * k)), png(mask.reshape(size, size))


def test_synth_layout_and_determinism(raw, tmp_path):
    with zipfile.ZipFile(raw / "image.zip") as zi, zipfile.ZipFile(raw / "mask.zip") as zm:
        images = {n for n in zi.namelist() if not n.endswith("/")}
        masks = {n for n in zm.namelist() if not n.endswith("/")}
    assert images == masks and len({n.split("/")[0] for n in images}) == 6
    assert all(len(n.split("/")[0]) == 7 and n.split("/")[0].isdigit() for n in images)
    generate(tmp_path, subjects=6, seed=3)
    for name in ("image.zip", "mask.zip"):
        assert (tmp_path / name).read_bytes() == (raw / name).read_bytes()


def test_discover_and_load_synth(raw):
    refs = aisd.discover(raw)
    assert len(refs) == 6 and all(len(r.subject_id) == 7 for r in refs)
    assert refs[0].files[0] == f"{raw / 'image.zip'}::{refs[0].subject_id}/1.png"
    assert refs[0].files[-1].startswith(f"{raw / 'mask.zip'}::{refs[0].subject_id}/")
    for ref in refs:
        subject = aisd.load(ref)
        n = subject.num_slices
        assert 12 <= n <= 20 and subject.image.shape == subject.mask.shape == (n, 256, 256)
        assert subject.layout == "stack" and subject.modality == "8bit" and subject.image.dtype == np.float32
        assert subject.slice_names == tuple(str(i) for i in range(1, n + 1))  # natural order: 2 before 10
        assert set(np.unique(subject.mask).tolist()) == {0, 1}
        lesion = np.flatnonzero(subject.mask.any(axis=(1, 2)))
        assert 0 < len(lesion) < n and np.array_equal(lesion, np.arange(lesion[0], lesion[-1] + 1))
        on = lesion[0]
        brain = (subject.image[on] > 100) & (subject.image[on] < 160) & (subject.mask[on] == 0)
        assert subject.image[on][subject.mask[on] == 1].mean() < subject.image[on][brain].mean() - 10
        assert subject.meta == {"slices": n, "missing_masks": 0}


def test_pairs_by_case_and_slice_name_never_by_position(tmp_path):
    names = [f"0091465/{k}.png" for k in (1, 2, 10, 3)]
    pairs = {n: slice_pair(int(n.split("/")[1][:-4]), scale=1 if "10" in n else 255) for n in names}
    write_zip(tmp_path / "image.zip", [(f"image/{n}", pairs[n][0]) for n in names])
    write_zip(tmp_path / "mask.zip", [(f"mask/{n}", pairs[n][1]) for n in reversed(names)])  # other order, extra top
    (ref,) = aisd.discover(tmp_path)
    subject = aisd.load(ref)
    assert subject.slice_names == ("1", "2", "3", "10")
    for index, k in enumerate((1, 2, 3, 10)):
        assert subject.image[index, 0, 0] == 10 * k and subject.mask[index].sum() == k


def test_extracted_folders(tmp_path):
    for half, index in (("image", 0), ("mask", 1)):
        (tmp_path / half / "0000001").mkdir(parents=True)
        for k in (1, 2):
            (tmp_path / half / "0000001" / f"{k}.png").write_bytes(slice_pair(k)[index])
    (ref,) = aisd.discover(tmp_path)
    assert ref.files[0] == str(tmp_path / "image" / "0000001" / "1.png")
    assert aisd.load(ref).mask.sum() == 3


def test_missing_mask_policy(tmp_path):
    write_zip(tmp_path / "image.zip", [(f"0000007/{k}.png", slice_pair(k)[0]) for k in (1, 2, 3)])
    write_zip(tmp_path / "mask.zip", [(f"0000007/{k}.png", slice_pair(k)[1]) for k in (1, 3)])
    with pytest.raises(DatasetError, match=r"1 unpaired AISD slices \(or set missing_mask: empty.*image without mask: .*image\.zip::0000007/2\.png"):
        aisd.discover(tmp_path)
    (ref,) = aisd.discover(tmp_path, missing_mask="empty")
    with pytest.raises(DatasetError, match="have no mask; set missing_mask: empty"):
        aisd.load(ref)
    subject = aisd.load(ref, missing_mask="empty")
    assert subject.meta["missing_masks"] == 1
    assert [int(m.sum()) for m in subject.mask] == [1, 0, 3]
    # the count reaches the integrity report that prepare writes into stats.json
    report = summarise([summarise_subject(subject), summarise_subject(subject)], [])
    assert report["reader_counts"] == {"missing_masks": 2}
    with pytest.raises(DatasetError, match=r"missing_mask must be one of \('error', 'empty'\), found 'skip'"):
        aisd.discover(tmp_path, missing_mask="skip")


def test_mask_without_image_is_listed(tmp_path):
    write_zip(tmp_path / "image.zip", [("0000007/1.png", slice_pair(1)[0])])
    write_zip(tmp_path / "mask.zip", [("0000007/1.png", slice_pair(1)[1]), ("0000008/4.png", slice_pair(4)[1]),
                                      ("0000007/9.png", slice_pair(2)[1])])
    with pytest.raises(DatasetError, match="2 unpaired AISD slices") as info:
        aisd.discover(tmp_path, missing_mask="empty")
    assert "mask without image: " in str(info.value)
    assert "mask.zip::0000008/4.png" in str(info.value) and "mask.zip::0000007/9.png" in str(info.value)


def test_mask_values_and_shapes_are_checked(tmp_path):
    bad = np.zeros((8, 8), np.uint8)
    bad[0, :3] = (1, 128, 255)
    write_zip(tmp_path / "image.zip", [("0000001/1.png", slice_pair(1)[0]), ("0000002/1.png", slice_pair(1)[0])])
    write_zip(tmp_path / "mask.zip", [("0000001/1.png", png(bad)), ("0000002/1.png", png(np.zeros((8, 9))))])
    values, shape = aisd.discover(tmp_path)
    with pytest.raises(DatasetError, match=r"mask\.zip::0000001/1\.png: mask values \[0, 1, 128, 255\]: expected 0/255 or 0/1"):
        aisd.load(values)
    with pytest.raises(DatasetError, match=r"mask\.zip::0000002/1\.png: mask is 8x9 but its image .*image\.zip::0000002/1\.png is 8x8"):
        aisd.load(shape)


def test_nothing_found(tmp_path):
    write_zip(tmp_path / "image.zip", [("0000001/1.png", slice_pair(1)[0])])
    with pytest.raises(DatasetError, match="found 1 image and 0 mask slices: expected image.zip and mask.zip"):
        aisd.discover(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        aisd.discover(tmp_path / "nope")
