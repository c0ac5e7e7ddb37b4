"""Speed of the augment path on 512x512 pairs with the default pipeline of params.yaml, against the floor.

The floor is the bare work: an ``A.Compose`` of the same transforms (no applied-params tracking) on
in-memory arrays with the same per-sample seeds, plus cv2 PNG encoding of image and mask. "Ours" is
``pipeline.dataset.augment.augment_set`` on a prepared set on disk: PNG decode, validation, seeding, mask
checks, applied params to JSON, PNG files, manifest. Run: ``python -m benchmarks.augment_bench``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: figures only, no progress bars

import argparse  # noqa: E402
import random
import shutil
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

from benchmarks.machine import two_process_capacity
from pipeline.dataset.augment import augment_set, sample_seed
from pipeline.dataset.prepared import DatasetInfo, write_info
from stages.schema import Settings

ROOT = Path(__file__).resolve().parents[1]
SEED = 42
SEEDS_RATE = 12.3  # variants/s of the seeds' augmentor on the same mix, issue 16 (measured outside the project)


def default_specs(dataset: str = "faz") -> list[dict]:
    return Settings(ROOT / "params.yaml").dataset(dataset)["augment"]["transforms"]


def write_set(root: Path, pairs: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A prepared set of grey 512x512 pairs (textured disc phantom, 0/255 mask), train split only."""
    rng = np.random.default_rng(0)
    samples = []
    for sub in ("images", "masks"):
        (root / "train" / sub).mkdir(parents=True)
    for i in range(pairs):
        image = (rng.normal(60, 20, (512, 512)).clip(0, 255)).astype(np.uint8)
        centre = (int(rng.integers(150, 360)), int(rng.integers(150, 360)))
        cv2.circle(image, centre, int(rng.integers(30, 90)), 190, -1)
        image = cv2.GaussianBlur(image, (5, 5), 0)
        mask = np.where(image > 140, 255, 0).astype(np.uint8)
        stem = f"s{i % 5}_{i}"
        cv2.imwrite(str(root / "train" / "images" / f"{stem}.png"), image)
        cv2.imwrite(str(root / "train" / "masks" / f"{stem}.png"), mask)
        samples.append((stem, image, mask))
    write_info(root, DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255", image_size=512,
                                 slice_axis=2))
    return samples


def bare(samples, specs: list[dict], src: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds for the bare transform + cv2 PNG encode of every sample, one core; with
    ``src``, the cv2 PNG decode of the inputs too (the floor of any stage that reads its set from disk)."""
    compose = A.Compose([getattr(A, s["name"])(**{k: v for k, v in s.items() if k != "name"}) for s in specs])
    t0, c0 = time.perf_counter(), time.process_time()
    for stem, image, mask in samples:
        if src is not None:
            image = cv2.imread(str(src / "train" / "images" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(src / "train" / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        seed = sample_seed(SEED, f"{stem}_aug1")
        compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = compose(image=image, mask=mask)
        cv2.imencode(".png", out["image"])
        cv2.imencode(".png", out["mask"])
    return time.perf_counter() - t0, time.process_time() - c0


def ours(src: Path, work: Path, specs: list[dict], n_jobs: int, tag: str) -> tuple[float, float]:
    """(wall, CPU of this process) seconds of augment_set: the whole job, worker start included."""
    out = work / f"out-{tag}"
    t0, c0 = time.perf_counter(), time.process_time()
    augment_set(src, out, specs=specs, seed=SEED, copies=1, keep_original=False, n_jobs=n_jobs, desc=tag)
    elapsed = time.perf_counter() - t0, time.process_time() - c0
    shutil.rmtree(out)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=240, help="512x512 train pairs to augment")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs, interleaved")
    args = parser.parse_args(argv)
    specs = default_specs()
    cv2.setNumThreads(1)  # compare like with like: one core per process everywhere
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        samples = write_set(work / "prepared", args.pairs)
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "read": [], "one": [], "two": []}
        for r in range(args.repeats):
            runs["bare"].append(bare(samples, specs))
            runs["read"].append(bare(samples, specs, work / "prepared"))
            runs["one"].append(ours(work / "prepared", work, specs, 1, f"j1-{r}"))
            runs["two"].append(ours(work / "prepared", work, specs, 2, f"j2-{r}"))
    capacity = two_process_capacity()
    t = {name: min(w for w, _ in v) for name, v in runs.items()}
    cpu = {name: min(c for _, c in v) for name, v in runs.items()}
    n = args.pairs
    speedup = t["one"] / t["two"]
    print(f"augment, default pipeline ({len(specs)} transforms), {n} pairs of 512x512, best of {args.repeats}, "
          "interleaved")
    print(f"  bare albumentations + cv2 PNG encode, 1 core: {n / t['bare']:7.1f} pairs/s")
    print(f"  same plus cv2 PNG decode of the inputs:       {n / t['read']:7.1f} pairs/s")
    print(f"  augment_set, 1 worker:                        {n / t['one']:7.1f} pairs/s")
    print(f"  augment_set, 2 workers:                       {n / t['two']:7.1f} pairs/s")
    print(f"  ratio 1 worker / (bare + decode + encode): {t['one'] / t['read']:.2f}x  (aim <= 1.10); "
          f"CPU time {cpu['one'] / cpu['read']:.2f}x; vs bare without decode {t['one'] / t['bare']:.2f}x")
    print(f"  2 workers vs 1: {speedup:.2f}x; the machine gives two processes {capacity:.2f}x: "
          f"{speedup / capacity:.0%} of it  (aim >= 90%)")
    print(f"  vs the seeds' ImageMaskAugmentor (12.3 variants/s on this 2-core machine, issue 16): "
          f"{n / t['one'] / SEEDS_RATE:.1f}x with 1 worker, {n / t['two'] / SEEDS_RATE:.1f}x with 2  (aim >= 15x)")


if __name__ == "__main__":
    main()
