"""pipeline.workers: ordered results, one cancel rule, and workers that die with their stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.workers import ordered_results
from tests import workers_helpers as helpers

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("jobs", [1, 3])
def test_results_come_in_item_order(jobs):
    with ordered_results(helpers.slow_square, range(12), jobs=jobs) as results:
        assert list(results) == [x * x for x in range(12)]


def test_leaving_early_cancels_the_tasks_not_started(tmp_path):
    tasks = [(str(tmp_path), i) for i in range(40)]
    start = time.monotonic()
    with ordered_results(helpers.mark_and_sleep, tasks, jobs=2) as results:
        for value in results:
            assert value == 0
            break
    elapsed = time.monotonic() - start
    started = len(list(tmp_path.glob("*.started")))
    # 40 tasks x 0.3 s on 2 workers would take 6 s; leaving after the first runs only a few more
    assert started < 10, f"{started} of 40 tasks ran after the caller left"
    assert elapsed < 5


def test_an_error_leaves_early_and_does_not_hang():
    start = time.monotonic()
    with pytest.raises(ValueError, match="task 0 fails"):
        with ordered_results(helpers.fail_on, range(40), jobs=2) as results:
            list(results)
    assert time.monotonic() - start < 5  # 40 x 0.3 s / 2 workers = 6 s if nothing were cancelled


def _descendants(pid: int) -> set[int]:
    """Every living process under ``pid``, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_of_a_stage_leaves_no_worker_behind(tmp_path):
    raw = tmp_path / "raw"
    subprocess.run([sys.executable, "-m", "stages.synth", "--dataset", "lasc", "--out", str(raw),
                    "--subjects", "12"], cwd=ROOT, check=True, capture_output=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(raw),
         "--out", str(tmp_path / "out"), "--n-jobs", "2"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _descendants(proc.pid)
            # two pool workers under the forkserver (plus the server and the resource tracker)
            if len(workers) >= 4 and any(tmp_path.glob(".tmp-out-*/*/images/*.png")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "prepare finished before it could be killed; make the source bigger"
        assert len(workers) >= 3, f"expected worker processes under the stage, found {sorted(workers)}"
        os.kill(proc.pid, signal.SIGKILL)  # the stage only, not its process group
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        left = sorted(p for p in workers if _alive(p))
        assert left == [], f"processes of the killed stage still alive: {left}"
    finally:
        for pid in [proc.pid, *_descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
