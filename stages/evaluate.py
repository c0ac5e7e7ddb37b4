"""evaluate@<key>: score the trained model on the prepared test split (never augmented).

eval.json holds the two headline metrics, `dvc exp show` columns (per-subject volume Dice, HD95 with
its unit); details.json the other figures, counts and per-class figures; per_image.csv and
per_subject.csv every row.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.dataset.prepared import list_pairs, read_info, subjects_by_stem
from pipeline.errors import DatasetError
from pipeline.reports.overlay import error_legend, error_overlay, save_rgb, with_legend
from pipeline.writers import atomic_dir
from pipeline.learning.heads import model_outputs
from stages.common import base_parser, dataset_params, import_tensorflow, stage_edge


def _clean(value):
    """JSON has no NaN: undefined scores (e.g. HD95 with no non-empty pair) become null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows({k: _clean(v) for k, v in r.items()} for r in rows)


@stage_edge("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="prepared set (its test/ split is scored)")
    parser.add_argument("--model", type=Path, required=True, help="trained .keras model")
    parser.add_argument("--out", type=Path, required=True, help="folder for eval.json and the CSVs")
    parser.add_argument("--reports", type=Path, required=True, help="folder for overlays/")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    args = parser.parse_args(argv)
    params = dataset_params(args.dataset, args.params)
    train, opts = params["train"], params["evaluate"]
    info = read_info(args.data)
    outputs = model_outputs(num_classes=info.num_classes, head=params["train"].get("head", "sigmoid"),
                            mask_encoding=info.mask_encoding, source=f"{args.data}/dataset.json")

    # TensorFlow and SimpleITK: only once the flags and the set are read, so mistakes show fast
    import_tensorflow()
    from pipeline.evaluation.scoring import score_split
    from pipeline.learning.predict import load_model, read_image

    split_dir = args.data / args.split
    stems = [p[0] for p in list_pairs(split_dir)]
    n_over = min(int(opts.get("overlays", 0)), len(stems))
    keep = {stems[i] for i in np.unique(np.linspace(0, len(stems) - 1, n_over).astype(int))} if n_over else set()
    model = load_model(args.model)
    if model.output_shape[-1] != outputs:
        raise DatasetError(args.model, f"the model has {model.output_shape[-1]} outputs, expected {outputs} for "
                           f"train.head {train.get('head', 'sigmoid')} and {info.num_classes} foreground class(es); "
                           "train it again on this set")
    geometry_file = args.data / "geometry.json"
    scores = score_split(
        model, split_dir, subjects=subjects_by_stem(args.data), input_size=train["input_size"],
        channels=model.input_shape[-1], num_classes=info.num_classes, head=train.get("head", "sigmoid"),
        threshold=opts["threshold"],
        batch_size=train.get("batch_size", 8), keep=keep, progress=tqdm,
        geometry=json.loads(geometry_file.read_text()) if geometry_file.is_file() else None,
    )

    with atomic_dir(args.out, inputs=[args.data, args.model]) as out:
        (out / "eval.json").write_text(json.dumps({k: _clean(v) for k, v in scores.summary.items()}, indent=2) + "\n")
        (out / "details.json").write_text(json.dumps({k: _clean(v) for k, v in scores.details.items()}, indent=2) + "\n")
        _write_csv(out / "per_image.csv", scores.images)
        _write_csv(out / "per_subject.csv", scores.subjects)
    with atomic_dir(args.reports, inputs=[args.data, args.model]) as reports:
        (reports / "overlays").mkdir()
        for stem, (image_path, truth, pred) in sorted(scores.kept.items()):
            save_rgb(reports / "overlays" / f"{stem}.png",
                     with_legend(error_overlay(read_image(image_path), pred, truth), error_legend()))

    s, d = scores.summary, scores.details
    unit = d["distance_unit"]
    print(f"evaluate@{args.dataset}: {d['n_images']} {args.split} images of {d['n_subjects']} subjects: "
          f"volume dice {s['dice_volume']:.3f}, hd95 {s[f'hd95_{unit}']:.1f} {unit}, msd {d[f'msd_{unit}']:.1f} {unit}, "
          f"image dice {d['dice_image']:.3f} over {d['n_images_scored']} images with foreground, "
          f"{d['n_empty_truth_images_with_prediction']} of {d['n_empty_truth_images']} empty slices given some; "
          f"wrote {args.out / 'eval.json'}")


if __name__ == "__main__":
    main()
