"""The FAZ reader on its synthetic stand-in and on hand-made broken zips."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.sources import faz
from pipeline.dataset.integrity import summarise, summarise_subject
from pipeline.synth.faz import generate


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faz")
    generate(out, subjects=12, seed=1)
    return out


def square_json(height: int, width: int, name: str = "1.png") -> bytes:
    return json.dumps({"shapes": [{"label": "FAZ", "shape_type": "polygon",
                                   "points": [[2, 2], [6, 2], [6, 6], [2, 6]]}],
                       "imagePath": name, "imageHeight": height, "imageWidth": width}).encode()


def grey_png(height: int, width: int) -> bytes:
    return cv2.imencode(".png", np.full((height, width), 90, np.uint8))[1].tobytes()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_synth_zip_layout_and_determinism(raw, tmp_path):
    with zipfile.ZipFile(raw / "FAZ.zip") as zf:
        names = zf.namelist()
    assert "FAZ_sgementation/deep_all/1.png" in names and "FAZ_sgementation/superficial_all/6.json" in names
    assert any(n.startswith("__MACOSX/") for n in names)
    generate(tmp_path, subjects=12, seed=1)
    assert (tmp_path / "FAZ.zip").read_bytes() == (raw / "FAZ.zip").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    generate(other, subjects=12, seed=2)
    assert (other / "FAZ.zip").read_bytes() != (raw / "FAZ.zip").read_bytes()


def test_discover_subjects_and_provenance(raw):
    refs = faz.discover(raw)
    ids = [r.subject_id for r in refs]
    assert ids == [f"deep_{n}" for n in range(1, 7)] + [f"superficial_{n}" for n in range(1, 7)]
    assert refs[0].files == (f"{raw / 'FAZ.zip'}::FAZ_sgementation/deep_all/1.png",
                             f"{raw / 'FAZ.zip'}::FAZ_sgementation/deep_all/1.json")


def test_load_stack_of_one_with_dark_zone_under_the_polygon(raw):
    shapes = set()
    for ref in faz.discover(raw):
        subject = faz.load(ref)
        assert subject.layout == "stack" and subject.modality == "8bit" and subject.num_slices == 1
        assert subject.image.dtype == np.float32 and subject.mask.dtype == np.uint8
        assert subject.image.shape == subject.mask.shape
        assert set(np.unique(subject.mask).tolist()) == {0, 1}
        assert subject.sources == ref.files
        inside = subject.image[subject.mask == 1].mean()
        outside = subject.image[subject.mask == 0].mean()
        assert inside < 35 and outside > inside + 20
        shapes.add(subject.image.shape[1:])
    assert shapes == {(304, 304), (320, 320), (360, 400)}


def test_extra_top_folder_and_extracted_tree(tmp_path):
    members = {"download/FAZ_sgementation/deep_all/7.png": grey_png(10, 14),
               "download/FAZ_sgementation/deep_all/7.json": square_json(10, 14, "7.png")}
    write_zip(tmp_path / "zipped" / "octa.zip", members)
    (ref,) = faz.discover(tmp_path / "zipped")
    assert ref.subject_id == "deep_7"
    subject = faz.load(ref)
    assert subject.mask.shape == (1, 10, 14) and subject.mask.sum() == 25
    tree = tmp_path / "tree" / "FAZ_sgementation" / "superficial_all"
    tree.mkdir(parents=True)
    (tree / "3.png").write_bytes(grey_png(10, 14))
    (tree / "3.json").write_bytes(square_json(10, 14, "3.png"))
    (ref,) = faz.discover(tmp_path / "tree")
    assert ref.subject_id == "superficial_3" and ref.files[0] == str(tree / "3.png")
    assert faz.load(ref).mask.sum() == 25


def test_unpaired_files_are_listed_together(tmp_path):
    write_zip(tmp_path / "FAZ.zip", {
        "FAZ_sgementation/deep_all/1.png": grey_png(10, 10), "FAZ_sgementation/deep_all/1.json": square_json(10, 10),
        "FAZ_sgementation/deep_all/2.png": grey_png(10, 10),
        "FAZ_sgementation/superficial_all/3.json": square_json(10, 10),
    })
    with pytest.raises(DatasetError, match=r"2 unpaired FAZ files") as info:
        faz.discover(tmp_path)
    message = str(info.value)
    assert "image without LabelMe JSON: " in message and "deep_all/2.png" in message
    assert "JSON without image: " in message and "superficial_all/3.json" in message


def test_nothing_found(tmp_path):
    write_zip(tmp_path / "FAZ.zip", {"readme.txt": b"hello", "images/cover.png": grey_png(4, 4)})
    with pytest.raises(DatasetError, match=r"no FAZ images found: expected a zip .*FAZ_sgementation/<category>_all"):
        faz.discover(tmp_path)


def test_load_errors_name_the_member(tmp_path):
    jpeg = cv2.imencode(".jpg", np.zeros((10, 10), np.uint8))[1].tobytes()
    write_zip(tmp_path / "FAZ.zip", {
        "FAZ_sgementation/deep_all/1.png": jpeg, "FAZ_sgementation/deep_all/1.json": square_json(10, 10),
        "FAZ_sgementation/deep_all/2.png": grey_png(10, 12), "FAZ_sgementation/deep_all/2.json": square_json(12, 10),
    })
    first, second = faz.discover(tmp_path)
    with pytest.raises(DatasetError, match=r"FAZ\.zip::FAZ_sgementation/deep_all/1\.png: extension \.png says PNG"):
        faz.load(first)
    with pytest.raises(DatasetError, match=r"deep_all/2\.json: JSON says imageHeight x imageWidth = 12 x 10 but its image is 10 x 12"):
        faz.load(second)


def test_archive_limits_are_reader_options(raw):
    with pytest.raises(DatasetError, match="exceeds max_member_bytes=1000"):
        faz.discover(raw, max_member_bytes=1000)


def test_category_folders_with_or_without_all_suffix(tmp_path):
    """Issue 11: category folders had to end in _all; deep/ and deep_all/ are both the category deep."""
    write_zip(tmp_path / "FAZ.zip", {
        "FAZ_sgementation/deep/1.png": grey_png(10, 10), "FAZ_sgementation/deep/1.json": square_json(10, 10),
        "FAZ_sgementation/superficial_all/1.png": grey_png(10, 10),
        "FAZ_sgementation/superficial_all/1.json": square_json(10, 10),
    })
    assert [r.subject_id for r in faz.discover(tmp_path)] == ["deep_1", "superficial_1"]


def labelme_doc(*shapes: tuple[str, list]) -> bytes:
    return json.dumps({"shapes": [{"label": label, "shape_type": "polygon", "points": points}
                                  for label, points in shapes],
                       "imagePath": "1.png", "imageHeight": 10, "imageWidth": 10}).encode()


def test_only_shapes_labelled_faz_are_painted_and_others_counted(tmp_path):
    """Issue 11 / SOURCES.md: more than one shape per file; every polygon was painted as FAZ whatever its label."""
    write_zip(tmp_path / "FAZ.zip", {
        "FAZ_sgementation/deep_all/1.png": grey_png(10, 10),
        "FAZ_sgementation/deep_all/1.json": labelme_doc(("faz", [[1, 1], [3, 1], [3, 3], [1, 3]]),
                                                        ("vessel", [[6, 6], [8, 6], [8, 8], [6, 8]])),
    })
    (ref,) = faz.discover(tmp_path)
    subject = faz.load(ref)
    assert subject.mask[0, 2, 2] == 1 and subject.mask[0, 7, 7] == 0  # label compared without case
    assert subject.meta["polygons"] == 1 and subject.meta["other_shapes"] == 1
    assert summarise([summarise_subject(subject)], [])["reader_counts"]["other_shapes"] == 1
    assert faz.load(ref, faz_labels=("vessel", "FAZ")).mask[0, 7, 7] == 1
    with pytest.raises(DatasetError, match=r"1\.json: no shape labelled optic: its shapes are labelled \['faz', 'vessel'\]; set prepare\.reader\.faz_labels"):
        faz.load(ref, faz_labels=("optic",))


def test_synth_has_both_categories_and_a_second_shape_with_another_label(raw):
    refs = faz.discover(raw)
    assert {r.subject_id.split("_")[0] for r in refs} == {"deep", "superficial"}
    others = [faz.load(r).meta["other_shapes"] for r in refs]
    assert sum(others) == 1
