"""Imported only inside the workers' forkserver (``workers.start_early`` preloads it), never by a stage.

A worker forked while its stage is already going away (a Ctrl-C during start-up) finds the stage's
queues gone and fails before any of our code runs; the server would print that traceback on the
user's terminal. It is no error of the run's, so such a worker exits quietly. Anything else is
reported as Python would.
"""

from __future__ import annotations

import sys

_GONE = (FileNotFoundError, EOFError, ConnectionError, KeyboardInterrupt)  # the stage's queues, pipes, Ctrl-C
_default_hook = sys.excepthook


def _hook(kind, value, traceback) -> None:  # noqa: ANN001
    if not issubclass(kind, _GONE):
        _default_hook(kind, value, traceback)


sys.excepthook = _hook
