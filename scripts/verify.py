"""Reproducibility check: run synth/prepare/augment twice (n_jobs 1 and 2) and compare every output byte.

Usage: python -m scripts.verify --dataset lasc [--raw DIR] [--subjects N] [--keep DIR]

Without --raw the source is synthesised in each run (so synth is checked too); with --raw both runs
read that folder. Exit status 0 when all outputs are byte-identical, 1 when any differ, 2 when a
stage fails.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

STAGES = ("synth", "prepare", "augment")


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by its POSIX path relative to ``root``."""
    root = Path(root)
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[path.relative_to(root).as_posix()] = h.hexdigest()
    return digests


def compare(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Sorted names of files whose content differs or that exist in only one of the two trees."""
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


def stage_commands(dataset: str, run: Path, params: Path, raw: Path | None) -> dict[str, list[str]]:
    """The command lines of each stage of one run, writing under ``run``."""
    py = [sys.executable, "-m"]
    common = ["--dataset", dataset, "--params", str(params)]
    cmds = {}
    if raw is None:
        raw = run / "synth"
        cmds["synth"] = [*py, "stages.synth", *common, "--out", str(raw)]
    cmds["prepare"] = [*py, "stages.prepare", *common, "--raw", str(raw), "--out",
                       str(run / "prepare"), "--reports", str(run / "reports" / "prepare")]
    cmds["augment"] = [*py, "stages.augment", *common, "--in", str(run / "prepare"), "--out",
                       str(run / "augment"), "--reports", str(run / "reports" / "augment")]
    return cmds


def write_params(src: Path, dest: Path, *, dataset: str, n_jobs: int, subjects: int | None) -> Path:
    params = yaml.safe_load(Path(src).read_text())
    params["n_jobs"] = n_jobs
    if subjects is not None:
        params["datasets"][dataset].setdefault("synth", {})["subjects"] = subjects
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--raw", type=Path, help="real source folder (default: synthesise one)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--subjects", type=int, help="synthetic subjects (default: params)")
    parser.add_argument("--jobs", type=int, nargs=2, default=(1, 2), help="n_jobs of the two runs")
    parser.add_argument("--keep", type=Path, help="keep both runs under this folder")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="verify-")) if args.keep is None else args.keep
    runs = []
    try:
        for i, n_jobs in enumerate(args.jobs):
            run = work / f"run{i + 1}-jobs{n_jobs}"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            params = write_params(args.params, run / "params.yaml", dataset=args.dataset,
                                  n_jobs=n_jobs, subjects=args.subjects)
            for stage, cmd in stage_commands(args.dataset, run, params, args.raw).items():
                print(f"run {i + 1} (n_jobs {n_jobs}): {stage}", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{stage} failed in run {i + 1}:\n{proc.stderr.strip()[-3000:]}")
                    return 2
            runs.append(run)
        differ = False
        for stage in STAGES:
            folders = [run / stage for run in runs] + [run / "reports" / stage for run in runs]
            if not (runs[0] / stage).exists():
                continue
            for name, a, b in ((stage, *folders[:2]), (f"{stage} reports", *folders[2:])):
                if not a.exists() and not b.exists():
                    continue
                ha, hb = hash_tree(a), hash_tree(b)
                bad = compare(ha, hb)
                differ |= bool(bad)
                status = "identical" if not bad else f"DIFFERENT ({len(bad)} of {len(ha | hb)} files)"
                print(f"{name}: {status} ({len(ha)} files)" if not bad else f"{name}: {status}")
                for f in bad[:5]:
                    print(f"  {f}")
        return 1 if differ else 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
