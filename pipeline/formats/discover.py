"""Tolerant file discovery: find a source's files by pattern, not by one hard-coded path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import DatasetError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SKIPPED_DIRS = ("__macosx",)


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``Patient-2`` before ``Patient-10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def is_hidden(path: Path, root: Path) -> bool:
    """True for hidden files/folders below ``root`` (``.x``, macOS ``._x`` decoys, ``__MACOSX``)."""
    parts = Path(path).relative_to(root).parts
    return any(p.startswith(".") or p.lower() in SKIPPED_DIRS for p in parts)


def strip_suffix(name: str, suffixes: Iterable[str]) -> str | None:
    """``name`` without the first matching suffix (any case), or None when none matches."""
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def nifti_stem(path: Path | str) -> str | None:
    """``la_003`` for ``la_003.nii.gz`` / ``LA_003.NII`` (case kept); None for non-NIfTI names."""
    return strip_suffix(Path(path).name, NIFTI_SUFFIXES)


def find_files(root: Path, *, suffixes: Iterable[str], recursive: bool = True) -> list[Path]:
    """Visible files under ``root`` whose name ends with one of ``suffixes`` (any case), sorted.

    Hidden files and folders (names starting with ``.``, which includes macOS ``._*`` decoys) and
    ``__MACOSX`` folders are skipped. Raises DatasetError when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "folder not found: expected a folder holding the source as published")
    suffixes = tuple(s.lower() for s in suffixes)
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = [
        p
        for p in candidates
        if p.is_file() and strip_suffix(p.name, suffixes) is not None and not is_hidden(p, root)
    ]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def find_nifti(root: Path, *, recursive: bool = True) -> list[Path]:
    """Visible ``.nii`` / ``.nii.gz`` files (any case) under ``root``, sorted naturally."""
    return find_files(root, suffixes=NIFTI_SUFFIXES, recursive=recursive)


def find_dirs(root: Path, name: str) -> list[Path]:
    """Visible folders called ``name`` (any case) at or below ``root``, shallowest first."""
    root = Path(root)
    found = [p for p in root.rglob("*") if p.is_dir() and p.name.lower() == name.lower() and not is_hidden(p, root)]
    return sorted(found, key=lambda p: (len(p.relative_to(root).parts), natural_key(p.as_posix())))
