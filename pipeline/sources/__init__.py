"""One reader per raw source, all behind the same two calls.

``discover(raw, **options) -> list[SubjectRef]`` lists the subjects of a source as its publisher
ships it (fast, no pixel data read; raises DatasetError naming what it expected when it finds
nothing or finds unpaired files); ``load(ref, **options) -> Subject`` reads one subject.
A sixth source is one new module here plus its entry in READERS.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

from pipeline.sources.subject import Subject, SubjectRef

READERS: dict[str, str] = {
    "faz": "pipeline.sources.faz",
    "ms": "pipeline.sources.ms",
    "aisd": "pipeline.sources.aisd",
    "pancreas": "pipeline.sources.pancreas",
    "lasc": "pipeline.sources.lasc",
}


class SourceReader(Protocol):
    def discover(self, raw: Path, **options: object) -> list[SubjectRef]: ...

    def load(self, ref: SubjectRef, **options: object) -> Subject: ...


def get_reader(key: str) -> ModuleType:
    """The reader module for dataset ``key``."""
    if key not in READERS:
        raise ValueError(f"unknown dataset {key!r}; known: {', '.join(sorted(READERS))}")
    return importlib.import_module(READERS[key])
