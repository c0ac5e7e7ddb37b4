"""Module-level task functions for tests/test_workers.py (worker processes import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def slow_square(x: int) -> int:
    """Later items finish first, so ordered results cannot come from completion order."""
    time.sleep(0.02 * (5 - x % 5))
    return x * x


def mark_and_sleep(task: tuple[str, int]) -> int:
    """Leave a file per started task (so the test can count them), then take a while."""
    folder, i = task
    Path(folder, f"{i}.started").write_text(str(os.getpid()))
    time.sleep(0.3)
    return i


def fail_on(x: int) -> int:
    if x == 0:
        raise ValueError("task 0 fails")
    time.sleep(0.3)
    return x
