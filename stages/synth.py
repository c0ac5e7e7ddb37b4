"""synth@<key>: write a small synthetic stand-in of a raw source, in its published layout."""

from __future__ import annotations

from pathlib import Path

from pipeline.synth import get_synthesizer
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
    with atomic_dir(args.out) as tmp:
        get_synthesizer(args.dataset).generate(tmp, **options)
    print(f"synth@{args.dataset}: wrote {args.out}")


if __name__ == "__main__":
    main()
