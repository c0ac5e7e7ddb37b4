"""Writing outputs so they appear whole or not at all, and never over anything the user owns.

Every stage writes through :func:`atomic_dir` (a folder) or :func:`atomic_file` (one report file).
Both refuse, before touching anything, an output that

  * equals, contains or lies inside one of the stage's inputs (``--out`` = ``--raw`` would
    otherwise replace the user's download with the PNG set);
  * is an existing file where a folder is written (or a folder where a file is written);
  * is an existing folder holding files this project did not write: a folder is replaced only
    when it carries :data:`MARKER` (written into every output folder) or is empty;
  * is being written by another run at the same time (a lock per output, see :func:`output_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.errors import UsageError

MARKER = ".medseg-dvc-output"
MARKER_TEXT = "written by medseg-dvc; the next run of the same stage replaces this whole folder\n"
WRITTEN_BY = "medseg-dvc"  # the key/value a report file carries instead of a marker file


def _resolved(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()  # symlinks followed where they exist


def check_overlap(out: Path | str, inputs: Iterable[Path | str | None] = ()) -> None:
    """Raise UsageError when ``out`` equals, contains or lies inside one of ``inputs``."""
    target = _resolved(out)
    for given in inputs:
        if given is None:
            continue
        source = _resolved(given)
        if target == source:
            problem = "is the same path as the input"
        elif source.is_relative_to(target):
            problem = "contains the input"
        elif target.is_relative_to(source):
            problem = "lies inside the input"
        else:
            continue
        raise UsageError(f"{out}: the output {problem} {given}; replacing it would delete the input: "
                         "pass an --out outside every input folder")


def check_replaceable(out: Path | str) -> None:
    """Raise UsageError unless ``out`` is absent, an empty folder or a folder this project wrote."""
    out = Path(out)
    if out.is_symlink():
        raise UsageError(f"{out}: the output is a symbolic link; pass the real folder (or a new one) as --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out}: the output is an existing file, not a folder; pass a new or empty folder "
                         "as --out, or move the file away")
    if (out / MARKER).is_file() or not any(out.iterdir()):
        return
    raise UsageError(f"{out}: the output folder holds files this project did not write (no {MARKER} marker); "
                     "pass a new or empty folder as --out, or empty this one yourself")


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def output_lock(out: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` while the block runs; a second run on it refuses at once.

    The lock is ``fcntl.flock`` on a lock file beside ``out``. The kernel releases a flock when
    its process dies, however it dies (``kill -9`` included), so a lock file left behind by a
    killed run holds no lock and the next run simply takes it: stale locks need no clean-up rule.
    The file is removed on the way out; a run that locked a file another run removed meanwhile
    (same name, different inode) locks the new one instead.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = _lock_path(out)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"{out}: another run is writing this output now (lock {path} is held); "
                             "wait for it to finish, or pass another --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by the run that held it: lock the current one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(out: Path | str, *, inputs: Iterable[Path | str | None] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out`` in one rename.

    The guards of this module run first (see its docstring); each raises UsageError and changes
    nothing. A run that fails or is killed leaves ``out`` as it was (plus at worst a ``.tmp-*``
    folder that the next run on ``out`` removes, under the lock), so no half-written set and no
    stale files from an earlier run survive. The folder gets the :data:`MARKER` file.
    """
    out = Path(out)
    inputs = list(inputs)
    check_overlap(out, inputs)
    check_replaceable(out)
    with output_lock(out):
        check_replaceable(out)  # again under the lock: the run that held it may have written it
        for stale in out.parent.glob(f".tmp-{out.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
        try:
            (tmp / MARKER).write_text(MARKER_TEXT)
            yield tmp
            (tmp / MARKER).write_text(MARKER_TEXT)  # a stage that copied another set's folder in
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = out.parent / f".tmp-{out.name}-old"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.chmod(out, 0o755)


@contextlib.contextmanager
def guarded_dir(out: Path | str, *, inputs: Iterable[Path | str | None] = ()) -> Iterator[Path]:
    """For a stage that writes its own files into ``out`` (train) instead of replacing it whole:
    the overlap guard, ``out`` must not be a file, and the lock while the block runs."""
    out = Path(out)
    check_overlap(out, list(inputs))
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"{out}: the output is an existing file, not a folder; pass a new or empty folder "
                         "as --out, or move the file away")
    with output_lock(out):
        out.mkdir(parents=True, exist_ok=True)
        yield out


def _is_ours(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("written_by") == WRITTEN_BY


def write_report(out: Path | str, data: dict, *, inputs: Iterable[Path | str | None] = ()) -> None:
    """Write ``data`` as JSON to the file ``out`` (with ``written_by``), atomically and guarded:
    not inside an input, not over a folder, and over an existing file only one this project wrote."""
    out = Path(out)
    check_overlap(out, list(inputs))
    if out.is_dir() or (out.exists() and not _is_ours(out)):
        what = "a folder" if out.is_dir() else "a file this project did not write"
        raise UsageError(f"{out}: the output is {what}; pass a new file name as --out")
    with output_lock(out):
        tmp = out.parent / f".tmp-{out.name}"
        tmp.write_text(json.dumps({"written_by": WRITTEN_BY, **data}, indent=2) + "\n")
        os.replace(tmp, out)
