"""Small synthetic stand-ins of the five raw sources, each in its publisher's exact layout.

Each module has ``generate(out: Path, *, subjects: int, seed: int, **options) -> None`` writing
the source under ``out`` (which exists and is empty). Same arguments, byte-identical files.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SYNTHESIZERS: dict[str, str] = {
    "faz": "pipeline.synth.faz",
    "ms": "pipeline.synth.ms",
    "aisd": "pipeline.synth.aisd",
    "pancreas": "pipeline.synth.pancreas",
    "lasc": "pipeline.synth.lasc",
}


def get_synthesizer(key: str) -> ModuleType:
    if key not in SYNTHESIZERS:
        raise ValueError(f"unknown dataset {key!r}; known: {', '.join(sorted(SYNTHESIZERS))}")
    return importlib.import_module(SYNTHESIZERS[key])
