"""Time of a no-op ``dvc repro`` of the demo pipeline, with and without ruamel.yaml's C parser.

A copy of the project (the files git tracks) becomes a fresh git + DVC repository; every stage
output of the demo is stubbed and ``dvc commit -f`` records them, so ``dvc repro`` finds all 30
stages up to date without running any: what a second ``make demo`` costs (DVC reads dvc.yaml,
params.yaml and dvc.lock, and checks every dependency and output). ruamel.yaml 0.19 no longer pulls
in ``ruamel.yaml.clib``; without it DVC parses these files in pure Python. Run:
``python -m benchmarks.dvc_bench``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PURE = "import sys; sys.modules['_ruamel_yaml'] = None; from dvc.cli import main; sys.exit(main(['repro']))"
WITH_C = "import sys; from dvc.cli import main; sys.exit(main(['repro']))"


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def stub_demo(repo: Path) -> int:
    """Copy the project into ``repo``, stub every output, commit them in dvc.lock; returns the stage count."""
    for name in run(["git", "ls-files"], ROOT).splitlines():
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "bench@example.invalid"], repo)
    run(["git", "config", "user.name", "bench"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q", "-f"], repo)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)
    listing = run([sys.executable, "-c", "from dvc.repo import Repo\nwith Repo() as r:\n"
                   "    print(len(r.index.stages))\n    for o in r.index.outs: print(o.fs_path)"], repo).splitlines()
    for path in map(Path, listing[1:]):
        if path.suffix:  # a file output (metrics, a model): any content will do
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "stub.txt").write_text("stub\n")
    run([sys.executable, "-m", "dvc", "commit", "-f", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "demo outputs stubbed"], repo)
    return int(listing[0])


def timed(code: str, repo: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``dvc repro``, which must find nothing to do."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = run([sys.executable, "-c", code], repo)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "up to date" not in out:
        raise SystemExit(f"dvc repro was not a no-op: {out[-300:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        stages = stub_demo(repo)
        timed(WITH_C, repo)  # warm DVC's state database and the page cache
        runs: dict[str, list[tuple[float, float]]] = {"c": [], "pure": []}
        for _ in range(args.repeats):
            runs["c"].append(timed(WITH_C, repo))
            runs["pure"].append(timed(PURE, repo))
    wall = {k: min(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    print(f"no-op dvc repro of the demo ({stages} stages up to date, outputs stubbed), best of {args.repeats}")
    print(f"  with ruamel.yaml.clib: {wall['c']:.2f} s (CPU {cpu['c']:.2f} s)  (aim < 3 s)")
    print(f"  pure-Python YAML:      {wall['pure']:.2f} s (CPU {cpu['pure']:.2f} s); the C parser makes it "
          f"{wall['pure'] / wall['c']:.2f}x faster (CPU {cpu['pure'] / cpu['c']:.2f}x)")


if __name__ == "__main__":
    main()
