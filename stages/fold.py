"""fold@<key>-<k>: fold k of a prepared set (its splits.json folds) as a train/valid set for augment and train."""

from __future__ import annotations

from pathlib import Path

from pipeline.dataset.folds import write_fold
from pipeline.writers import atomic_dir
from stages.common import base_parser, stage_edge


@stage_edge("fold")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared set with splits.json")
    parser.add_argument("--fold", type=int, required=True, help="fold index, 0..K-1")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the fold's set into")
    args = parser.parse_args(argv)
    with atomic_dir(args.out, inputs=[args.prepared]) as tmp:
        counts = write_fold(args.prepared, tmp, fold=args.fold)
    print(f"fold@{args.dataset}-{args.fold}: {counts['train']} train and {counts['valid']} valid pairs -> {args.out}")


if __name__ == "__main__":
    main()
