"""augment@<key>: augment the train split of a prepared set; valid and test pass through unchanged."""

from __future__ import annotations

from pathlib import Path

from pipeline.writers import atomic_dir
from pipeline.workers import start_early
from stages.common import base_parser, dataset_params, resolve_jobs, stage_edge

MONTAGE_SAMPLES = 8


@stage_edge("augment")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--in", dest="src", type=Path, required=True, help="prepared set to augment")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the augmented set into")
    parser.add_argument("--reports", type=Path, help="folder for samples.png (default: none)")
    parser.add_argument("--n-jobs", type=int, help="worker processes; 0 = all cores (default: params n_jobs)")
    args = parser.parse_args(argv)

    jobs = resolve_jobs(args.n_jobs if args.n_jobs is not None else dataset_params(args.dataset, args.params).get("n_jobs"))
    if jobs > 1:  # the workers' server imports albumentations beside this process doing the same
        start_early(["pipeline.dataset.augment"])
    # albumentations, OpenCV and matplotlib: only once the flags are read, so --help stays fast
    import cv2

    from pipeline.dataset.augment import augment_set, spec_problems
    from pipeline.reports.plots import save_montage

    params = dataset_params(args.dataset, args.params, spec_problems=spec_problems)  # transforms checked too
    options = dict(params.get("augment") or {})

    with atomic_dir(args.out, inputs=[args.src]) as tmp:
        rows = augment_set(
            args.src, tmp,
            specs=options.get("transforms") or [],
            seed=int(options.get("seed", params.get("seed", 0))),
            copies=options.get("copies", 1),
            keep_original=bool(options.get("keep_original", True)),
            n_jobs=jobs,
            desc=f"augment@{args.dataset}",
            source=f"{args.params}: datasets.{args.dataset}.augment.transforms",
        )

    augmented = [row for row in rows if row["copy"] != 0]
    if args.reports:
        shown = augmented[:: max(1, len(augmented) // MONTAGE_SAMPLES)][:MONTAGE_SAMPLES]
        samples = [
            (cv2.imread(str(args.out / r["image"]), cv2.IMREAD_UNCHANGED),
             cv2.imread(str(args.out / r["mask"]), cv2.IMREAD_UNCHANGED))
            for r in shown
        ]
        with atomic_dir(args.reports, inputs=[args.src, args.out]) as reports:
            save_montage(reports / "samples.png", samples, labels=[Path(r["image"]).stem for r in shown],
                         title=f"augment@{args.dataset}: augmented train samples")
    print(f"augment@{args.dataset}: {len(rows) - len(augmented)} originals + {len(augmented)} augmented "
          f"train pairs, valid/test copied, {jobs} workers -> {args.out}")


if __name__ == "__main__":
    main()
