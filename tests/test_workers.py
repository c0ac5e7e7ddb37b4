"""pipeline.workers: ordered results, one cancel rule, and workers that die with their stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


# --- threads lent to one task ---------------------------------------------------------------------

def test_thread_map_runs_on_the_lent_threads_in_item_order():
    import threading
    import time

    from pipeline.workers import thread_budget, thread_map, threads_lent

    def slow_name(i: int) -> tuple[int, str]:
        time.sleep(0.05 * (3 - i))  # the first item finishes last
        return i, threading.current_thread().name

    assert threads_lent() == 1
    assert thread_map(slow_name, range(3)) == [(i, threading.current_thread().name) for i in range(3)]
    with thread_budget(3):
        assert threads_lent() == 3
        out = thread_map(slow_name, range(3))
    assert [i for i, _ in out] == [0, 1, 2]
    assert all(name.startswith("subject") for _, name in out) and len({name for _, name in out}) > 1
    assert threads_lent() == 1


def test_thread_map_inside_a_lent_thread_runs_inline_and_errors_propagate():
    from pipeline.workers import concurrently, thread_budget, thread_map

    with thread_budget(2):
        nested = thread_map(lambda i: thread_map(lambda j: i * 10 + j, range(3)), range(2))  # no deadlock
        assert nested == [[0, 1, 2], [10, 11, 12]]

        def fail() -> None:
            raise ValueError("second file damaged")

        with pytest.raises(ValueError, match="second file damaged"):
            concurrently(lambda: 1, fail)


def test_volume_histogram_and_window_are_the_same_on_any_thread_count(monkeypatch):
    from pipeline.slices import intensity
    from pipeline.slices.intensity import _integer_histogram, to_uint8
    from pipeline.workers import thread_budget

    monkeypatch.setattr(intensity, "_CHUNK_VOXELS", 20_000)  # many window slabs, so threads share them
    monkeypatch.setattr(intensity, "_HIST_RUN", 30_000)  # and many histogram runs per part

    volume = np.random.default_rng(4).integers(-1024, 3000, (96, 80, 41)).astype(np.int16)[::-1, :, ::-1]
    spec = {"mode": "percentile", "low": 0.5, "high": 99.5}
    low, counts = _integer_histogram(volume)
    grey = to_uint8(volume, spec=spec)
    with thread_budget(3):
        low3, counts3 = _integer_histogram(volume)
        grey3 = to_uint8(volume, spec=spec)
    assert low == low3 == int(volume.min()) and np.array_equal(counts, counts3)
    assert counts.sum() == volume.size and np.array_equal(grey, grey3) and grey.tobytes() == grey3.tobytes()


@pytest.mark.parametrize("key", ["lasc", "ms", "pancreas", "msd"])
def test_readers_give_the_same_subject_with_lent_threads(tmp_path, key):
    """Readers read a subject's files at once when threads are lent: the same arrays and facts."""
    from pipeline.sources import get_reader
    from pipeline.synth import get_synthesizer
    from pipeline.workers import thread_budget

    if key == "msd":  # three channel volumes and a label, read at once
        from tests.interchange_data import write_msd

        raw, options = write_msd(tmp_path / "Task01_BrainTumour", cases=2), {"channels": [0, 1, 3]}
    else:
        get_synthesizer(key).generate(tmp_path, subjects=3, seed=1)
        raw, options = tmp_path, {}
    reader = get_reader(key)
    ref = next(r for r in reader.discover(raw, **options) if not r.problem)
    alone = reader.load(ref, **options)
    with thread_budget(2):
        lent = reader.load(ref, **options)
    assert alone.image.dtype == lent.image.dtype and np.array_equal(alone.image, lent.image)
    assert np.array_equal(alone.mask, lent.mask) and alone.meta == lent.meta and alone.spacing == lent.spacing
