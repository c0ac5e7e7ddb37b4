"""What every stage shares: the stage edge (errors to exit codes, quiet TensorFlow), params, CLI flags."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import DatasetError, UsageError

PARAMS_FILE = Path("params.yaml")


def dataset_params(dataset: str, params_file: Path = PARAMS_FILE, **checks: Any) -> dict[str, Any]:
    """The merged, checked settings of one dataset: globals, ``defaults`` and ``datasets.<dataset>``.

    A plain dict with the sections synth, prepare, augment, train, evaluate and the globals seed,
    image_size, n_jobs. Raises UsageError (one line: params.yaml, key path, fix) before any work.
    ``checks``: the stages that use them pass ``reader_options=<reader>.Options`` (prepare.reader)
    and ``spec_problems=pipeline.dataset.augment.spec_problems`` (augment.transforms).
    """
    from stages.schema import Settings  # pydantic: only once the flags are read, so --help stays fast

    return Settings(params_file).dataset(dataset, **checks)


def raw_folder(dataset: str, params: dict[str, Any]) -> Path:
    """``datasets.<dataset>.raw``: read here rather than passed on the command line by dvc.yaml, so a
    path with spaces, quotes, ``;`` or ``$( )`` is data for Python, never words for a shell."""
    raw = params.get("raw")
    if not raw:
        raise UsageError(f"datasets.{dataset}.raw: not set; set it to the folder holding the download, or pass --raw")
    return Path(str(raw)).expanduser()


def reader_name(dataset: str, params_file: Path = PARAMS_FILE) -> str:
    """The reader a dataset block names (``reader: nnunet``), else its own key; read before the full check
    because the check of ``prepare.reader`` needs that reader's Options."""
    from stages.schema import Settings

    block = Settings(params_file).datasets.get(dataset)
    return str(block.get("reader") or dataset) if isinstance(block, dict) else dataset


def resolve_jobs(n_jobs: int | None) -> int:
    """0 or None means all cores this process may use."""
    if not n_jobs:
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, int(n_jobs))


class StageParser(argparse.ArgumentParser):
    """argparse whose mistakes are UsageErrors: one line through the stage edge, exit 2 as argparse's."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see --help")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = StageParser(description=description, epilog=EPILOG)
    parser.add_argument("--dataset", required=True, help="dataset key, e.g. lasc")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    return parser


# --- the stage edge: one line and a documented exit code for every expected error ----------------

EXIT_DATA = 1         # DatasetError, or the file system refused a path: fix the data or the path
EXIT_USAGE = 2        # UsageError (params.yaml or a flag); argparse exits 2 as well
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EPILOG = ("exit status: 0 done, 1 a data problem (the file and the fix on one line), "
          "2 a params or command-line problem, 130 interrupted")


class StageExit(SystemExit):
    """The exit of a stage after an expected error: ``code`` is the status, ``str()`` the line printed.

    A SystemExit, so ``python -m`` exits with ``code`` and prints nothing more; the line is kept
    for callers (and tests) that run ``main`` in-process.
    """

    def __init__(self, code: int, line: str) -> None:
        super().__init__(code)
        self.line = line

    def __str__(self) -> str:
        return self.line


def _early_flags(argv: Sequence[str]) -> argparse.Namespace:
    """``--dataset`` and ``--verbose`` before the stage parses (for the label and TF's log level)."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--dataset", default="")
    early.add_argument("--verbose", action="store_true")
    return early.parse_known_args(list(argv))[0]


_QUIET = {"tensorflow": True}


def quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ log, absl and its Python logger silent unless ``verbose``.

    Must run before TensorFlow is imported (the C++ level is read once); keras' progress lines are
    not logs and stay as each stage asks for them.
    """
    _QUIET["tensorflow"] = not verbose
    if verbose:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def import_tensorflow() -> None:
    """Import TensorFlow, hiding what its C++ libraries print while they load, unless --verbose.

    TensorFlow 2.21 writes its oneDNN banner through absl before any log level applies (even
    ``TF_CPP_MIN_LOG_LEVEL=3`` from the start does not hide it), so the stderr file descriptor
    points at /dev/null for the import only. A failing import still shows its traceback.
    """
    if "tensorflow" in sys.modules or not _QUIET["tensorflow"]:
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _exit(code: int, line: str) -> StageExit:
    print(line, file=sys.stderr, flush=True)
    return StageExit(code, line)


def stage_edge(stage: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a stage's ``main(argv)``: expected errors become one line and an exit code.

    ``UsageError`` -> ``<stage>@<key>: <message>``, exit 2; ``DatasetError`` (and an ``OSError``
    naming a file: no permission, disk full, a file where a folder belongs) -> one line, exit 1;
    Ctrl-C -> exit 130 without a traceback. Anything else is a bug and keeps its traceback.
    """
    def wrap(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> Any:
            flags = _early_flags(sys.argv[1:] if argv is None else argv)
            label = f"{stage}@{flags.dataset}" if flags.dataset else stage
            quiet_tensorflow(flags.verbose)
            try:
                return main(argv)
            except UsageError as err:
                raise _exit(EXIT_USAGE, f"{label}: {err}") from None
            except DatasetError as err:
                raise _exit(EXIT_DATA, f"{label}: {err}") from None
            except OSError as err:
                if err.filename is None:
                    raise
                where = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
                raise _exit(EXIT_DATA, f"{label}: {where}: {err.strerror or err}; "
                                       "check the path, its permissions and the free disk space") from None
            except KeyboardInterrupt:
                raise _exit(EXIT_INTERRUPTED, f"{label}: interrupted; outputs left as they were") from None
        return run
    return wrap

