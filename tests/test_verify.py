"""scripts.verify: tree hashing, comparison and an end-to-end reproducibility run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.verify import compare, hash_tree, stage_commands, write_params

ROOT = Path(__file__).resolve().parents[1]


def test_hash_tree_and_compare_find_changed_added_and_missing_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "x" / "y").mkdir(parents=True)
        (root / "x" / "y" / "same.png").write_bytes(b"\x89PNG same")
        (root / "changed.csv").write_text("1,2\n")
    (b / "changed.csv").write_text("1,3\n")
    (a / "only_a.txt").write_text("a")
    (b / "x" / "only_b.txt").write_text("b")
    ha, hb = hash_tree(a), hash_tree(b)
    assert set(ha) == {"x/y/same.png", "changed.csv", "only_a.txt"}
    assert ha["x/y/same.png"] == hb["x/y/same.png"]
    assert compare(ha, hb) == ["changed.csv", "only_a.txt", "x/only_b.txt"]
    assert compare(ha, dict(ha)) == []


def test_write_params_sets_jobs_and_subjects_only(tmp_path):
    import yaml

    dest = write_params(ROOT / "params.yaml", tmp_path / "p.yaml", dataset="lasc", n_jobs=2, subjects=3)
    new, old = yaml.safe_load(dest.read_text()), yaml.safe_load((ROOT / "params.yaml").read_text())
    assert new["n_jobs"] == 2 and new["datasets"]["lasc"]["synth"]["subjects"] == 3
    new["n_jobs"] = old["n_jobs"]
    del new["datasets"]["lasc"]["synth"]["subjects"]  # lasc takes the default subjects
    assert new == old


def test_stage_commands_skip_synth_when_raw_given(tmp_path):
    cmds = stage_commands("ms", tmp_path, tmp_path / "p.yaml", Path("/data/ms"))
    assert list(cmds) == ["prepare", "augment"]
    assert cmds["prepare"][cmds["prepare"].index("--raw") + 1] == "/data/ms"
    assert list(stage_commands("ms", tmp_path, tmp_path / "p.yaml", None)) == ["synth", "prepare", "augment"]


@pytest.mark.slow
def test_verify_end_to_end_on_small_lasc(tmp_path):
    """synth, prepare and augment (with random spatial and intensity transforms) match byte for byte."""
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 128
    params["datasets"]["lasc"]["augment"].update(copies=2, transforms=[
        {"name": "Rotate", "limit": [-20, 20], "p": 0.8},
        {"name": "ElasticTransform", "alpha": 30, "sigma": 5, "p": 0.5},
        {"name": "RandomBrightnessContrast", "p": 0.5},
    ])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.verify", "--dataset", "lasc", "--subjects", "3",
         "--params", str(tmp_path / "params.yaml"), "--keep", str(tmp_path / "w")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("synth", "prepare", "augment"):
        assert f"{stage}: identical" in proc.stdout
    run1 = tmp_path / "w" / "run1-jobs1"
    assert any((run1 / "prepare").rglob("*.png"))
    assert len(list((run1 / "augment" / "train" / "images").glob("*.png"))) > len(
        list((run1 / "prepare" / "train" / "images").glob("*.png")))


@pytest.mark.slow
def test_verify_reports_a_difference(tmp_path, monkeypatch, capsys):
    """A second run with another image size must be reported as different, exit 1."""
    import yaml

    from scripts import verify

    src = tmp_path / "src"
    subprocess.run([sys.executable, "-m", "stages.synth", "--dataset", "lasc", "--out", str(src),
                    "--subjects", "3"], cwd=ROOT, check=True, capture_output=True)
    real = verify.write_params

    def write_params(src_params, dest, *, dataset, n_jobs, subjects):
        real(src_params, dest, dataset=dataset, n_jobs=n_jobs, subjects=subjects)
        if n_jobs == 2:
            params = yaml.safe_load(dest.read_text())
            params["image_size"] = 256
            dest.write_text(yaml.safe_dump(params, sort_keys=False))
        return dest

    monkeypatch.setattr(verify, "write_params", write_params)
    monkeypatch.chdir(ROOT)
    assert verify.main(["--dataset", "lasc", "--raw", str(src), "--keep", str(tmp_path / "w")]) == 1
    out = capsys.readouterr().out
    assert "prepare: DIFFERENT" in out and ".png" in out
