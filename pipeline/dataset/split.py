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


def pinned_bounds(n: int, ratios: Mapping[str, float], pinned_counts: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Allowed (min, max) subjects per split when some subjects are pinned.

    A split whose pinned subjects already reach its share takes no other subject (its bounds are its
    pinned count); the subjects left are shared among the other splits by their ratios, renormalised.
    Without pins this is :func:`count_bounds`.
    """
    full: dict[str, int] = {}
    while True:
        rest = n - sum(full.values())
        open_ = {s: r for s, r in ratios.items() if s not in full}
        total = sum(open_.values())
        share = {s: (r / total if total > 0 else 0.0) for s, r in open_.items()}
        newly = {s for s in open_ if pinned_counts.get(s, 0) and pinned_counts[s] >= rest * share[s]}
        if not newly:
            break
        full.update({s: pinned_counts[s] for s in newly})
    bounds = count_bounds(rest, share) if share and total > 0 else {}
    out = {}
    for name in ratios:
        if name in full:
            out[name] = (full[name], full[name])
        else:
            low, high = bounds.get(name, (0, 0))
            pins = pinned_counts.get(name, 0)
            out[name] = (max(low, pins), max(high, pins))
    return out


def assign_splits(
    subject_ids: Iterable[str], ratios: Mapping[str, float], *, seed: int, pinned: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each subject id to a split name; returned in sorted subject order.

    ``pinned`` fixes subjects to a split (e.g. a publisher's official test cases); pins of subjects
    not in ``subject_ids`` are ignored. The other subjects are drawn and balanced around them as
    usual, so the split counts stay within one subject of the ratios where the pins allow it.
    """
    ratios = check_ratios(ratios)
    ids = sorted(set(subject_ids))
    pins = {s: str(v) for s, v in (pinned or {}).items() if s in set(ids)}
    unknown = sorted({v for v in pins.values() if v not in ratios})
    if unknown:
        raise ValueError(f"subjects pinned to unknown split(s) {unknown}; expected one of {', '.join(ratios)}")
    intervals: dict[str, tuple[float, float]] = {}
    start = 0.0
    for name, r in ratios.items():
        intervals[name] = (start, start + r)
        start += r
    names = [n for n, r in ratios.items() if r > 0 or n in pins.values()]
    u = {s: unit_hash("split", seed, s) for s in ids}
    assignment = {s: next((n for n in names if intervals[n][0] <= u[s] < intervals[n][1]), names[-1]) for s in ids}
    assignment.update(pins)

    pinned_counts = {name: sum(1 for v in pins.values() if v == name) for name in ratios}
    bounds = pinned_bounds(len(ids), ratios, pinned_counts)
    count = {name: 0 for name in ratios}
    for name in assignment.values():
        count[name] += 1
    movable = [s for s in ids if s not in pins]

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
        choices = [(s, t) for s in movable if assignment[s] in donors for t in takers]
        if not choices:
            return assignment
        subject, taker = min(choices, key=lambda st: (distance(*st), st))
        count[assignment[subject]] -= 1
        count[taker] += 1
        assignment[subject] = taker
