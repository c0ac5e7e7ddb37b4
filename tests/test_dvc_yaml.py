"""dvc.yaml lists, for every stage, each project module the stage's code imports.

A module missing from a stage's deps means a change to it would not rerun the stage, and
`dvc repro` would report stale results as up to date. Dynamic imports (the reader and synth
registries) are followed through their registries.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from pipeline.sources import READERS
from pipeline.synth import SYNTHESIZERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages", "models")
REGISTRIES = {"prepare": READERS.values(), "synth": SYNTHESIZERS.values()}


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _closure(modules) -> set[str]:
    """Repository-relative files of ``modules`` and everything they import from the project."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        path = _module_file(todo.pop())
        if path is None or path.relative_to(ROOT).as_posix() in seen:
            continue
        seen.add(path.relative_to(ROOT).as_posix())
        todo += _imports(path)
    return {f for f in seen if not f.endswith("__init__.py") or f.count("/") > 1}


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _spec(stage: str) -> dict:
    """A stage's definition, whether it loops with foreach/do or matrix."""
    return STAGES[stage].get("do", STAGES[stage])


def _module(stage: str) -> str:
    return re.search(r"python -m (stages\.\w+)", _spec(stage)["cmd"]).group(1)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_dependency(stage):
    deps = [d for d in _spec(stage)["deps"] if d.split("/")[0] in PACKAGES]
    module = _module(stage)
    code = _closure([module, *REGISTRIES.get(module.split(".")[1], ())])
    covered = {f for f in code if any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)}
    assert sorted(code - covered) == [], f"{stage}: add these to its deps in dvc.yaml"
    unused = [d for d in deps if not any(f == d or f.startswith(d.rstrip("/") + "/") for f in code)]
    assert unused == [], f"{stage}: deps it never imports (spurious reruns)"
