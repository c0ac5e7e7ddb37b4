"""prepare@<key>: a raw source to subject-wise split square PNG image/mask pairs, manifest, stats, pictures."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.errors import DatasetError, UsageError
from pipeline.sources import reader_for, worker_imports
from pipeline.dataset.split import SPLITS, PinnedMismatch, plan_splits, read_splits, split_warnings, write_splits
from pipeline.workers import start_early
from pipeline.writers import atomic_dir
from stages.common import base_parser, dataset_params, raw_folder, reader_name, resolve_jobs, stage_edge

OPTIONS = ("letterbox", "intensity", "axis", "channels", "min_foreground_pixels", "keep_empty_fraction",
           "num_classes", "rgb_map", "context_slices", "target_spacing")


def read_pinned(path: Path, out: Path):
    """The split file to pin, refused when it lies in the output (DVC deletes that before the run)."""
    if path.resolve().is_relative_to(out.resolve()):
        raise DatasetError(path, f"the split file lies in the output folder {out}, which prepare replaces; "
                                 "copy it elsewhere first, e.g. to splits/")
    return read_splits(path)


@stage_edge("prepare")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--raw", type=Path, help="folder holding the source as published "
                        "(default: datasets.<key>.raw in params, so dvc.yaml never puts a path in a shell)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the prepared set into")
    parser.add_argument("--reports", type=Path, help="folder for split_counts.png and samples.png")
    parser.add_argument("--n-jobs", type=int, help="worker processes (0 = all cores); overrides n_jobs")
    parser.add_argument("--on-error", choices=("fail", "skip"), help="overrides prepare.on_error")
    args = parser.parse_args(argv)
    key = args.dataset
    reader = reader_for(key, reader_name(key, args.params))
    from pipeline.slices.intensity import check_spec, resolve_spec  # OpenCV: not for --help

    params = dataset_params(key, args.params, reader_options=reader.Options)
    args.raw = args.raw if args.raw is not None else raw_folder(key, params)
    prep = dict(params["prepare"])
    on_error = args.on_error or prep.get("on_error", "fail")
    split = dict(prep.get("split", {}))
    split_seed = int(split.pop("seed", params.get("seed", 0)))
    folds, fold = int(split.pop("folds", 0) or 0), split.pop("fold", None)
    split_file, new_subjects = split.pop("file", None), split.pop("new_subjects", "assign")
    options = {k: prep[k] for k in OPTIONS if k in prep}
    options.update(size=int(params.get("image_size", 512)), seed=int(prep.get("seed", params.get("seed", 0))))
    jobs = resolve_jobs(args.n_jobs if args.n_jobs is not None else params.get("n_jobs"))
    where = f"{args.params}: datasets.{key}.prepare"
    reader_options = prep.get("reader") or {}
    # generic readers (msd, nnunet) know the modality and the classes from the dataset's own json
    modality = reader.modality(args.raw, **reader_options) if hasattr(reader, "modality") else None
    if hasattr(reader, "num_classes"):
        found = reader.num_classes(args.raw, **reader_options)
        if found != int(options.get("num_classes", 1)):
            raise UsageError(f"{where}.num_classes: {options.get('num_classes', 1)}, but {args.raw}/dataset.json "
                             f"with prepare.reader.labels gives {found} foreground class(es); set num_classes: "
                             f"{found}{' and train.head: softmax' if found > 1 else ''}, or map labels to classes")
    try:
        options["intensity"] = resolve_spec(options.get("intensity"), modality=modality)
        check_spec(options["intensity"])
    except ValueError as err:
        raise UsageError(f"{where}.intensity: {err}") from None
    refs = sorted(reader.discover(args.raw, **reader_options), key=lambda r: r.subject_id)
    if jobs > 1 and len(refs) > 1:  # subjects on several workers: their server imports beside this process
        start_early(["pipeline.dataset.prepare", *worker_imports(reader)])
    from tqdm import tqdm

    from pipeline.dataset.prepare import Outcome, Task, outcomes_in_order, save_card, save_pictures, summarize, write_json
    from pipeline.dataset.prepared import DatasetInfo, mask_encoding, write_info, write_manifest

    # per-subject problems found while listing (e.g. a label without its series): out before splitting
    unreadable = [Outcome(r.subject_id, "", error=r.problem) for r in refs if r.problem]
    if unreadable and on_error == "fail":
        path, _, problem = unreadable[0].error.partition(": ")
        raise DatasetError(path, problem)
    refs = [r for r in refs if not r.problem]
    pins = reader.pinned_splits(refs, **reader_options) if hasattr(reader, "pinned_splits") else {}
    pinned = read_pinned(Path(split_file), args.out) if split_file else None
    try:
        plan = plan_splits([r.subject_id for r in refs], split, seed=split_seed, folds=folds, pins=pins,
                           fold=None if fold is None else int(fold), pinned=pinned, new_subjects=new_subjects)
    except PinnedMismatch as err:  # ids of a split file that do not match the data: the file is the problem
        raise DatasetError(split_file, str(err)) from None
    except ValueError as err:
        raise UsageError(f"{where}.split: {err}") from None
    assignment = plan.subjects
    for line in split_warnings(assignment, SPLITS):
        print(f"prepare@{key}: warning: {line}", file=sys.stderr)
    if len(assignment) != len(refs):
        raise DatasetError(args.raw, "two subjects share one id; expected unique subject ids")

    workers = min(jobs, len(refs) or 1)
    threads = max(1, jobs // workers)  # cores no subject worker takes: lent to each subject as threads
    with atomic_dir(args.out, inputs=[args.raw]) as tmp:
        for name in SPLITS:
            (tmp / name / "images").mkdir(parents=True)
            (tmp / name / "masks").mkdir(parents=True)
        filter_splits = tuple(prep.get("empty_filter_splits", ("train", "valid")))
        tasks = [Task(reader.__name__, r, reader_options, assignment[r.subject_id], str(tmp),
                      str(args.raw), options, filter_splits, threads) for r in refs]
        outcomes = list(unreadable)
        with outcomes_in_order(tasks, jobs=workers) as results:
            for outcome in tqdm(results, total=len(tasks), desc=f"prepare@{key}", unit="subject"):
                if outcome.error and on_error == "fail":  # leaving the loop cancels the subjects not started
                    path, _, problem = outcome.error.partition(": ")
                    raise DatasetError(path, problem)
                outcomes.append(outcome)
        rows = [row for o in outcomes for row in o.rows]
        write_manifest(tmp / "manifest.csv", rows)
        classes = int(options.get("num_classes", 1))
        channels = 3 if options.get("context_slices") else int(options.get("channels", 1))  # 2.5D: z-1, z, z+1
        write_info(tmp, DatasetInfo(
            num_classes=classes, channels=channels, image_size=options["size"],
            mask_encoding=mask_encoding(num_classes=classes, rgb_map=options.get("rgb_map")),
            slice_axis=int(options.get("axis", 2))))
        write_splits(tmp / "splits.json", plan)
        stats = summarize(outcomes, assignment, SPLITS)
        stats["pinned_splits"] = dict(sorted(pins.items()))  # subjects the reader fixed to a split
        stats["notes"] = reader.notes(args.raw) if hasattr(reader, "notes") else []  # e.g. unused files
        write_json(tmp / "stats.json", stats)
        write_json(tmp / "geometry.json", {o.subject_id: o.geometry for o in outcomes if o.geometry})
        if args.reports:
            with atomic_dir(args.reports, inputs=[args.raw, args.out]) as reports:
                save_pictures(reports, tmp, rows, stats, title=f"prepare@{key}")
                facts = [f"{len(outcomes)} subjects", f"{classes} foreground class(es)",
                         f"{options.get('channels', 1)} channel(s)", f"modality {modality or 'as the source'}",
                         f"intensity {options['intensity']}"]
                save_card(reports / "card.png", tmp, rows, stats, title=f"prepare@{key} dataset card", facts=facts,
                          spacings=[o.geometry["spacing"] for o in outcomes if o.geometry], num_classes=classes)
    skipped = f", skipped {len(stats['skipped_subjects'])} subjects" if stats["skipped_subjects"] else ""
    print(f"prepare@{key}: {len(rows)} pairs {stats['pairs']}, dropped {stats['dropped']}{skipped} -> {args.out}")


if __name__ == "__main__":
    main()
