"""The one worker pool of the project: ordered results, one cancel rule, workers that die with their parent.

Start method: ``forkserver`` where the platform has it (Linux, macOS), ``spawn`` elsewhere. Workers
are forked from a small server process that started clean, never from the stage itself, so they
inherit none of its threads (tqdm's monitor, OpenCV/OpenMP pools, TensorFlow's if it was ever
imported): ``fork`` from a threaded parent can deadlock a child on a lock held by a thread that
does not exist there. The price is one import of the task's module in the server (``preload``),
paid once per run, not per worker.

Cancel rule: leaving the ``with`` block early (an exception, ``break``, the first error under
``on_error: fail``) cancels every task not started and waits only for the ones running.

Threads within a task: ``thread_budget(n)`` lends the code running in it ``n`` threads, and
``thread_map`` / ``concurrently`` use them (gzip inflate, OpenCV, numpy and PNG deflate release the
GIL), so one large subject uses the cores no other worker takes. The results never depend on the
count: work is split into independent pieces whose results are combined in order.

Parent death: each worker asks the kernel for SIGKILL when its parent dies (Linux
``prctl(PR_SET_PDEATHSIG)``) and, on every platform, polls its parent id once a second, so a
``kill -9`` of a stage leaves no worker behind. With forkserver the parent is the server, which
itself exits when the stage is gone.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["START_METHOD", "concurrently", "ordered_results", "start_early", "thread_budget", "thread_map",
           "threads_lent"]

T = TypeVar("T")
R = TypeVar("R")

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_SECONDS = 1.0


def _die_with_parent(stage_pid: int) -> None:
    """Make this worker exit as soon as its parent (or the stage that started the pool) is gone."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    if not alive(stage_pid):  # the stage died before the kernel could be told
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(POLL_SECONDS)
            if os.getppid() != parent or not alive(stage_pid):
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _start_worker(stage_pid: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage's to handle: no traceback per worker
    _die_with_parent(stage_pid)
    if initializer is not None:
        initializer(*initargs)


def _main_module() -> list[str]:
    """The module run with ``python -m`` (e.g. ``stages.prepare``): every worker re-imports it as
    ``__mp_main__``, so the server imports it (and what it imports) once. Never a ``__main__`` module,
    whose import would run it."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return [name] if name and name != "__main__" and not name.endswith(".__main__") else []


_SERVER_PID = [0]  # the process that started the forkserver (a forked child must start its own)


def start_early(preload: Sequence[str]) -> None:
    """Start the forkserver now, importing ``preload`` in it, so those imports (~0.3 s) run beside the
    caller's own work (reading params, listing subjects) instead of after it. Only for callers about to
    use ``ordered_results`` with several jobs and the same ``preload``; nothing to do under spawn."""
    if START_METHOD != "forkserver":
        return
    from multiprocessing import forkserver

    multiprocessing.get_context(START_METHOD).set_forkserver_preload(
        ["pipeline.worker_server", *preload, *_main_module()])
    if _SERVER_PID[0] == os.getpid() or threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()  # already started by this process (or no handlers may be set here)
        return
    # An ignored SIGINT survives exec and Python then installs no KeyboardInterrupt handler: the server
    # never sees the terminal's Ctrl-C (during its imports it would print a traceback and die). This
    # process ignores it only for the few milliseconds of the fork and exec.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)
    _SERVER_PID[0] = os.getpid()


@contextlib.contextmanager
def ordered_results(
    fn: Callable[[T], R], items: Iterable[T], *, jobs: int, initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (), preload: Sequence[str] = (), chunksize: int = 1,
) -> Iterator[Iterator[R]]:
    """``fn`` over ``items`` on ``jobs`` worker processes, results in the order of ``items``.

    With ``jobs <= 1`` (or one item) everything runs in this process, lazily, and ``initializer``
    is not called: the caller sets up its own state. ``fn`` and ``initializer`` must be module-level
    functions; ``preload`` names modules the forkserver imports once so workers start warm.
    Leaving the block early cancels the tasks not started.
    """
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        yield map(fn, items)
        return
    context = multiprocessing.get_context(START_METHOD)
    start_early(preload)  # a no-op when the caller already started the server
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context,
                               initializer=_start_worker, initargs=(os.getpid(), initializer, tuple(initargs)))
    try:
        yield pool.map(fn, items, chunksize=max(1, chunksize))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_POOL: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar("thread_pool", default=None)
_LENT: contextvars.ContextVar[int] = contextvars.ContextVar("threads_lent", default=1)


@contextlib.contextmanager
def thread_budget(count: int) -> Iterator[None]:
    """Lend the code in this block ``count`` threads (1: everything runs in the calling thread)."""
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(count, thread_name_prefix="subject")) if count > 1 else None
        tokens = _POOL.set(pool), _LENT.set(max(1, count))
        try:
            yield
        finally:
            _POOL.reset(tokens[0])
            _LENT.reset(tokens[1])


def threads_lent() -> int:
    """Threads the enclosing ``thread_budget`` lends (1 outside any)."""
    return _LENT.get() if _POOL.get() is not None else 1


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, on the lent threads when there are several, results in order.

    Called from a lent thread itself it runs inline, so nesting never waits on its own pool.
    """
    pool, items = _POOL.get(), list(items)
    if pool is None or len(items) <= 1:  # lent threads do not see the pool (contextvars): nesting runs inline
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


def concurrently(*calls: Callable[[], R]) -> list[R]:
    """Run independent calls (e.g. reading an image and its mask) on the lent threads, results in order."""
    return thread_map(lambda call: call(), calls)
