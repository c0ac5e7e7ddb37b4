"""Integrity report: per-subject summaries, the dataset summary and the check stage."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.dataset.integrity import error_record, format_report, summarise, summarise_subject
from pipeline.sources.subject import Subject, SubjectRef
from stages import check


def make_subject(sid="a", shape=(8, 9, 4), spacing=(1.0, 1.0, 2.5), labels=(0, 1), **kw) -> Subject:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, shape).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    for i, v in enumerate(labels):
        mask.flat[i] = v
    fields = dict(
        subject_id=sid, image=image, mask=mask, spacing=spacing, sources=(f"/raw/{sid}.nii.gz",),
        modality="MR", layout="volume", affine=np.eye(4),
    )
    fields.update(kw)
    return Subject(**fields)


def test_clean_subject_has_no_problems():
    rec = summarise_subject(make_subject(), expected_labels=[0, 1])
    assert rec["problems"] == []
    assert rec["shape"] == [8, 9, 4] and rec["spacing"] == [1.0, 1.0, 2.5]
    assert rec["labels"] == [0, 1] and rec["foreground_voxels"] == 1
    p = rec["percentiles"]
    assert p["0.5"] < p["50.0"] < p["99.5"]
    assert 90 < p["50.0"] < 110
    json.dumps(rec)


def test_nan_inf_are_counted_and_excluded_from_percentiles():
    s = make_subject()
    s.image[0, 0, 0] = np.nan
    s.image[1, 0, 0] = np.inf
    s.image[2, 0, 0] = -np.inf
    rec = summarise_subject(s)
    assert rec["nan"] == 1 and rec["inf"] == 2
    assert np.isfinite(list(rec["percentiles"].values())).all()
    assert len(rec["problems"]) == 1
    assert rec["problems"][0].startswith("/raw/a.nii.gz: 1 NaN and 2 Inf")


def test_stray_labels_shape_mismatch_and_bad_spacing_are_problems():
    s = make_subject(labels=(0, 1, 2, 7), spacing=(1.0, 0.0, 2.0))
    s2 = Subject(**{**s.__dict__, "mask": s.mask[:7]})
    rec = summarise_subject(s2, expected_labels=[0, 1])
    text = "\n".join(rec["problems"])
    assert "mask labels [2, 7] outside the expected [0, 1]" in text
    assert "image shape (8, 9, 4) differs from mask shape (7, 9, 4)" in text
    assert "spacing [1.0, 0.0, 2.0]" in text
    assert len(rec["problems"]) == 3


def test_without_expected_labels_any_label_is_fine():
    assert summarise_subject(make_subject(labels=(0, 5)))["problems"] == []


def test_summary_min_median_max_labels_and_errors():
    recs = [
        summarise_subject(make_subject("a", shape=(8, 9, 4), spacing=(1.0, 1.0, 2.0), labels=(0, 1))),
        summarise_subject(make_subject("b", shape=(10, 9, 6), spacing=(0.5, 1.0, 3.0), labels=(0,))),
        summarise_subject(make_subject("c", shape=(12, 9, 5), spacing=(0.8, 1.0, 4.0), labels=(0, 2))),
    ]
    errors = [
        error_record(DatasetError("/raw/x", "unpaired: images without masks: x"), stage="discover"),
        error_record(DatasetError("/raw/d.nii.gz", "truncated file"), subject="d"),
    ]
    rep = summarise(recs, errors)
    assert rep["shape"] == {"min": [8, 9, 4], "median": [10, 9, 5], "max": [12, 9, 6]}
    assert rep["spacing"]["min"] == [0.5, 1.0, 2.0] and rep["spacing"]["median"] == [0.8, 1.0, 3.0]
    assert rep["labels"] == [0, 1, 2]
    assert rep["subjects_found"] == 4 and rep["subjects_loaded"] == 3
    assert rep["subjects_failed"] == ["d"]
    assert rep["empty_masks"] == ["b"]
    assert rep["problem_count"] == 2 and not rep["ok"]
    assert rep["problems"] == ["/raw/x: unpaired: images without masks: x", "/raw/d.nii.gz: truncated file"]
    text = format_report(rep, dataset="ms")
    assert "4 subjects found, 3 loaded, 2 problem(s)" in text
    assert "median 10x9x5" in text and "/raw/d.nii.gz: truncated file" in text
    json.dumps(rep)


def test_summary_of_clean_records_is_ok_and_ragged_shapes_give_none():
    stack = make_subject("s", shape=(3, 6, 7), spacing=(1.0, 1.0), layout="stack", affine=None)
    rep = summarise([summarise_subject(make_subject()), summarise_subject(stack)], [])
    assert rep["ok"] and rep["problems"] == []
    assert rep["shape"] is not None and rep["spacing"] is None
    assert "no problems found" in format_report(rep)


def fake_reader(subjects: dict, discover_error: DatasetError | None = None):
    def discover(raw, **options):
        if discover_error:
            raise discover_error
        return [SubjectRef(sid, (f"{raw}/{sid}",)) for sid in subjects]

    def load(ref, **options):
        value = subjects[ref.subject_id]
        if isinstance(value, Exception):
            raise value
        return value

    @dataclasses.dataclass(frozen=True)
    class Options:  # the reader options params.yaml may set (none here)
        pass

    return types.SimpleNamespace(discover=discover, load=load, Options=Options)


def run_check(monkeypatch, tmp_path: Path, reader, capsys) -> tuple[int, dict, str]:
    monkeypatch.setattr(check, "get_reader", lambda key: reader)
    out = tmp_path / "report.json"
    argv = ["--dataset", "lasc", "--raw", str(tmp_path / "raw"), "--out", str(out), "--n-jobs", "1"]
    code = 0
    try:
        check.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.read_text()), capsys.readouterr().out


def test_check_stage_collects_every_problem(monkeypatch, tmp_path, capsys):
    bad = make_subject("b")
    bad.image[0, 0, 0] = np.nan
    reader = fake_reader({
        "a": make_subject("a"),
        "b": bad,
        "c": DatasetError("/raw/c.nii.gz", "not a gzip file: truncated"),
        "d": make_subject("d", labels=(0, 3)),
    })
    code, rep, text = run_check(monkeypatch, tmp_path, reader, capsys)
    assert code == 1
    assert rep["subjects_found"] == 4 and rep["subjects_loaded"] == 3
    assert rep["problem_count"] == 3
    assert "/raw/c.nii.gz: not a gzip file: truncated" in text
    assert "NaN" in text and "mask labels [3]" in text


def test_check_stage_reports_discovery_error_and_clean_run_exits_zero(monkeypatch, tmp_path, capsys):
    err = DatasetError(tmp_path, "2 images without masks: la_004.nii.gz, la_005.nii.gz")
    code, rep, text = run_check(monkeypatch, tmp_path, fake_reader({}, err), capsys)
    assert code == 1 and rep["discovery_errors"][0]["problem"].startswith("2 images without masks")
    assert "la_004.nii.gz" in text

    code, rep, text = run_check(monkeypatch, tmp_path, fake_reader({"a": make_subject("a")}), capsys)
    assert code == 0 and rep["ok"] and "no problems found" in text


def test_check_stage_on_real_sources(tmp_path, capsys):
    """The real lasc reader on a synthetic source: clean passes; NaN and a stray label both listed."""
    import nibabel as nib

    from pipeline.synth import get_synthesizer

    raw = tmp_path / "lasc"
    raw.mkdir()
    get_synthesizer("lasc").generate(raw, subjects=3, seed=5, layout="msd")
    check.main(["--dataset", "lasc", "--raw", str(raw), "--out", str(tmp_path / "ok.json"), "--n-jobs", "1"])
    rep = json.loads((tmp_path / "ok.json").read_text())
    assert rep["ok"] and rep["subjects_found"] == 3 and rep["labels"] == [0, 1]
    assert len(rep["shape"]["min"]) == 3 and rep["spacing"]["median"][2] > 1
    assert set(rep["orientations"]) <= {"LPS", "RAS", "LAS"} and sum(rep["orientations"].values()) == 3
    capsys.readouterr()

    for name, edit in (("imagesTr/la_003.nii.gz", lambda d: np.where(d > np.median(d), np.nan, d)),
                       ("labelsTr/la_004.nii.gz", lambda d: (d * 2).astype(np.uint8))):
        path = raw / "Task02_Heart" / name
        img = nib.load(path, mmap=False)
        data = edit(np.asarray(img.dataobj).astype(np.float32))
        nib.save(nib.Nifti1Image(data.astype(np.float32 if "images" in name else np.uint8), img.affine), path)
    with pytest.raises(SystemExit) as exc:
        check.main(["--dataset", "lasc", "--raw", str(raw), "--out", str(tmp_path / "bad.json"), "--n-jobs", "2"])
    assert exc.value.code == 1
    rep = json.loads((tmp_path / "bad.json").read_text())
    assert rep["subjects_found"] == 3 and rep["subjects_loaded"] == 2  # labels above 1 load, then count
    assert rep["subjects_failed"] == ["la_003"]
    text = capsys.readouterr().out
    assert "imagesTr/la_003.nii.gz" in text and "NaN" in text
    assert "la_004.nii.gz: mask labels [2] outside the expected [0, 1]" in text


def test_check_stage_reports_a_prepared_set(tmp_path, capsys):
    """`--prepared` alone checks a set on disk: exit 0 when usable, 1 naming each bad file."""
    import cv2

    from pipeline.dataset.prepared import DatasetInfo, write_info

    root = tmp_path / "set"
    root.mkdir()
    write_info(root, DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255", image_size=8, slice_axis=2))
    for split in ("train", "valid", "test"):
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True)
            cv2.imwrite(str(root / split / kind / f"{split}_0000.png"), np.full((8, 8), 255, np.uint8))
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    check.main(["--dataset", "lasc", "--params", str(params), "--prepared", str(root)])
    assert "no problems found" in capsys.readouterr().out
    cv2.imwrite(str(root / "test" / "masks" / "test_0000.png"), np.full((8, 8), 3, np.uint8))
    with pytest.raises(SystemExit) as exc:
        check.main(["--dataset", "lasc", "--params", str(params), "--prepared", str(root)])
    assert exc.value.code == 1
    assert "test_0000.png: one-class mask must be 0/255, found values [3]" in capsys.readouterr().out


def test_constant_image_is_a_problem_unless_the_caller_already_refused_it():
    flat = make_subject()
    flat = Subject(**{**flat.__dict__, "image": np.full(flat.image.shape, 7, np.int16)})
    problems = summarise_subject(flat)["problems"]
    assert len(problems) == 1 and "image is constant (7 everywhere)" in problems[0]
    assert summarise_subject(flat, known_not_constant=True)["problems"] == []  # prepare refused it already
