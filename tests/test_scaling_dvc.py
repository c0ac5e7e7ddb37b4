"""Many experiments and a shared remote, with the real dvc in a throw-away repository:
raw data inside the repo seen by queued runs, a grid queued with -S, two queue workers each with
its own CUDA_VISIBLE_DEVICES, push/clone/pull up to date, and links instead of copies in the cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, dvc, edit_params, make_dvc_repo, run

pytestmark = pytest.mark.slow


def _tiny(params: dict) -> None:
    params["image_size"] = 64
    params["n_jobs"] = 1
    lasc = params["datasets"]["lasc"]
    lasc["synth"]["subjects"] = 5
    lasc["train"].update(epochs=1, input_size=32, num_layers=3, base_filters=4, batch_size=4, snapshot_images=1,
                         learning_rate=0.002)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The project with its own .dvc/config, lasc's raw data inside the repo under DVC (raw/lasc.dvc),
    trained once and committed with its dvc.lock."""
    repo = make_dvc_repo(tmp_path_factory.mktemp("scale") / "repo")
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # the cache type we ship
    edit_params(repo, _tiny)
    dvc(repo, "repro", "synth@lasc")
    shutil.copytree(repo / "data/synthetic/lasc", repo / "raw/lasc")  # "your download", inside the repo
    dvc(repo, "add", "raw/lasc")
    edit_params(repo, lambda p: p["datasets"]["lasc"].update(raw="raw/lasc"))
    dvc(repo, "repro", "train@lasc")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    return repo


def _queue_status(repo: Path) -> tuple[dict[str, str], int]:
    """{experiment name: status} and the number of workers up (active + idle)."""
    text = dvc(repo, "queue", "status").stdout
    print(text.strip().splitlines()[-1], flush=True)  # progress, shown when a test fails
    rows = dict(re.findall(r"^\w+\s+(\S+)\s+.*\s(Queued|Running|Success|Failed)\s*$", text, re.M))
    workers = re.search(r"Worker status: (\d+) active, (\d+) idle", text)
    return rows, int(workers[1]) + int(workers[2]) if workers else 0


def _start_worker(repo: Path, number: int, gpu: str) -> None:
    """Worker ``number`` with one GPU; waits until it is up so that the next start adds a new one
    (`dvc queue start -j N` starts the workers 1..N it does not see running)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo), "DVC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(number)], cwd=repo, env=env,
                   check=True, capture_output=True)
    deadline = time.monotonic() + 30  # a busy worker may not answer the status query in time
    while time.monotonic() < deadline:
        states, workers = _queue_status(repo)
        if workers >= number or "Queued" not in states.values():  # up, or nothing left for it to take
            return
        time.sleep(1)


def test_raw_data_inside_the_repo_reaches_temp_runs_only_when_tracked_or_copied(baseline):
    shutil.copytree(baseline / "raw/lasc", baseline / "data/raw/lasc")  # git-ignored, untracked
    try:
        lost = dvc(baseline, "exp", "run", "--temp", "-S", "datasets.lasc.raw=data/raw/lasc", "prepare@lasc",
                   check=False)
        assert lost.returncode != 0 and "data/raw/lasc" in lost.stderr + lost.stdout
        copied = dvc(baseline, "exp", "run", "--temp", "-C", "data/raw/lasc", "-S", "datasets.lasc.raw=data/raw/lasc",
                     "prepare@lasc")
        assert "prepare@lasc: " in copied.stdout and "pairs" in copied.stdout
    finally:
        shutil.rmtree(baseline / "data/raw")


def test_grid_and_queue_run_on_two_workers_each_with_its_own_gpu(baseline):
    grid = dvc(baseline, "exp", "run", "--queue", "train@lasc", "-S", "datasets.lasc.train.batch_size=range(2,8,2)",
               "-S", "datasets.lasc.train.learning_rate=0.001,0.002")
    assert grid.stdout.count("Queued experiment") == 6  # 3 batch sizes x 2 learning rates
    assert list(_queue_status(baseline)[0].values()) == ["Queued"] * 6
    dvc(baseline, "queue", "remove", "--queued")

    dvc(baseline, "exp", "run", "--queue", "train@lasc", "-S", "datasets.lasc.train.learning_rate=0.003,0.004")
    names = list(_queue_status(baseline)[0])
    assert len(names) == 2
    try:
        _start_worker(baseline, 1, "0")
        _start_worker(baseline, 2, "1")
        deadline = time.monotonic() + 900
        while (states := _queue_status(baseline)[0]) and any(s in ("Queued", "Running") for s in states.values()):
            assert time.monotonic() < deadline, states
            time.sleep(5)
    finally:
        dvc(baseline, "queue", "stop", check=False)
    assert set(states.values()) == {"Success"}, states
    for name in names:
        log = dvc(baseline, "queue", "logs", name).stdout
        assert "'raw/lasc.dvc' didn't change" in log  # the raw data reached the queued copy
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\)", log), log  # the worker's GPU reached train
    shown = json.loads(dvc(baseline, "exp", "show", "--json").stdout)
    rates = sorted(rev["data"]["params"]["params.yaml"]["data"]["datasets"]["lasc"]["train"]["learning_rate"]
                   for entry in shown for exp in entry.get("experiments") or [] for rev in exp["revs"]
                   if rev.get("name") in names)
    assert rates == [0.003, 0.004]


def test_push_clone_pull_is_up_to_date(baseline, tmp_path):
    remote = tmp_path / "remote"
    dvc(baseline, "remote", "add", "-d", "team", str(remote))
    run(["git", "commit", "-q", "-am", "remote"], baseline)
    dvc(baseline, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(baseline), str(clone)], tmp_path)
    dvc(clone, "pull", "--with-deps", "train@lasc")  # the stage and everything upstream (only lasc ran)
    assert (clone / "artifacts/lasc/model.keras").is_file()
    assert sorted(p.name for p in (clone / "data/prepared/lasc/valid/images").iterdir()) == \
        sorted(p.name for p in (baseline / "data/prepared/lasc/valid/images").iterdir())
    assert "Data and pipelines are up to date." in dvc(clone, "status", "--with-deps", "train@lasc").stdout
    repro = dvc(clone, "repro", "train@lasc").stdout
    assert "Running stage" not in repro and "didn't change, skipping" in repro


def _reflinks(folder: Path) -> bool:
    probe = folder / ".reflink-probe"
    probe.write_bytes(b"x")
    try:
        return subprocess.run(["cp", "--reflink=always", probe, f"{probe}2"], capture_output=True).returncode == 0
    finally:
        probe.unlink()
        Path(f"{probe}2").unlink(missing_ok=True)


def test_identical_valid_and_test_copies_take_disk_space_once(baseline):
    if _reflinks(baseline):
        pytest.skip("this filesystem reflinks: copies share blocks, not inodes")
    # A stage's output whose content the cache already holds stays a copy until checkout links it.
    dvc(baseline, "checkout", "--relink", "--with-deps", "train@lasc")  # only lasc ran here
    files = [p for folder in ("data/prepared/lasc", "data/augmented/lasc", ".dvc/cache/files")
             for p in (baseline / folder).rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    by_content: dict[str, set[tuple[int, int]]] = {}
    for path in files:
        stat = path.stat()
        by_content.setdefault(hashlib.md5(path.read_bytes()).hexdigest(), set()).add((stat.st_dev, stat.st_ino))
    valid = baseline / "data/augmented/lasc/valid/images"
    name = next(valid.iterdir()).name
    assert os.path.samefile(valid / name, baseline / "data/prepared/lasc/valid/images" / name)
    assert {k: v for k, v in by_content.items() if len(v) > 1} == {}  # each content is one inode
