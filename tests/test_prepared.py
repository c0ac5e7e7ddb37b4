"""pipeline.dataset.prepared: the one place that knows a prepared set's layout, pairing, manifest, masks and facts."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pipeline.dataset import prepared as ps
from pipeline.errors import DatasetError
from tests.conftest import ROOT

INFO = ps.DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255", image_size=8, slice_axis=2)


def write_pair(root, split, stem, mask, *, image=None):
    image_rel, mask_rel = ps.pair_paths(split, stem)
    for rel, array in ((image_rel, np.zeros_like(mask) if image is None else image), (mask_rel, mask)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / rel), array)
    return image_rel, mask_rel


def binary(value=255):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = value
    return mask


def test_stem_rule_paths_and_subject_of_a_stem():
    assert ps.slice_stem("case_01", 7) == "case_01_0007"
    assert ps.pair_paths("test", "case_01_0007") == ("test/images/case_01_0007.png", "test/masks/case_01_0007.png")
    assert ps.subject_of("case_01_0007") == "case_01"
    assert ps.subject_of("case_01_0007_aug2") == "case_01"  # augment's copies keep their subject
    assert ps.subject_of("brain_augusta_0003") == "brain_augusta"
    assert ps.subject_of("x_0001", {"x_0001": "from-manifest"}) == "from-manifest"


def test_pairs_are_sorted_by_stem(tmp_path):
    for stem in ("b_0002", "a_0010", "a_0002"):
        write_pair(tmp_path, "train", stem, binary())
    pairs = ps.list_pairs(tmp_path / "train")
    assert [p.stem for p in pairs] == ["a_0002", "a_0010", "b_0002"]
    assert all(p.image.parent.name == "images" and p.mask.parent.name == "masks" for p in pairs)


def test_every_unpaired_stem_is_named_in_one_error(tmp_path):
    for i in range(14):  # more than any "first ten" cut-off
        write_pair(tmp_path, "train", f"s_{i:04d}", binary())
    lonely = [f"s_{i:04d}" for i in range(12)]
    for stem in lonely:
        (tmp_path / "train" / "masks" / f"{stem}.png").unlink()
    cv2.imwrite(str(tmp_path / "train" / "masks" / "orphan_0001.png"), binary())
    with pytest.raises(DatasetError) as info:
        ps.list_pairs(tmp_path / "train")
    message = str(info.value)
    assert "12 image(s) without a mask" in message and "1 mask(s) without an image: orphan_0001" in message
    assert all(stem in message for stem in lonely)
    assert "\n" not in message


def test_missing_folders_and_empty_split(tmp_path):
    with pytest.raises(DatasetError, match=r"expected folders images/ and masks/ .*missing images/, masks/"):
        ps.list_pairs(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="no .png pairs"):
        ps.list_pairs(tmp_path)
    assert ps.list_pairs(tmp_path, allow_empty=True) == []


def test_manifest_round_trip_subjects_and_rows_of_a_split(tmp_path):
    rows = []
    for split, subject, index in (("train", "p1", 3), ("test", "p2", 0)):
        image, mask = ps.pair_paths(split, ps.slice_stem(subject, index))
        rows.append({"split": split, "subject": subject, "image": image, "mask": mask, "source": "x.nii",
                     "slice_index": index, "foreground_pixels": 9, "original_shape": "8x8", "spacing": "1x1"})
    ps.write_manifest(tmp_path / ps.MANIFEST, rows)
    assert (tmp_path / ps.MANIFEST).read_text().splitlines()[0] == ",".join(ps.MANIFEST_COLUMNS)
    back = ps.read_manifest(tmp_path)
    assert [r["image"] for r in back] == [r["image"] for r in rows] and back[0]["slice_index"] == "3"
    assert [r["subject"] for r in ps.rows_of_split(back, "test")] == ["p2"]
    assert ps.subjects_by_stem(tmp_path) == {"p1_0003": "p1", "p2_0000": "p2"}
    assert ps.read_manifest(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("num_classes", [1, 3])
def test_masks_round_trip_in_the_encoding_prepare_writes(tmp_path, num_classes):
    labels = np.zeros((8, 8), np.uint8)
    labels[1:4, 1:4] = 1
    labels[5:, 5:] = num_classes
    ps.write_mask(tmp_path / "m.png", labels, num_classes=num_classes)
    stored = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(stored)) == ({0, 255} if num_classes == 1 else {0, 1, num_classes})
    np.testing.assert_array_equal(ps.read_mask(tmp_path / "m.png", num_classes=num_classes), labels)


def test_read_mask_is_strict(tmp_path):
    """A one-class mask holding 128 is an error, not foreground (the old `> 0` rule took it)."""
    cv2.imwrite(str(tmp_path / "soft.png"), binary(128))
    with pytest.raises(DatasetError, match=r"soft\.png: one-class mask must be 0/255, found values \[128\]"):
        ps.read_mask(tmp_path / "soft.png", num_classes=1)
    cv2.imwrite(str(tmp_path / "label4.png"), binary(4))
    with pytest.raises(DatasetError, match=r"label4\.png: mask holds labels \[4\]; expected 0\.\.3"):
        ps.read_mask(tmp_path / "label4.png", num_classes=3)
    with pytest.raises(DatasetError, match="cannot be read as a PNG mask"):
        ps.read_mask(tmp_path / "none.png", num_classes=1)


def test_dataset_json_round_trip_and_clear_errors(tmp_path):
    ps.write_info(tmp_path, INFO)
    data = json.loads((tmp_path / ps.DATASET_JSON).read_text())
    assert data["num_classes"] == 1 and data["format_version"] == ps.FORMAT_VERSION
    assert "radiological" in data["orientation"]
    assert ps.read_info(tmp_path) == INFO
    with pytest.raises(DatasetError, match=r"elsewhere/dataset\.json: not found; .*run prepare again"):
        ps.read_info(tmp_path / "elsewhere")
    (tmp_path / ps.DATASET_JSON).write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(DatasetError, match="format_version 99, expected 1"):
        ps.read_info(tmp_path)
    (tmp_path / ps.DATASET_JSON).write_text(json.dumps({**data, "colour": "red"}))
    with pytest.raises(DatasetError, match="not a dataset.json of this pipeline"):
        ps.read_info(tmp_path)


@pytest.mark.parametrize("num_classes, rgb_map, expected", [(1, None, "binary_0_255"), (2, None, "class_index"),
                                                             (1, {0: (0, 0, 0), 1: (9, 9, 9)}, "rgb_map")])
def test_mask_encoding_names(num_classes, rgb_map, expected):
    assert ps.mask_encoding(num_classes=num_classes, rgb_map=rgb_map) == expected


def test_check_set_finds_every_kind_of_problem(tmp_path):
    ps.write_info(tmp_path, INFO)
    rows = []
    for split in ps.SPLITS:
        image, mask = write_pair(tmp_path, split, f"{split}_0001", binary())
        rows.append({"split": split, "subject": split, "image": image, "mask": mask})
    ps.write_manifest(tmp_path / ps.MANIFEST, rows)
    assert ps.check_set(tmp_path) == []
    cv2.imwrite(str(tmp_path / "valid" / "masks" / "valid_0001.png"), binary(7))
    (tmp_path / "test" / "masks" / "test_0001.png").unlink()
    problems = ps.check_set(tmp_path)
    assert len(problems) == 3, problems
    assert "valid_0001.png: one-class mask must be 0/255" in problems[0]
    assert "1 image(s) without a mask: test_0001" in problems[1]
    assert "names test/masks/test_0001.png, not in the set" in problems[2]
    (tmp_path / ps.DATASET_JSON).unlink()
    assert len(ps.check_set(tmp_path)) == 1


def test_no_tensorflow_import():
    code = "import sys, pipeline.dataset.prepared, pipeline.learning.heads; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
