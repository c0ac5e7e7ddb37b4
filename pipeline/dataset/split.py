"""Subject-wise train/valid/test assignment: seeded, every subject in exactly one split, counts
within one subject of the ratios, and as stable as that allows.

Each subject gets a uniform number ``u = hash(seed, subject_id)`` in [0, 1) and first falls into the
split whose cumulative-ratio interval holds ``u``: that draw depends only on the subject's id and
the seed, so adding or removing other subjects never changes it. Counts drawn this way follow the
ratios only on average (off by about sqrt(n) subjects), so a balancing pass then moves, one at a
time, the subject whose ``u`` lies nearest to the interval of a split that is short, until every
split holds ``floor(n * ratio)`` or ``ceil(n * ratio)`` subjects (and, when there are enough
subjects, at least one for every positive ratio). Only subjects near an interval boundary ever
move, so adding one subject moves at most a few of the others (measured in tests/test_split.py);
the assignment is written to stats.json and the manifest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

SPLITS = ("train", "valid", "test")


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Validate split ratios (non-negative, finite, sum 1); returns them as floats in given order."""
    if not ratios:
        raise ValueError("split ratios are empty; expected e.g. {train: 0.7, valid: 0.15, test: 0.15}")
    out: dict[str, float] = {}
    for name, value in ratios.items():
        try:
            r = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"split ratio {name}={value!r} is not a number") from None
        if not math.isfinite(r) or r < 0:
            raise ValueError(f"split ratio {name}={value!r} must be a finite number >= 0")
        out[str(name)] = r
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split ratios must sum to 1, found {total:g} ({', '.join(f'{k}={v:g}' for k, v in out.items())})")
    return out


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, the same on every machine and Python run."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def count_bounds(n: int, ratios: Mapping[str, float]) -> dict[str, tuple[int, int]]:
    """Allowed (min, max) subjects per split: within one subject of ``n * ratio``, and at least one
    for every positive ratio when ``n`` allows it (small sets still get a valid and a test subject)."""
    positive = [name for name, r in ratios.items() if r > 0]
    low = {name: math.floor(n * r + 1e-9) for name, r in ratios.items()}
    high = {name: math.ceil(n * r - 1e-9) for name, r in ratios.items()}
    if n >= len(positive):
        for name in positive:
            low[name] = max(low[name], 1)
            high[name] = max(high[name], 1)
    while sum(low.values()) > n:  # raising the minima overbooked: the largest split gives way
        name = max((s for s in positive if low[s] > 1), key=lambda s: (low[s], s))
        low[name] -= 1
    return {name: (low[name], high[name]) for name in ratios}


def assign_splits(subject_ids: Iterable[str], ratios: Mapping[str, float], *, seed: int) -> dict[str, str]:
    """Map each subject id to a split name; returned in sorted subject order."""
    ratios = check_ratios(ratios)
    ids = sorted(set(subject_ids))
    intervals: dict[str, tuple[float, float]] = {}
    start = 0.0
    for name, r in ratios.items():
        intervals[name] = (start, start + r)
        start += r
    names = [n for n, r in ratios.items() if r > 0]
    u = {s: unit_hash("split", seed, s) for s in ids}
    assignment = {s: next((n for n in names if intervals[n][0] <= u[s] < intervals[n][1]), names[-1]) for s in ids}

    bounds = count_bounds(len(ids), ratios)
    count = {name: 0 for name in ratios}
    for name in assignment.values():
        count[name] += 1

    def distance(subject: str, name: str) -> float:
        lo, hi = intervals[name]
        return max(lo - u[subject], u[subject] - hi, 0.0)

    while True:  # each move lowers the total excess over the bounds by at least one
        over = [n for n in names if count[n] > bounds[n][1]]
        under = [n for n in names if count[n] < bounds[n][0]]
        if over:
            donors, takers = over, under or [n for n in names if count[n] < bounds[n][1]]
        elif under:
            donors, takers = [n for n in names if count[n] > bounds[n][0]], under
        else:
            return assignment
        subject, taker = min(
            ((s, t) for s in ids if assignment[s] in donors for t in takers),
            key=lambda st: (distance(*st), st),
        )
        count[assignment[subject]] -= 1
        count[taker] += 1
        assignment[subject] = taker
