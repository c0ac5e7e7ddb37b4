"""Atomic outputs: a prepare run killed mid-way (SIGKILL) leaves no partial set, and reruns are exact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = 12

pytestmark = pytest.mark.slow


def tree_hash(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_params(tmp: Path, keep_empty_fraction: float) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["lasc"]["prepare"]["keep_empty_fraction"] = keep_empty_fraction
    path = tmp / f"params-{keep_empty_fraction}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def prepare_cmd(raw: Path, out: Path, params: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(raw), "--out", str(out),
            "--params", str(params), "--n-jobs", str(jobs)]


def prepare(raw: Path, out: Path, params: Path, jobs: int = 1) -> dict[str, str]:
    subprocess.run(prepare_cmd(raw, out, params, jobs), cwd=ROOT, check=True, capture_output=True)
    return tree_hash(out)


def prepare_killed_midway(raw: Path, out: Path, params: Path) -> None:
    """Start prepare (2 workers), SIGKILL its whole process group once some PNGs are written."""
    proc = subprocess.Popen(prepare_cmd(raw, out, params, 2), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(next(tmp.rglob("*.png"), None) for tmp in out.parent.glob(f".tmp-{out.name}-*")):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "prepare finished before it could be interrupted; make the source bigger"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw") / "lasc"
    subprocess.run([sys.executable, "-m", "stages.synth", "--dataset", "lasc", "--out", str(raw),
                    "--subjects", str(SUBJECTS)], cwd=ROOT, check=True, capture_output=True)
    return raw


def test_killed_run_leaves_nothing_and_rerun_is_byte_identical(raw, tmp_path):
    params = write_params(tmp_path, 0.0)
    reference = prepare(raw, tmp_path / "reference", params)
    assert sum(name.endswith(".png") for name in reference) > 20

    out = tmp_path / "out"
    prepare_killed_midway(raw, out, params)
    assert not out.exists()  # no partial set under the output name
    assert list(tmp_path.glob(".tmp-out-*"))  # the killed run's scratch folder is beside it ...

    assert prepare(raw, out, params) == reference
    assert not list(tmp_path.glob(".tmp-out-*"))  # ... and the next run removes it


def test_killed_run_keeps_previous_set_and_no_stale_files_survive(raw, tmp_path):
    zero, half = write_params(tmp_path, 0.0), write_params(tmp_path, 0.5)
    out = tmp_path / "out"
    first = prepare(raw, out, zero)

    prepare_killed_midway(raw, out, half)
    assert tree_hash(out) == first  # the previous complete set, untouched

    with_empty = prepare(raw, out, half)
    extra = set(with_empty) - set(first)
    assert any(name.endswith(".png") for name in extra)  # kept empty slices: files only this run writes

    assert prepare(raw, out, zero, jobs=2) == first  # none of them survives the rerun
