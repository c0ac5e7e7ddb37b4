"""Cross-validation summary: every fold's test metrics reduced to mean and standard deviation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def aggregate(folds: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """``{metric: {"mean", "std"}}`` over the folds for every numeric metric, plus ``folds``; counts
    (``n_*``) equal in every fold are reported once as they are. Mean and std only: every key is a
    ``dvc exp show`` column (each fold's own figures stay in its eval.json).

    ``std`` is the sample standard deviation (n - 1), 0 for one fold. Folds where a metric is
    undefined (null, e.g. HD95 with no non-empty pair) are left out of that metric; a metric undefined
    in every fold is null.
    """
    if not folds:
        raise ValueError("no folds to aggregate")
    names = sorted({k for f in folds for k, v in f.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                   | {k for f in folds for k, v in f.items() if v is None})
    out: dict[str, object] = {"folds": len(folds)}
    for name in names:
        if name.startswith("n_") and len({f.get(name) for f in folds}) == 1:
            out[name] = folds[0][name]  # a count every fold shares (the one test split's images, subjects)
            continue
        values = [float(f[name]) for f in folds
                  if isinstance(f.get(name), (int, float)) and math.isfinite(float(f[name]))]
        if not values:
            out[name] = None
            continue
        out[name] = {
            "mean": round(statistics.fmean(values), 6),
            "std": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0,
        }
    return out
