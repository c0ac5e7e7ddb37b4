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

To move none at all, pin them: prepare writes ``splits.json`` (every subject's split, and the
cross-validation folds of the train+valid subjects in the shape of nnU-Net's ``splits_final.json``),
and :func:`plan_splits` given that file back keeps every subject in it where it was, drawing only
the new ones. Folds are drawn and balanced the same way, with their own hash; the test subjects
are in no fold.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import DatasetError

SPLITS = ("train", "valid", "test")
FOLD_POOL = ("train", "valid")  # the subjects cross-validation rotates; test stays out of every fold
NEW_SUBJECTS = ("assign", "train", "fail")


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


def assign_folds(
    subject_ids: Iterable[str], folds: int, *, seed: int, pinned: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Map each subject id to one of ``folds`` cross-validation folds of equal size (within one).

    Drawn like :func:`assign_splits` (own hash, so folds do not follow the split draw), with
    ``pinned`` subjects keeping their fold. Needs at least ``folds`` subjects: no fold is empty.
    """
    ids = sorted(set(subject_ids))
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, found {folds}")
    if len(ids) < folds:
        raise ValueError(f"{folds} folds need at least {folds} train+valid subjects, found {len(ids)}; "
                         "lower split.folds")
    names = [str(k) for k in range(folds)]
    fixed = {s: str(k) for s, k in (pinned or {}).items() if s in set(ids)}
    bad = sorted(k for k in set(fixed.values()) if k not in names)
    if bad:
        raise ValueError(f"pinned fold(s) {', '.join(bad)} are outside 0..{folds - 1}")
    u = {s: unit_hash("fold", seed, s) for s in ids}
    got = _balanced(ids, {name: 1 / folds for name in names}, u, fixed)
    return {s: int(k) for s, k in got.items()}


def _balanced(
    ids: list[str], ratios: Mapping[str, float], u: Mapping[str, float], pinned: Mapping[str, str],
) -> dict[str, str]:
    """Each id to the ratio interval holding its ``u``, then the free (unpinned) ids nearest to a
    short split's interval moved one at a time until the counts are within the bounds, or no free
    id can improve them (pinned ids may already overfill a split)."""
    intervals: dict[str, tuple[float, float]] = {}
    start = 0.0
    for name, r in ratios.items():
        intervals[name] = (start, start + r)
        start += r
    names = [n for n, r in ratios.items() if r > 0]
    assignment = {s: pinned.get(s) or next((n for n in names if intervals[n][0] <= u[s] < intervals[n][1]), names[-1])
                  for s in ids}
    free = [s for s in ids if s not in pinned]

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
        options = []
        if over:
            options.append((over, under or [n for n in names if count[n] < bounds[n][1]]))
        if under:
            options.append(([n for n in names if count[n] > bounds[n][0]], under))
        for donors, takers in options:
            moves = [(s, t) for s in free if assignment[s] in donors for t in takers]
            if moves:
                break
        else:
            return assignment
        subject, taker = min(moves, key=lambda st: (distance(*st), st))
        count[assignment[subject]] -= 1
        count[taker] += 1
        assignment[subject] = taker


class PinnedMismatch(ValueError):
    """A pinned split (file) and the data or settings disagree: the file names what to fix."""


@dataclass(frozen=True)
class SplitPlan:
    """Every subject's split, and the fold of every train+valid subject (empty without folds)."""

    subjects: dict[str, str]
    folds: dict[str, int] = field(default_factory=dict)

    @property
    def fold_count(self) -> int:
        return max(self.folds.values()) + 1 if self.folds else 0

    def fold_split(self, fold: int) -> dict[str, str]:
        """The assignment with fold ``fold`` as valid and the other folds as train; test unchanged."""
        if not 0 <= fold < self.fold_count:
            raise ValueError(f"fold {fold} does not exist; the split has {self.fold_count} folds "
                             f"(0..{self.fold_count - 1})")
        return {s: ("valid" if self.folds[s] == fold else "train") if s in self.folds else split
                for s, split in self.subjects.items()}

    def to_json(self) -> dict:
        """``subjects`` (id -> split) and ``folds`` in the shape of nnU-Net's splits_final.json."""
        pool = sorted(self.folds)
        folds = [{"train": [s for s in pool if self.folds[s] != k], "val": [s for s in pool if self.folds[s] == k]}
                 for k in range(self.fold_count)]
        return {"subjects": dict(sorted(self.subjects.items())), "folds": folds}


def plan_splits(
    subject_ids: Iterable[str], ratios: Mapping[str, float], *, seed: int, folds: int = 0, fold: int | None = None,
    pinned: SplitPlan | None = None, new_subjects: str = "assign", pins: Mapping[str, str] | None = None,
) -> SplitPlan:
    """Splits and folds of ``subject_ids``, keeping every subject of ``pinned`` where it is.

    Subjects missing from ``pinned`` are ``new_subjects``: ``assign`` (drawn and balanced around the
    pinned ones), ``train`` or ``fail``. ``pins`` (a reader's official splits) hold where the file says nothing. ``folds >= 2`` splits the train+valid subjects into that
    many folds (none when there are fewer subjects than folds); ``fold`` then makes that fold the
    valid split and the others train. Raises ValueError naming the offending ids or setting.
    """
    ids = sorted(set(subject_ids))
    fixed: dict[str, str] = {}
    fixed_folds: dict[str, int] = {}
    if pinned is not None:
        if new_subjects not in NEW_SUBJECTS:
            raise ValueError(f"new_subjects must be one of {', '.join(NEW_SUBJECTS)}, found {new_subjects!r}")
        gone = sorted(set(pinned.subjects) - set(ids))
        if gone:
            raise PinnedMismatch(f"{len(gone)} subject(s) in the split file are not in the data: "
                                 f"{', '.join(gone[:20])}; "
                             "remove them from the file or restore their data")
        new = [s for s in ids if s not in pinned.subjects]
        if new and new_subjects == "fail":
            raise PinnedMismatch(f"{len(new)} subject(s) are not in the split file: {', '.join(new[:20])}; add them to "
                             "the file or set split.new_subjects to assign or train")
        fixed = dict(pinned.subjects) | ({s: "train" for s in new} if new_subjects == "train" else {})
        if folds and pinned.folds and pinned.fold_count != folds:
            raise PinnedMismatch(f"the split file has {pinned.fold_count} folds but split.folds is {folds}; "
                             f"set split.folds to {pinned.fold_count}")
        fixed_folds = dict(pinned.folds) if folds else {}
    subjects = assign_splits(ids, ratios, seed=seed, pinned={**(pins or {}), **fixed})  # the file wins
    pool = [s for s in ids if subjects[s] in FOLD_POOL]
    fold_of = assign_folds(pool, folds, seed=seed, pinned=fixed_folds) if folds >= 2 and len(pool) >= folds else {}
    plan = SplitPlan(subjects, fold_of)
    if fold is None:
        return plan
    if not fold_of:
        raise ValueError(f"split.fold is {fold} but there are no folds: set split.folds >= 2 "
                         f"(at most the {len(pool)} train+valid subjects)")
    return SplitPlan(plan.fold_split(fold), fold_of)


def write_splits(path: Path, plan: SplitPlan) -> None:
    Path(path).write_text(json.dumps(plan.to_json(), indent=2) + "\n")


def read_splits(path: Path) -> SplitPlan:
    """A split file written by :func:`write_splits` (or edited by hand), checked for consistency.

    Raises:
        DatasetError: naming ``path`` and what is wrong with it.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DatasetError(path, "split file not found; copy a prepared set's splits.json there "
                                 "(e.g. cp data/prepared/<key>/splits.json splits/<key>.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(path, f"not a readable JSON split file: {err}") from None
    subjects = data.get("subjects") if isinstance(data, dict) else None
    if not isinstance(subjects, dict) or not all(isinstance(v, str) for v in subjects.values()):
        raise DatasetError(path, 'expected {"subjects": {"<id>": "train|valid|test", ...}, "folds": [...]}')
    bad = sorted(s for s, split in subjects.items() if split not in SPLITS)
    if bad:
        raise DatasetError(path, f"subject(s) {', '.join(bad[:10])} have a split other than {', '.join(SPLITS)}")
    folds: dict[str, int] = {}
    for k, entry in enumerate(data.get("folds") or []):
        val = entry.get("val") if isinstance(entry, dict) else None
        if not isinstance(val, list):
            raise DatasetError(path, f'folds[{k}]: expected {{"train": [...], "val": [...]}}')
        for s in val:
            if s in folds:
                raise DatasetError(path, f"subject {s} is in the val list of folds {folds[s]} and {k}; one fold each")
            folds[s] = k
    if folds:
        pool = {s for s, split in subjects.items() if split in FOLD_POOL}
        if set(folds) != pool:
            extra, missing = sorted(set(folds) - pool), sorted(pool - set(folds))
            raise DatasetError(path, "the folds' val lists must hold exactly the train and valid subjects; "
                                     f"not train/valid: {', '.join(extra[:10]) or 'none'}; "
                                     f"in no fold: {', '.join(missing[:10]) or 'none'}")
    return SplitPlan(dict(subjects), folds)


def split_warnings(assignment: Mapping[str, str], splits: Iterable[str] = SPLITS) -> list[str]:
    """One line per split that is empty or holds a single subject (its scores would say little)."""
    counts = {name: 0 for name in splits}
    for split in assignment.values():
        counts[split] = counts.get(split, 0) + 1
    lines = []
    for name, n in counts.items():
        if n == 0:
            lines.append(f"split {name!r} is empty: no subject was assigned to it; add subjects or change prepare.split")
        elif n == 1:
            lines.append(f"split {name!r} holds a single subject: its numbers describe one patient; "
                         "add subjects or change prepare.split")
    return lines
