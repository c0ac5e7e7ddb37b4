"""Speed and memory of prepare as a whole command, against the naive floor and med2image, in one run.

The floor (``benchmarks.floor_export``) is the least an exporter does: nibabel load, one window, cv2
PNG of every image and mask slice. "Ours" is ``python -m stages.prepare`` with the lasc defaults of
params.yaml (percentile intensity, letterbox, RAS+ canonical, label checks, split, manifest,
integrity record). Every figure is a whole command (interpreter start and imports included), best of
three, the variants interleaved so a busy moment hurts them alike. Run: ``python -m benchmarks.prepare_bench``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.machine import two_process_capacity

ROOT = Path(__file__).resolve().parents[1]


def write_ct(folder: Path, name: str, slices: int, seed: int = 0) -> tuple[Path, Path]:
    """An int16 HU body phantom and a 0/1 organ label with foreground on every slice (all kept)."""
    rng = np.random.default_rng(seed)
    x, y = np.ogrid[:512, :512]
    body = ((x - 256) / 200.0) ** 2 + ((y - 256) / 160.0) ** 2 <= 1
    organ = ((x - 230) / 40.0) ** 2 + ((y - 280) / 25.0) ** 2 <= 1
    noise = rng.integers(-30, 30, (512, 512, slices), dtype=np.int16)
    hu = np.where(body, 40, -1000).astype(np.int16)[..., None] + noise
    hu[organ] += 80
    label = np.repeat(organ[..., None], slices, axis=2).astype(np.uint8)
    affine = np.diag([-0.8, -0.8, 2.0, 1.0])  # LPS-stored, as DICOM-derived CT usually is
    paths = (folder / "imagesTr" / f"{name}.nii.gz", folder / "labelsTr" / f"{name}.nii.gz")
    for path, data in zip(paths, (hu, label)):
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), path)
    return paths


def write_msd(folder: Path, volumes: int, slices: int) -> Path:
    """An MSD-style source (dataset.json, imagesTr, labelsTr) of ``volumes`` CT volumes."""
    training = []
    for i in range(volumes):
        write_ct(folder, f"la_{i:03d}", slices, seed=i)
        training.append({"image": f"./imagesTr/la_{i:03d}.nii.gz", "label": f"./labelsTr/la_{i:03d}.nii.gz"})
    (folder / "dataset.json").write_text(json.dumps({"training": training}))
    return folder


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its workers)."""
    start, cpu = time.perf_counter(), cpu_children()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return time.perf_counter() - start, cpu_children() - cpu


def ours(raw: Path, out: Path, jobs: int) -> list[str]:
    shutil.rmtree(out, ignore_errors=True)
    return [sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(raw), "--out", str(out),
            "--n-jobs", str(jobs)]


def floor(raw: Path, out: Path) -> list[str]:
    shutil.rmtree(out, ignore_errors=True)
    return [sys.executable, "-m", "benchmarks.floor_export", str(raw), str(out)]


def med2image(raw: Path, out: Path, executable: str | None) -> list[str] | None:
    """med2image 2.6.6 on the first volume (images only: it writes no masks).

    It needs nibabel<5 and numpy<2, so it lives in a venv of its own: ``make bench`` builds
    ``.venv-m2i`` from ``benchmarks/med2image-requirements.txt`` and passes ``--med2image
    .venv-m2i/bin/med2image`` (or have it on PATH).
    """
    executable = executable if executable and Path(executable).is_file() else shutil.which("med2image")
    if not executable:
        return None
    shutil.rmtree(out, ignore_errors=True)
    image = next(iter(sorted((raw / "imagesTr").glob("*.nii.gz"))))
    return [executable, "-i", str(image), "-d", str(out), "-o", "s.png", "-t", "png"]


def peak(files: list[str], out: str) -> None:
    """Child mode: one subject through run_task in this process; print peak resident MB and pairs."""
    from pipeline.dataset.prepare import Task, run_task
    from pipeline.sources.subject import SubjectRef

    options = dict(size=512, letterbox=False, intensity={"mode": "window", "center": 40, "width": 400}, axis=2,
                   channels=1, min_foreground_pixels=1, keep_empty_fraction=0.0, seed=42)
    for kind in ("images", "masks"):
        (Path(out) / "train" / kind).mkdir(parents=True, exist_ok=True)
    outcome = run_task(Task("pipeline.sources.lasc", SubjectRef("peak", tuple(files)), {}, "train", out, "", options))
    assert outcome.error is None, outcome.error
    print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {len(outcome.rows)}")


def in_process(raw: Path, out: Path, jobs: int) -> float:
    """Seconds of the subject loop alone (the stage's tasks on ``jobs`` workers, pool start included;
    no interpreter start, imports or params), the part two workers can share."""
    import pipeline.sources.lasc as reader
    from pipeline.dataset.prepare import Task, outcomes_in_order

    shutil.rmtree(out, ignore_errors=True)
    for split in ("train", "valid", "test"):
        for kind in ("images", "masks"):
            (out / split / kind).mkdir(parents=True)
    refs = reader.discover(raw)
    workers = min(jobs, len(refs))
    options = dict(size=512, letterbox=True, intensity={"mode": "percentile", "low": 0.5, "high": 99.5}, axis=2,
                   channels=1, min_foreground_pixels=1, keep_empty_fraction=0.0, seed=42, num_classes=1)
    tasks = [Task(reader.__name__, r, {}, "train", str(out), str(raw), options, threads=max(1, jobs // workers))
             for r in refs]
    start = time.perf_counter()
    with outcomes_in_order(tasks, jobs=workers) as results:
        assert all(o.error is None for o in results)
    return time.perf_counter() - start


def codecs(image: Path, repeats: int) -> tuple[float, float, float]:
    """(gzip read speed-up of isal over Python's gzip, PNG encode speed-up of ours over cv2.imencode,
    bytes ours / cv2) on one volume and its windowed slices, in this process, best of ``repeats``."""
    import gzip

    import cv2
    from isal import igzip

    from pipeline.slices.intensity import window_ct
    from pipeline.slices.png import encode_png

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    blob = image.read_bytes()
    t_gzip, t_isal = best(lambda: gzip.decompress(blob)), best(lambda: igzip.decompress(blob))
    grey = window_ct(np.asanyarray(nib.load(image).dataobj), center=40, width=400)
    slices = [np.ascontiguousarray(grey[:, :, k]) for k in range(grey.shape[2])]
    t_cv2 = best(lambda: [cv2.imencode(".png", s) for s in slices])
    t_ours = best(lambda: [encode_png(s) for s in slices])
    size_cv2 = sum(cv2.imencode(".png", s)[1].size for s in slices)
    size_ours = sum(len(encode_png(s)) for s in slices)
    return t_gzip / t_isal, t_cv2 / t_ours, size_ours / size_cv2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=4, help="volumes of the several-volume comparison")
    parser.add_argument("--slices", type=int, default=60, help="slices of each of those volumes")
    parser.add_argument("--one", type=int, default=120, help="slices of the one-volume comparisons")
    parser.add_argument("--peak-slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--med2image", help="med2image executable to time beside ours (default: on PATH)")
    parser.add_argument("--peak", nargs=3, metavar=("IMAGE", "LABEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak:
        return peak(args.peak[:2], args.peak[2])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        several = write_msd(tmp / "several", args.volumes, args.slices)
        one = write_msd(tmp / "one", 1, args.one)
        variants = {
            "floor": lambda: floor(several, tmp / "o"),
            "ours": lambda: ours(several, tmp / "o", 1),
            "ours-2": lambda: ours(several, tmp / "o", 2),
            "one-1": lambda: ours(one, tmp / "o", 1),
            "one-2": lambda: ours(one, tmp / "o", 2),
        }
        if med2image(one, tmp / "o", args.med2image):
            variants["med2image"] = lambda: med2image(one, tmp / "o", args.med2image)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, cmd in variants.items():
                runs[name].append(timed(cmd()))
        best = {name: min(wall for wall, _ in times) for name, times in runs.items()}
        cpu = {name: min(c for _, c in times) for name, times in runs.items()}
        capacity = two_process_capacity()

        pairs = args.volumes * args.slices
        print(f"prepare as a whole command (interpreter and imports included), best of {args.repeats}, interleaved")
        print(f"  {args.volumes} volumes 512x512x{args.slices} .nii.gz, 1 worker: floor {best['floor']:.2f} s, "
              f"ours {best['ours']:.2f} s ({pairs / best['ours']:.0f} pairs/s)")
        print(f"  ratio ours/floor: {best['ours'] / best['floor']:.2f}x  (aim <= 0.80); CPU time "
              f"{cpu['ours'] / cpu['floor']:.2f}x ({cpu['floor']:.2f} s vs {cpu['ours']:.2f} s)")
        print(f"  same, 2 workers: {best['ours-2']:.2f} s, {best['ours'] / best['ours-2']:.2f}x one worker "
              f"(the interpreter, imports and the workers' server start are not shared)")
        print(f"  one volume 512x512x{args.one}: 1 worker {best['one-1']:.2f} s, 2 workers {best['one-2']:.2f} s, "
              f"{best['one-1'] / best['one-2']:.2f}x")
        if "med2image" in best:
            m2i = best["med2image"]
            print(f"  vs med2image 2.6.6 on that volume (images only): {m2i:.2f} s; ours {m2i / best['one-1']:.1f}x "
                  f"faster with 1 worker, {m2i / best['one-2']:.1f}x with 2  (aim >= 12x)")
        else:
            print("  med2image: not installed, ratio not measured (see --med2image)")
        loops = {name: [] for name in ("several-1", "several-2", "one-1", "one-2")}
        for _ in range(args.repeats):
            for name in loops:
                loops[name].append(in_process(several if name.startswith("several") else one, tmp / "i",
                                              int(name[-1])))
        loop = {name: min(times) for name, times in loops.items()}
        several_up, one_up = loop["several-1"] / loop["several-2"], loop["one-1"] / loop["one-2"]
        print(f"  subject loop in one process (no interpreter start or imports; pool start included), best of "
              f"{args.repeats}:")
        print(f"    {args.volumes} volumes, 1 vs 2 worker processes: {loop['several-1']:.2f} s vs "
              f"{loop['several-2']:.2f} s, {several_up:.2f}x: {several_up / capacity:.0%} of the machine's "
              f"{capacity:.2f}x  (aim >= 90%)")
        print(f"    one volume, 1 vs 2 threads: {loop['one-1']:.2f} s vs {loop['one-2']:.2f} s, {one_up:.2f}x: "
              f"{one_up / capacity:.0%} (its gzip stream inflates on one thread: the bound of one volume)")
        gz, png, size = codecs(next((one / "imagesTr").glob("*.nii.gz")), args.repeats)
        print(f"  gzip NIfTI read: isal {gz:.2f}x Python's gzip; PNG encode of its slices: ours {png:.2f}x "
              f"cv2.imencode, {size - 1:+.1%} bytes (one thread each)")
        image, label = write_ct(tmp / "peak", "ct300", args.peak_slices)
        res = subprocess.run([sys.executable, "-m", "benchmarks.prepare_bench", "--peak", str(image), str(label),
                              str(tmp / "pk")], cwd=ROOT, capture_output=True, text=True, check=True)
        mb, written = res.stdout.split()
        print(f"  peak memory, 512x512x{args.peak_slices} volume in one process: {mb} MB for {written} pairs "
              "(aim < 1536)")


if __name__ == "__main__":
    main()
