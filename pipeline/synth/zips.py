"""Writing byte-identical zip archives: fixed member order, timestamps, permissions and compression."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

DATE_TIME = (2021, 7, 6, 0, 0, 0)


def write_zip(path: Path, members: Iterable[tuple[str, bytes | None]]) -> None:
    """Write ``(name, data)`` pairs in the given order; ``data=None`` writes a directory entry."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=DATE_TIME)
            info.create_system = 3  # unix, so external_attr carries the permission bits
            if data is None:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)


def with_folders(files: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes | None]]:
    """Insert a directory entry before the first file of each folder, as zip tools do."""
    out: list[tuple[str, bytes | None]] = []
    seen: set[str] = set()
    for name, data in files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth]) + "/"
            if folder not in seen:
                seen.add(folder)
                out.append((folder, None))
        out.append((name, data))
    return out
