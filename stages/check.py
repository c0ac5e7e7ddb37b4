"""check: an integrity report on a raw source as published, before preparing it, and/or on a prepared
set (dataset.json, pairing, mask values, manifest); exit 1 on problems."""

from __future__ import annotations

import functools
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import DatasetError
from pipeline.workers import ordered_results
from pipeline.dataset.integrity import error_record, format_report, summarise, summarise_subject
from pipeline.dataset.prepared import check_set
from pipeline.sources import get_reader, reader_for
from pipeline.sources.subject import SubjectRef
from pipeline.writers import write_report
from stages.common import EXIT_DATA, base_parser, dataset_params, reader_name, resolve_jobs, stage_edge


def expected_labels(num_classes: int) -> list[int]:
    """``num_classes`` counts foreground classes (as prepare.num_classes): labels 0..num_classes."""
    return list(range(max(1, num_classes) + 1))


def check_one(reader: str, ref: SubjectRef, *, options: dict, labels: list[int]) -> tuple[dict | None, dict | None]:
    if ref.problem:  # found while listing (e.g. a label without its series): reported like a failed load
        path, _, problem = ref.problem.partition(": ")
        return None, error_record(DatasetError(path, problem), subject=ref.subject_id)
    try:
        subject = get_reader(reader).load(ref, **options)
    except DatasetError as error:
        return None, error_record(error, subject=ref.subject_id)
    return summarise_subject(subject, expected_labels=labels), None


@stage_edge("check")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--raw", type=Path, help="folder holding the source as published")
    parser.add_argument("--prepared", type=Path, help="a set written by prepare or augment, to check as well")
    parser.add_argument("--out", type=Path, help="write the JSON report of --raw here")
    parser.add_argument("--n-jobs", type=int, help="worker processes (default: params n_jobs)")
    args = parser.parse_args(argv)
    if args.raw is None and args.prepared is None:
        parser.error("give --raw, --prepared or both")
    set_problems = check_set(args.prepared) if args.prepared else []
    if args.prepared:
        found = f"{len(set_problems)} problem(s)" if set_problems else "no problems found"
        print(f"prepared set {args.prepared}: {found}")
        for problem in set_problems:
            print(f"  - {problem}")
    if args.raw is None:
        if set_problems:
            raise SystemExit(EXIT_DATA)
        return

    name = reader_name(args.dataset, args.params)
    params = dataset_params(args.dataset, args.params, reader_options=reader_for(args.dataset, name).Options)
    options = dict(params.get("prepare", {}).get("reader") or {})
    labels = expected_labels(int(params.get("prepare", {}).get("num_classes", 1)))
    records: list[dict] = []
    errors: list[dict] = []
    try:
        refs = get_reader(name).discover(args.raw, **options)
    except DatasetError as error:
        refs = []
        errors.append(error_record(error, stage="discover"))
    jobs = resolve_jobs(args.n_jobs if args.n_jobs is not None else params.get("n_jobs"))
    check = functools.partial(check_one, name, options=options, labels=labels)
    with ordered_results(check, refs, jobs=jobs, preload=["stages.check"]) as results:
        for record, error in tqdm(results, total=len(refs), desc=f"check@{args.dataset}", leave=False):
            if record is not None:
                records.append(record)
            else:
                errors.append(error)

    report = summarise(records, errors)
    print(format_report(report, dataset=args.dataset))
    if args.out:
        write_report(args.out, report, inputs=[args.raw, args.prepared])
    if not report["ok"] or set_problems:
        raise SystemExit(EXIT_DATA)


if __name__ == "__main__":
    main()
