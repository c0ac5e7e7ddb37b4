"""The AISD reader on its stand-in and on hand-made image.zip/mask.zip pairs, checked against SOURCES.md:
the publisher's classes 0-5, lesion set {1, 2, 3, 5}, official test cases, palette/RGBA masks, missing masks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.dataset.integrity import summarise, summarise_subject
from pipeline.sources import aisd
from pipeline.dataset.split import assign_splits
from pipeline.formats.images2d import decode_label
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


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


def test_synth_layout_as_published_and_determinism(raw, tmp_path):
    """SOURCES.md: image/<7-digit case>/<n>.png and mask/<case>/<n>.png, one slice shipped without a mask."""
    images, masks = members(raw / "image.zip"), members(raw / "mask.zip")
    assert all(n.startswith("image/") for n in images) and all(n.startswith("mask/") for n in masks)
    cases = {n.split("/")[1] for n in images}
    assert len(cases) == 6 and all(len(c) == 7 and c.isdigit() for c in cases)
    assert {n.replace("mask/", "image/", 1) for n in masks} < set(images)
    assert len(images) - len(masks) == 1
    generate(tmp_path, subjects=6, seed=3)
    for name in ("image.zip", "mask.zip"):
        assert (tmp_path / name).read_bytes() == (raw / name).read_bytes()


def test_synth_masks_hold_publisher_classes_with_a_label_4_only_slice(raw):
    """SOURCES.md: masks are multi-label 0-5, never 0/255; one slice holds only label 4 (invisible acute)."""
    values, label_4_only = set(), 0
    for name, data in members(raw / "mask.zip").items():
        labels = decode_label(data, name=name)
        found = set(np.unique(labels).tolist())
        values |= found
        label_4_only += found == {0, 4}
    assert values <= set(range(6)) and {1, 2, 3, 4, 5} <= values and label_4_only >= 1


def test_synth_has_an_official_test_case_palette_masks_and_rgb_images(raw):
    images, masks = members(raw / "image.zip"), members(raw / "mask.zip")
    assert any(n.split("/")[1] == "0073410" for n in images)
    assert any(data[25] == 3 for data in masks.values())  # PNG colour type 3: palette
    assert any(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED).ndim == 3 for d in images.values())


def test_discover_and_load_synth(raw):
    refs = aisd.discover(raw)
    assert len(refs) == 6 and all(len(r.subject_id) == 7 for r in refs)
    assert refs[0].files[0] == f"{raw / 'image.zip'}::image/{refs[0].subject_id}/1.png"
    assert refs[0].files[-1].startswith(f"{raw / 'mask.zip'}::mask/{refs[0].subject_id}/")
    missing = 0
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
        assert subject.meta["label_4_only_slices"] == 1
        missing += subject.meta["missing_masks"]
    assert missing == 1  # the default missing_mask: empty reads the slice shipped without a mask


def test_lesion_labels_default_is_the_publisher_set_1_2_3_5_without_4():
    """SOURCES.md: never binarise with > 0 (label 4 is invisible acute); the publisher's lesion is {1, 2, 3, 5}."""
    mask = np.array([[0, 1, 2, 3, 4, 5]], np.uint8)
    assert aisd.Options().lesion_labels == (1, 2, 3, 5)
    target = aisd.target_mask(mask, name="m", lesion_labels=(1, 2, 3, 5), multiclass=False)
    assert target.tolist() == [[0, 1, 1, 1, 0, 1]]
    assert aisd.target_mask(mask, name="m", lesion_labels=(2, 3), multiclass=False).tolist() == [[0, 0, 1, 1, 0, 0]]


def test_multiclass_keeps_the_publisher_classes(raw):
    mask = np.array([[0, 1, 2, 3, 4, 5]], np.uint8)
    assert aisd.target_mask(mask, name="m", lesion_labels=(1,), multiclass=True).tolist() == mask.tolist()
    values = set()
    for ref in aisd.discover(raw)[:3]:
        values |= set(np.unique(aisd.load(ref, multiclass=True).mask).tolist())
    assert 4 in values and len(values) >= 4


def test_binarised_0_255_copy_is_read_as_lesion_but_not_as_classes():
    mask = np.array([[0, 255]], np.uint8)
    assert aisd.target_mask(mask, name="m", lesion_labels=(1, 2, 3, 5), multiclass=False).tolist() == [[0, 1]]
    with pytest.raises(DatasetError, match=r"m: mask values \[0, 255\]: expected the publisher's classes 0-5"):
        aisd.target_mask(mask, name="m", lesion_labels=(1,), multiclass=True)


def test_lesion_labels_outside_1_to_5_are_refused(raw):
    with pytest.raises(DatasetError, match=r"prepare\.reader\.lesion_labels: \[0, 1\]: expected publisher classes"):
        aisd.load(aisd.discover(raw)[0], lesion_labels=(0, 1))


def test_palette_and_rgba_masks_read_as_label_indices(tmp_path):
    """Issue 11: palette PNG masks were decoded as colours, RGBA masks with the label in alpha read as empty."""
    from PIL import Image
    import io

    labels = np.zeros((8, 8), np.uint8)
    labels[2:4, 2:4], labels[5, 5] = 2, 4
    img = Image.fromarray(labels, mode="P")
    img.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10, 10, 10, 250, 200, 200, 0] + [0] * 240 * 3)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :, 3] = labels
    write_zip(tmp_path / "image.zip", [("0000001/1.png", png(np.full((8, 8), 90))),
                                       ("0000001/2.png", png(np.full((8, 8), 90)))])
    write_zip(tmp_path / "mask.zip", [("0000001/1.png", buf.getvalue()),
                                      ("0000001/2.png", cv2.imencode(".png", rgba)[1].tobytes())])
    (ref,) = aisd.discover(tmp_path)
    subject = aisd.load(ref, multiclass=True)
    assert subject.mask[0].tolist() == labels.tolist() and subject.mask[1].tolist() == labels.tolist()
    assert aisd.load(ref).mask.sum() == 2 * 4  # binary: class 2 is lesion, class 4 is not


def test_official_test_cases_are_pinned_to_the_test_split(raw):
    """SOURCES.md: the publisher's 52 test cases stay the test split (ids as strings with leading zeros)."""
    refs = aisd.discover(raw)
    pins = aisd.pinned_splits(refs)
    assert pins == {"0073410": "test"}
    assert aisd.pinned_splits(refs, pin_test_cases=False) == {}
    assert aisd.pinned_splits(refs, test_cases=("73410",)) == {}  # never compared as integers
    for seed in range(10):
        assignment = assign_splits([r.subject_id for r in refs], {"train": 0.7, "valid": 0.15, "test": 0.15},
                                   seed=seed, pinned=pins)
        assert assignment["0073410"] == "test"
        assert sorted(assignment.values()).count("test") == 1  # the pin fills the test share


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
    """SOURCES.md: a mask may be missing for a slice; the default reads it as empty and counts it."""
    write_zip(tmp_path / "image.zip", [(f"0000007/{k}.png", slice_pair(k)[0]) for k in (1, 2, 3)])
    write_zip(tmp_path / "mask.zip", [(f"0000007/{k}.png", slice_pair(k)[1]) for k in (1, 3)])
    with pytest.raises(DatasetError, match=r"1 unpaired AISD slices \(or set missing_mask: empty.*image without mask: .*image\.zip::0000007/2\.png"):
        aisd.discover(tmp_path, missing_mask="error")
    (ref,) = aisd.discover(tmp_path)
    with pytest.raises(DatasetError, match="have no mask; set missing_mask: empty"):
        aisd.load(ref, missing_mask="error")
    subject = aisd.load(ref, missing_mask="empty")
    assert subject.meta["missing_masks"] == 1
    assert [int(m.sum()) for m in subject.mask] == [1, 0, 3]
    # the count reaches the integrity report that prepare writes into stats.json
    report = summarise([summarise_subject(subject), summarise_subject(subject)], [])
    assert report["reader_counts"] == {"missing_masks": 2, "label_4_only_slices": 0}
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
    with pytest.raises(DatasetError, match=r"mask\.zip::0000001/1\.png: mask values \[0, 1, 128, 255\]: expected the publisher's classes 0-5"):
        aisd.load(values)
    with pytest.raises(DatasetError, match=r"mask\.zip::0000002/1\.png: mask is 8x9 but its image .*image\.zip::0000002/1\.png is 8x8"):
        aisd.load(shape)


def test_nothing_found(tmp_path):
    write_zip(tmp_path / "image.zip", [("0000001/1.png", slice_pair(1)[0])])
    with pytest.raises(DatasetError, match="found 1 image and 0 mask slices: expected image.zip and mask.zip"):
        aisd.discover(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        aisd.discover(tmp_path / "nope")
