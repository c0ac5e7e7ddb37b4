"""Subject-wise train/valid/test assignment: seeded, stable, every subject in exactly one split.

Each subject gets a uniform number ``u = hash(seed, subject_id)`` in [0, 1) and falls into the
split whose cumulative-ratio interval holds ``u``. The assignment of a subject therefore depends
only on its id and the seed: adding or removing other subjects never moves it. Consequence
(unavoidable for any scheme that is stable in this sense): split sizes follow the ratios only on
average, not to the subject. One exception keeps small sets usable: when a split with a ratio > 0
would be empty and another split holds two or more subjects, the subject whose ``u`` lies nearest
to the empty split's interval is moved into it (deterministic; with enough subjects it never fires).
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


def assign_splits(subject_ids: Iterable[str], ratios: Mapping[str, float], *, seed: int) -> dict[str, str]:
    """Map each subject id to a split name; returned in sorted subject order."""
    ratios = check_ratios(ratios)
    ids = sorted(set(subject_ids))
    bounds: dict[str, tuple[float, float]] = {}
    start = 0.0
    for name, r in ratios.items():
        bounds[name] = (start, start + r)
        start += r
    names = [n for n, r in ratios.items() if r > 0]
    last = names[-1] if names else None
    u = {s: unit_hash("split", seed, s) for s in ids}
    assignment = {}
    for s in ids:
        assignment[s] = next((n for n in names if bounds[n][0] <= u[s] < bounds[n][1]), last)
    for empty in names:  # fix-up: only fires when a positive-ratio split got nobody
        members = {n: [s for s in ids if assignment[s] == n] for n in names}
        if members[empty]:
            continue
        donors = [s for s in ids if len(members[assignment[s]]) >= 2]
        if not donors:
            break
        lo, hi = bounds[empty]
        moved = min(donors, key=lambda s: (max(lo - u[s], u[s] - hi, 0.0), s))
        assignment[moved] = empty
    return assignment
