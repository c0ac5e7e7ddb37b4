"""cv@<key>: mean and standard deviation of the test metrics over every cross-validation fold -> cv.json."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.dataset.split import read_splits
from pipeline.errors import DatasetError, UsageError
from pipeline.evaluation.crossval import aggregate
from pipeline.writers import check_overlap
from stages.common import base_parser, stage_edge


@stage_edge("cv")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared set whose splits.json has the folds")
    parser.add_argument("--folds", type=Path, required=True, help="folder holding <k>/eval.json for every fold")
    parser.add_argument("--out", type=Path, required=True, help="cv.json to write")
    args = parser.parse_args(argv)
    count = read_splits(args.prepared / "splits.json").fold_count
    if not count:
        raise DatasetError(args.prepared / "splits.json", "no folds; set prepare.split.folds >= 2 and run prepare")
    paths = [args.folds / str(k) / "eval.json" for k in range(count)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # an older fold count's leftovers are ignored, a missing fold is not
        raise DatasetError(missing[0], f"{len(missing)} of {count} folds have no eval.json; "
                                       f"list every fold 0..{count - 1} in cv.folds")
    summary = aggregate([json.loads(p.read_text()) for p in paths])
    check_overlap(args.out, [args.prepared, args.folds])
    if args.out.is_dir():
        raise UsageError(f"{args.out}: the output is a folder; pass a file name such as metrics/<key>/cv.json as --out")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.parent / f".tmp-{args.out.name}"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(args.out)  # whole or not at all
    dice = summary.get("dice_volume") or {}
    print(f"cv@{args.dataset}: {count} folds, test volume dice {dice.get('mean', float('nan')):.3f} "
          f"± {dice.get('std', float('nan')):.3f} (sample std) -> {args.out}")


if __name__ == "__main__":
    main()
