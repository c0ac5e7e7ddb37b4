"""export@<key>: a prepared dataset's subjects, read again from their source volumes, as an nnU-Net v2 raw
dataset (imagesTr/labelsTr for train+valid, imagesTs/labelsTs for test, dataset.json, splits_final.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import DatasetError
from pipeline.sources import reader_for
from pipeline.writers import atomic_dir
from stages.common import base_parser, dataset_params, raw_folder, reader_name, stage_edge


@stage_edge("export")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared set (its stats.json names the split)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write, e.g. Dataset501_Lasc")
    parser.add_argument("--raw", type=Path, help="source folder (default: datasets.<key>.raw)")
    args = parser.parse_args(argv)
    reader = reader_for(args.dataset, reader_name(args.dataset, args.params))
    params = dataset_params(args.dataset, args.params, reader_options=reader.Options)
    raw = args.raw if args.raw is not None else raw_folder(args.dataset, params)
    stats_path, info_path = args.prepared / "stats.json", args.prepared / "dataset.json"
    for path in (stats_path, info_path):
        if not path.is_file():
            raise DatasetError(path, f"not found: expected a set written by prepare; run dvc repro prepare@{args.dataset}")
    stats, info = json.loads(stats_path.read_text()), json.loads(info_path.read_text())
    assignment = {s: v for s, v in stats["split_assignment"].items() if s not in stats.get("skipped_subjects", {})}
    options = params.get("prepare", {}).get("reader") or {}
    refs = [r for r in reader.discover(raw, **options) if r.subject_id in assignment]
    if len(refs) != len(assignment):
        missing = sorted(set(assignment) - {r.subject_id for r in refs})
        raise DatasetError(raw, f"subjects of the prepared set not found in the source: {', '.join(missing)}; "
                                "point --raw at the folder the set was prepared from")
    from pipeline.dataset.export import export_nnunet  # nibabel only once the flags are read

    subjects = ((reader.load(r, **options), assignment[r.subject_id]) for r in refs)
    with atomic_dir(args.out, inputs=[raw, args.prepared]) as tmp:  # never over a folder it did not write
        export_nnunet(tmp, tqdm(subjects, total=len(refs), desc=f"export@{args.dataset}", unit="subject"),
                      num_classes=int(info["num_classes"]), name=args.out.name)
    print(f"export@{args.dataset}: {len(refs)} subjects as nnU-Net v2 raw -> {args.out}")


if __name__ == "__main__":
    main()
