"""How long ``python -m stages.<x> --help`` takes (the time before any stage can say anything).

Heavy libraries (TensorFlow, keras, dvclive, matplotlib, albumentations, SimpleITK) are imported
only once a stage's flags are read, so --help and ordinary mistakes answer in well under a second.
Run: ``python -m benchmarks.cli_bench [--repeat 3]``; it prints the best of ``repeat`` runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synth", "prepare", "augment", "train", "evaluate", "infer", "check")


def help_seconds(stage: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - start
    print(f"{'stage':<10} --help (s), best of {args.repeat}; a bare python start is {bare:.2f} s")
    for stage in STAGES:
        print(f"{stage:<10} {help_seconds(stage, args.repeat):.2f}")


if __name__ == "__main__":
    main()
