"""Shared fixtures: a throw-away copy of the project as a real git + DVC repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("pipeline", "stages", "models", "splits", "dvc.yaml", "params.yaml", "pyproject.toml")


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's venv first on PATH (so dvc stages use it)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(cwd)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def edit_params(repo: Path, edit) -> None:
    """Load params.yaml of ``repo``, let ``edit(params)`` change it in place, write it back."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    edit(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_dvc_repo(repo: Path) -> Path:
    """A fresh git repository at ``repo`` holding a copy of the project code and a DVC initialised in it."""
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, repo / name)
    shutil.copy2(ROOT / ".gitignore", repo / ".gitignore")
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@example.invalid"], repo)
    run(["git", "config", "user.name", "test"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "init"], repo)
    return repo


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A fresh git repository holding a copy of the project code and a DVC initialised in it."""
    return make_dvc_repo(tmp_path / "repo")


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], repo, check=check)
