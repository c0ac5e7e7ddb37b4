"""Imported only inside the workers' forkserver (``workers.start_early`` preloads it), never by a stage.

The server also imports the stage's own module (``python -m stages.prepare``), which every worker
then runs again as ``__mp_main__`` with its imports already done; runpy warns about exactly that
re-run, harmless here, so the warning is silenced in the server and its workers.

A worker forked while its stage is already going away (a Ctrl-C during start-up) finds the stage's
queues gone and fails before any of our code runs; the server would print that traceback on the
user's terminal. It is no error of the run's, so such a worker exits quietly. Anything else is
reported as Python would.
"""

from __future__ import annotations

import sys
import warnings

warnings.filterwarnings("ignore", message=r".* found in sys\.modules after import of package .*",
                        category=RuntimeWarning)

_GONE = (FileNotFoundError, EOFError, ConnectionError, KeyboardInterrupt)  # the stage's queues, pipes, Ctrl-C
_default_hook = sys.excepthook


def _hook(kind, value, traceback) -> None:  # noqa: ANN001
    if not issubclass(kind, _GONE):
        _default_hook(kind, value, traceback)


sys.excepthook = _hook
