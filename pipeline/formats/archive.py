"""Reading zip archives in place (never extracted to disk), refusing unsafe or bomb-like members."""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from pipeline.errors import DatasetError

MAX_MEMBER_BYTES = 2 << 30  # 2 GiB uncompressed per member
MAX_TOTAL_BYTES = 64 << 30  # 64 GiB uncompressed per archive
MAX_RATIO = 200.0  # uncompressed / compressed size
RATIO_MIN_BYTES = 1 << 20  # members smaller than this are never refused by ratio (tiny JSONs compress well)
CHUNK_BYTES = 1 << 20
SEPARATOR = "::"
CACHE_SIZE = 4  # archives kept open per process by read_sources (image.zip + mask.zip, with room)
_OPEN: dict[tuple, zipfile.ZipFile] = {}


def provenance(archive: Path | str, member: str) -> str:
    """The string naming one member: ``"<archive path>::<member>"``."""
    return f"{archive}{SEPARATOR}{member}"


def split_provenance(source: str) -> tuple[Path, str | None]:
    """Inverse of :func:`provenance`; a plain file path gives ``(path, None)``."""
    archive, sep, member = source.partition(SEPARATOR)
    return Path(archive), (member if sep else None)


def is_decoy(name: str) -> bool:
    """macOS resource-fork litter (``__MACOSX/``, ``._name``): not data, ignore silently."""
    norm = "/" + name.replace("\\", "/")
    return "/__MACOSX/" in norm or "/._" in norm or norm.endswith("/.DS_Store")


def _unsafe_name(name: str) -> str | None:
    """Why ``name`` could escape an extraction folder, or None when it is a plain relative path."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in norm.split("/"):
        return "'..' path component"
    return None


def _check_entries(path: Path, infos: list[zipfile.ZipInfo], *, max_member_bytes: int, max_total_bytes: int,
                   max_ratio: float) -> None:
    """Refuse unsafe names, symlinks and bomb-like sizes, from the central directory alone."""
    problems = []
    total = 0
    for info in infos:
        name = info.filename
        why = _unsafe_name(name)
        if why:
            problems.append(f"member {name!r}: {why}")
        if stat.S_ISLNK(info.external_attr >> 16):
            problems.append(f"member {name!r}: symbolic link entry")
        problems.extend(_size_problems(info, max_member_bytes=max_member_bytes, max_ratio=max_ratio))
        total += info.file_size
    if total > max_total_bytes:
        problems.append(f"total uncompressed size {total} bytes exceeds max_total_bytes={max_total_bytes}")
    if problems:
        raise DatasetError(path, "refusing unsafe zip archive: " + "; ".join(problems[:20])
                           + (f"; ... {len(problems) - 20} more" if len(problems) > 20 else "")
                           + ". Check where it came from; raise the archive limits only if you trust it")


def _size_problems(info: zipfile.ZipInfo, *, max_member_bytes: int, max_ratio: float) -> list[str]:
    out = []
    if info.file_size > max_member_bytes:
        out.append(f"member {info.filename!r}: {info.file_size} bytes uncompressed exceeds "
                   f"max_member_bytes={max_member_bytes}")
    if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        out.append(f"member {info.filename!r}: compression ratio {ratio:.0f} exceeds max_ratio={max_ratio:g} "
                   "(zip bomb?)")
    return out


def open_archive(path: Path | str, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO) -> zipfile.ZipFile:
    """Open a zip for reading after checking every central-directory entry; caller closes it.

    Raises:
        DatasetError: missing file, not a zip, truncated/damaged zip, empty archive (no data members),
            or any member that is unsafe (``..``/absolute path, symlink) or exceeds the limits.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "no such archive: expected a .zip file")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            raise DatasetError(path, f"truncated or damaged zip ({exc}): download it again") from exc
        raise DatasetError(path, f"not a zip archive (starts with {head!r}, expected b'PK\\x03\\x04')") from exc
    except (OSError, ValueError, IndexError, NotImplementedError) as exc:  # damaged central directory
        raise DatasetError(path, f"cannot read archive ({type(exc).__name__}: {exc}); download it again") from exc
    try:
        _check_entries(path, zf.infolist(), max_member_bytes=max_member_bytes,
                       max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        if not list_members(zf):
            raise DatasetError(path, "empty archive: no files in it (directories and macOS decoys ignored)")
    except BaseException:
        zf.close()
        raise
    return zf


def list_members(zf: zipfile.ZipFile) -> list[str]:
    """Member names of the files in ``zf``, in archive order, without directories and macOS decoys."""
    return [i.filename for i in zf.infolist() if not i.is_dir() and not is_decoy(i.filename)]


def read_member(zf: zipfile.ZipFile, name: str, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                max_ratio: float = MAX_RATIO) -> bytes:
    """The bytes of one member, read in chunks and stopped as soon as it passes the limits.

    The central-directory sizes are checked first; the limits are enforced again on the bytes
    actually decompressed, so a member whose header lies is refused too.
    """
    where = provenance(zf.filename, name)
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DatasetError(where, "no such member in the archive") from None
    problems = _size_problems(info, max_member_bytes=max_member_bytes, max_ratio=max_ratio)
    if problems:
        raise DatasetError(where, "refusing member: " + "; ".join(problems))
    limit = min(max_member_bytes, max(RATIO_MIN_BYTES, int(max_ratio * max(info.compress_size, 1))))
    chunks, size = [], 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise DatasetError(where, f"refusing member: decompressed past {limit} bytes "
                                              f"(compressed {info.compress_size}; zip bomb?)")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DatasetError(where, f"damaged member ({exc}): download the archive again") from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or Deflate64/LZMA-less Python etc.
        raise DatasetError(where, f"cannot read member ({exc}); repack the archive as a plain, "
                                  "unencrypted zip (deflate or store)") from exc
    return b"".join(chunks)


def read_source(source: str, *, max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_ratio: float = MAX_RATIO) -> bytes:
    """Bytes behind a provenance string: a zip member (``a.zip::m``) or a plain file path."""
    archive, member = split_provenance(source)
    if member is None:
        try:
            return archive.read_bytes()
        except OSError as exc:
            raise DatasetError(archive, f"cannot read file: {exc}") from exc
    with open_archive(archive, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes,
                      max_ratio=max_ratio) as zf:
        return read_member(zf, member, max_member_bytes=max_member_bytes, max_ratio=max_ratio)


def read_sources(sources: list[str] | tuple[str, ...], *, max_member_bytes: int = MAX_MEMBER_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO) -> list[bytes]:
    """Bytes behind several provenance strings, in order, opening each archive once."""
    out: dict[str, bytes] = {}
    by_archive: dict[Path, list[str]] = {}
    for source in sources:
        archive, member = split_provenance(source)
        if member is None:
            out[source] = read_source(source)
        else:
            by_archive.setdefault(archive, []).append(member)
    for archive, members in by_archive.items():
        zf = cached_archive(archive, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes,
                            max_ratio=max_ratio)
        for member in members:
            out[provenance(archive, member)] = read_member(zf, member, max_member_bytes=max_member_bytes,
                                                           max_ratio=max_ratio)
    return [out[s] for s in sources]


def cached_archive(path: Path, *, max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                   max_ratio: float = MAX_RATIO) -> zipfile.ZipFile:
    """An :func:`open_archive` result kept open in this process, so loading subject after subject
    does not re-parse (and re-check) a central directory of thousands of entries each time.

    Keyed by process id, so a forked worker never shares the parent's file offset; a changed file
    (size or mtime) is opened afresh. Do not close the returned archive.
    """
    path = Path(path)
    limits = dict(max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    if not path.is_file():
        return open_archive(path, **limits)  # raises the usual DatasetError
    st = path.stat()
    key = (os.getpid(), str(path.resolve()), st.st_mtime_ns, st.st_size, tuple(limits.items()))
    if key not in _OPEN:
        zf = open_archive(path, **limits)
        while len(_OPEN) >= CACHE_SIZE:
            old_key = next(iter(_OPEN))
            old = _OPEN.pop(old_key)
            if old_key[0] == os.getpid():
                old.close()
        _OPEN[key] = zf
    return _OPEN[key]


def list_sources(raw: Path, *, pattern: str | None = "*.zip", max_member_bytes: int = MAX_MEMBER_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO) -> list[str]:
    """Provenance strings of every data file under ``raw``: the members of the zips matching
    ``pattern`` (case-insensitive, searched recursively) or, when there are none (or ``pattern`` is
    None), the plain files of an already-extracted tree. ``raw`` may also be one zip file.
    """
    raw = Path(raw)
    limits = dict(max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    if raw.is_file():
        archives = [raw]
    elif raw.is_dir():
        archives = sorted(p for p in raw.rglob("*") if pattern and p.is_file()
                          and not is_decoy(str(p.relative_to(raw))) and PurePosixPath(p.name.lower()).match(pattern.lower()))
    else:
        raise DatasetError(raw, "no such file or folder: expected the source as its publisher ships it")
    if not archives:
        files = sorted(p for p in raw.rglob("*") if p.is_file() and not is_decoy(str(p.relative_to(raw))))
        _check_separator(files)
        return [str(p) for p in files]
    _check_separator(archives)
    out = []
    for archive in archives:
        with open_archive(archive, **limits) as zf:
            members = list_members(zf)
            _check_nested(archive, members)
            out.extend(provenance(archive, m) for m in members)
    return out


def _check_separator(paths: list[Path]) -> None:
    """Raise when a path holds ``::``, the separator of ``archive.zip::member`` names: it would be
    split in the wrong place and pair nothing."""
    for path in paths:
        if SEPARATOR in str(path):
            raise DatasetError(path, f"the path contains {SEPARATOR!r}, which names zip members here "
                                     f"(archive.zip{SEPARATOR}member); rename the folder or file (or move the "
                                     f"download) to a path without {SEPARATOR!r}")


def _check_nested(archive: Path, members: list[str]) -> None:
    """Raise naming the first zip stored inside ``archive``: archives are read in place, one level deep."""
    nested = [m for m in members if m.lower().endswith(".zip")]
    if nested:
        more = f" (and {len(nested) - 1} more)" if len(nested) > 1 else ""
        raise DatasetError(provenance(archive, nested[0]), f"a zip inside the zip{more}: archives are read in "
                                                           "place, one level deep; extract the inner archive(s) "
                                                           f"beside {archive.name} and point raw at them")
