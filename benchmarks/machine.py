"""What this machine gives two CPU-bound processes, to judge two-worker scaling against.

Two vCPUs can be two cores (two processes run ~2x one) or one core's hyperthreads (~1.2-1.3x).
``two_process_capacity`` runs the same fixed PNG-encoding work in one process, then in two at once,
and returns the throughput ratio; a worker count's speed-up divided by it is its scaling efficiency.
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np


def _burn(rounds: int) -> float:
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur((rng.random((512, 512)) * 255).astype(np.uint8), (5, 5), 0)
    start = time.perf_counter()
    for _ in range(rounds):
        cv2.imencode(".png", image)
    return time.perf_counter() - start


def two_process_capacity(rounds: int = 150, repeats: int = 3) -> float:
    """Throughput of two processes over one on the same work (best of ``repeats``, interleaved)."""
    context = multiprocessing.get_context("spawn")  # fresh processes, nothing inherited
    with context.Pool(2) as pool:
        pool.map(_burn, [5, 5])  # start-up and imports out of the timing
        one, two = [], []
        for _ in range(repeats):
            one.append(pool.apply(_burn, (rounds,)))
            two.append(max(pool.map(_burn, [rounds, rounds], chunksize=1)))
    return 2 * min(one) / min(two)


if __name__ == "__main__":
    print(f"two CPU-bound processes do {two_process_capacity():.2f}x the work of one")
