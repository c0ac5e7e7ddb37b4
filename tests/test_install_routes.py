"""Install routes: the CPU build by default, the CUDA build of the same TensorFlow with GPU=1,
never both (checked with `make -n`, which prints the recipe without running it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from scripts.tf_build import installed_builds, problem
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def make_n(project: Path, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPU", "MAKEFLAGS", "MAKELEVEL")}
    proc = subprocess.run(["make", "-n", *args], cwd=project, env=env, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def _venv(project: Path, build: str) -> None:
    """A venv that `make setup` finished for ``build`` (stamp newer than the inputs)."""
    (project / ".venv").mkdir()
    stamp = project / ".venv" / f".installed-{build}"
    stamp.touch()
    later = (project / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (later, later))


def _installs(lines: list[str]) -> list[str]:
    return [line for line in lines if " install " in line and "-e" in line]


def test_default_setup_installs_the_cpu_build_and_removes_the_cuda_one(project):
    lines = make_n(project, "setup")
    assert _installs(lines) == [".venv/bin/pip install --quiet -c constraints.txt -e '.[cpu,test]'"]
    assert ".venv/bin/pip uninstall --quiet --yes tensorflow" in lines
    assert lines.index(".venv/bin/pip uninstall --quiet --yes tensorflow") < lines.index(_installs(lines)[0])


def test_gpu_setup_swaps_the_cpu_build_for_the_cuda_one(project):
    lines = make_n(project, "setup", "GPU=1")
    assert _installs(lines) == [".venv/bin/pip install --quiet -c constraints.txt -e '.[gpu,test]'"]
    uninstall = ".venv/bin/pip uninstall --quiet --yes tensorflow-cpu"
    assert uninstall in lines and lines.index(uninstall) < lines.index(_installs(lines)[0])
    assert ".venv/bin/python -m scripts.tf_build" in lines  # setup fails if both ended up installed
    assert lines[-1] == "touch .venv/.installed-gpu"


def test_a_gpu_venv_stays_gpu_for_demo_and_test_until_gpu_0(project):
    _venv(project, "gpu")
    assert make_n(project, "demo") == [".venv/bin/dvc repro"]  # no reinstall of the CPU build
    back = make_n(project, "setup", "GPU=0")
    assert _installs(back) == [".venv/bin/pip install --quiet -c constraints.txt -e '.[cpu,test]'"]
    assert "rm -f .venv/.installed .venv/.installed-gpu" in back


def test_the_two_extras_pin_the_same_tensorflow_and_the_base_pins_none():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("tensorflow")]
    extras = project["optional-dependencies"]
    assert extras["cpu"] == ["tensorflow-cpu==2.21.0"]
    assert extras["gpu"] == ["tensorflow[and-cuda]==2.21.0"]
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert {"tensorflow==2.21.0", "tensorflow_cpu==2.21.0"} <= set(constraints)


@pytest.mark.parametrize("versions, fine", [
    ({"tensorflow_cpu": "2.21.0", "keras": "3.15.1"}, True),
    ({"tensorflow": "2.21.0"}, True),
    ({"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}, False),
    ({"keras": "3.15.1"}, False),
])
def test_tf_build_check_allows_exactly_one_build(versions, fine):
    text = problem(installed_builds(versions))
    assert (text == "") == fine
    if not fine:
        assert "make setup" in text
