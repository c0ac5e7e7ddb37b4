"""synth@<key>: write a small synthetic stand-in of a raw source, in its published layout."""

from __future__ import annotations

from pathlib import Path

from pipeline.synth import SYNTHESIZERS, get_synthesizer
from pipeline.writers import atomic_dir
from stages.common import base_parser, dataset_params, stage_edge


@stage_edge("synth")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the source into")
    parser.add_argument("--subjects", type=int, help="override datasets.<key>.synth.subjects")
    parser.add_argument("--seed", type=int, help="override datasets.<key>.synth.seed")
    args = parser.parse_args(argv)

    options = dict(dataset_params(args.dataset, args.params).get("synth", {}))
    if args.subjects is not None:
        options["subjects"] = args.subjects
    if args.seed is not None:
        options["seed"] = args.seed
    if args.dataset not in SYNTHESIZERS:  # a params-only dataset (reader: msd/nnunet) reads a real folder
        with atomic_dir(args.out) as tmp:
            (tmp / "NO_STAND_IN.txt").write_text(
                f"datasets.{args.dataset} has no synthetic stand-in: its raw folder holds the real data.\n")
        print(f"synth@{args.dataset}: no stand-in for this dataset (raw points at real data); nothing to do")
        return
    with atomic_dir(args.out) as tmp:
        get_synthesizer(args.dataset).generate(tmp, **options)
    print(f"synth@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    main()
