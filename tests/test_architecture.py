"""The layout's rules, checked: which folder may import which, and that a source is complete.

The library is layered in data-flow order; a module may import only from its own folder and the
folders before it, so a reader never reaches into training and the folders read as the data flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.sources import READERS, get_reader
from pipeline.synth import SYNTHESIZERS

ROOT = Path(__file__).resolve().parents[1]
# pipeline/ folders in data-flow order; top-level modules (errors, writers, workers) come first.
LAYERS = ("", "formats", "sources", "synth", "slices", "reports", "dataset", "learning", "evaluation")
THIRD_PARTY_NEVER_IN_LIBRARY = ("dvc", "dvclive", "yaml", "stages")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return ""
    return parts[1] if parts[1] in LAYERS else ""


LIBRARY = sorted(p for p in (ROOT / "pipeline").rglob("*.py"))
MODELS = sorted((ROOT / "models").rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_library_imports_only_earlier_folders(path):
    rel = path.relative_to(ROOT / "pipeline").parts
    own = rel[0] if len(rel) > 1 else ""
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    bad = sorted(m for m in _imports(path) if m.startswith("pipeline.") and _layer(m) not in allowed)
    assert bad == [], f"{path.relative_to(ROOT)} ({own or 'top'}) imports later folders: {bad}"
    leaks = sorted(m for m in _imports(path) if m.split(".")[0] in THIRD_PARTY_NEVER_IN_LIBRARY)
    assert leaks == [], f"{path.relative_to(ROOT)}: the library must not know DVC, params.yaml or stages: {leaks}"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_models_know_nothing_of_files_or_the_library(path):
    imported = _imports(path)
    bad = sorted(m for m in imported if m.split(".")[0] in ("pipeline", "stages", "dvc", "dvclive", "yaml", "cv2"))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_every_source_has_a_reader_a_stand_in_and_a_params_block():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(READERS) == set(SYNTHESIZERS) == set(params["datasets"])
    for key in READERS:
        reader = get_reader(key)
        assert callable(reader.discover) and callable(reader.load), key
