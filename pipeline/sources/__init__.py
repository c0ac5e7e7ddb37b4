"""One reader per raw source, all behind the same two calls.

``discover(raw, **options) -> list[SubjectRef]`` lists the subjects of a source as its publisher
ships it (fast, no pixel data read; raises DatasetError naming what it expected when it finds
nothing or finds unpaired files); ``load(ref, **options) -> Subject`` reads one subject.
A sixth source is one new module here plus its entry in READERS, or, when it is published as an
MSD task or an nnU-Net v2 raw dataset, only a params block naming a GENERIC reader (``reader: nnunet``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Protocol

from pipeline.errors import UsageError
from pipeline.sources.subject import Subject, SubjectRef

READERS: dict[str, str] = {
    "faz": "pipeline.sources.faz",
    "ms": "pipeline.sources.ms",
    "aisd": "pipeline.sources.aisd",
    "pancreas": "pipeline.sources.pancreas",
    "lasc": "pipeline.sources.lasc",
}

# Readers of interchange layouts, configured entirely from params (no stand-in, no code per dataset).
GENERIC: dict[str, str] = {
    "msd": "pipeline.sources.msd",
    "nnunet": "pipeline.sources.nnunet",
}


class SourceReader(Protocol):
    def discover(self, raw: Path, **options: object) -> list[SubjectRef]: ...

    def load(self, ref: SubjectRef, **options: object) -> Subject: ...


def get_reader(name: str) -> ModuleType:
    """The reader module called ``name``: a source key (``lasc``) or a generic reader (``nnunet``)."""
    known = {**READERS, **GENERIC}
    if name not in known:
        raise ValueError(f"unknown reader {name!r}; known: {', '.join(sorted(known))}")
    return importlib.import_module(known[name])


def reader_for(dataset: str, name: str) -> ModuleType:
    """The reader ``name`` a dataset block asks for (its ``reader:`` or its key), or a UsageError."""
    try:
        return get_reader(name)
    except ValueError as err:
        raise UsageError(f"datasets.{dataset}.reader: {err}; name a generic reader or a source") from None


def worker_imports(reader: ModuleType) -> list[str]:
    """The reader module and the libraries it imports only when it reads (its ``WORKER_IMPORTS``,
    e.g. pydicom): a worker pool's server imports them once, instead of every worker on its first subject."""
    return [reader.__name__, *getattr(reader, "WORKER_IMPORTS", ())]
