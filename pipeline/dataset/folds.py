"""One cross-validation fold of a prepared set: its train+valid subjects re-split by the set's splits.json.

The fold's valid split is the subjects of ``folds[k]["val"]``, its train split the other train+valid
subjects; test subjects are in no fold and stay out (evaluate scores every fold's model on the
prepared set's own test split). The pairs are copied byte for byte, so a fold set is an ordinary
prepared set for augment and train.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.dataset.prepared import DATASET_JSON, IMAGES, MASKS, pair_paths, read_manifest, write_manifest
from pipeline.dataset.split import FOLD_POOL, SplitPlan, read_splits, write_splits
from pipeline.errors import DatasetError

CARRIED = (DATASET_JSON,)  # facts of the prepared set that hold for every fold (channels, classes, ...)


def write_fold(prepared: Path, out: Path, *, fold: int) -> dict[str, int]:
    """Write fold ``fold`` of ``prepared`` at ``out`` (train/, valid/, manifest.csv, splits.json).

    Returns the number of pairs per split. Raises DatasetError when the set has no such fold.
    """
    prepared, out = Path(prepared), Path(out)
    plan = read_splits(prepared / "splits.json")
    if not plan.folds:
        raise DatasetError(prepared / "splits.json", "the prepared set has no folds; set prepare.split.folds >= 2 "
                                                     "(at most its number of train+valid subjects) and run prepare")
    try:
        assignment = plan.fold_split(fold)
    except ValueError as err:
        raise DatasetError(prepared / "splits.json", f"{err}; list only those folds in cv.folds") from None
    rows = [r for r in read_manifest(prepared) if r["split"] in FOLD_POOL]
    for name in FOLD_POOL:
        for kind in (IMAGES, MASKS):
            (out / name / kind).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(FOLD_POOL, 0)
    for row in rows:
        split = assignment[row["subject"]]
        moved = pair_paths(split, Path(row["image"]).stem)
        for kind, path in zip(("image", "mask"), moved):
            shutil.copyfile(prepared / row[kind], out / path)
            row[kind] = path
        row["split"] = split
        counts[split] += 1
    write_manifest(out / "manifest.csv", rows)
    pool = {s: split for s, split in assignment.items() if split in FOLD_POOL}
    write_splits(out / "splits.json", SplitPlan(pool, plan.folds))
    for name in CARRIED:
        if (prepared / name).is_file():
            shutil.copyfile(prepared / name, out / name)
    return counts
