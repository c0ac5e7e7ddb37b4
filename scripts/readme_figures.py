"""The README's pictures and metrics table, regenerated from a finished demo run (`make demo`).

Reads only what the pipeline wrote (reports/, artifacts/, metrics/, data/prepared/) and writes
small PNGs to docs/img/ plus the metrics table between the ``<!-- demo-metrics -->`` markers of
README.md, so nothing in the README is drawn or typed by hand. Run from the repository root:
``python -m scripts.readme_figures``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from pipeline.reports.overlay import error_overlay, save_rgb, triptych  # noqa: E402
from pipeline.dataset.prepared import read_info, read_manifest, read_mask, rows_of_split  # noqa: E402
from pipeline.learning.predict import read_image  # noqa: E402

KEYS = ("faz", "ms", "aisd", "pancreas", "lasc")
# The seeds' published test figures (../shared/seeds/), all on slice-level splits: the sigmoid
# seeds' dice_coef (soft, batch-pooled, foreground) or the FlexUNet seeds' dice_coef_multiclass
# (the same with the background channel), and the details.json key holding that metric for our model.
SEEDS = {
    "faz": ("dice_coef", 0.9058, "dice_seeds_style"),
    "ms": ("dice_coef", 0.7507, "dice_seeds_style"),
    "aisd": ("dice_coef_multiclass", 0.9904, "dice_seeds_style_bg"),
    "pancreas": ("dice_coef", None, "dice_seeds_style"),  # only a validation bce_iou_loss of 0.1609 is published
    "lasc": ("dice_coef_multiclass", 0.9996, "dice_seeds_style_bg"),
}
MARK = re.compile(r"(<!-- demo-metrics:start -->\n).*?(<!-- demo-metrics:end -->)", re.S)


def _shrink(src: Path, dst: Path, width: int) -> None:
    """Copy a PNG, scaled down to ``width`` pixels wide (area interpolation: a picture, not a mask)."""
    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{src}: missing; run `make demo` (dvc repro) first")
    if image.shape[1] > width:
        height = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), image)


def _read_tsv(path: Path) -> tuple[list[int], list[float]]:
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    name = [k for k in rows[0] if k != "step"][0]
    return [int(r["step"]) + 1 for r in rows], [float(r[name]) for r in rows]


def curves(root: Path, dst: Path) -> None:
    """Train and validation foreground Dice per epoch, one panel per dataset (dvclive's TSVs)."""
    fig, axes = plt.subplots(1, len(KEYS), figsize=(3.2 * len(KEYS), 2.8), sharey=True)
    for ax, key in zip(axes, KEYS):
        base = root / "artifacts" / key / "live" / "plots" / "metrics"
        for split, label in (("train", "train"), ("eval", "valid")):
            epochs, dice = _read_tsv(base / split / "dice.tsv")
            ax.plot(epochs, dice, label=label)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("foreground Dice")
    axes[0].set_ylim(0, 1)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(dst, dpi=90)
    plt.close(fig)


def _test_pick(root: Path, key: str) -> tuple[Path, Path, Path]:
    """The test slice with the most foreground: its image, ground truth and predicted mask."""
    prepared = root / "data" / "prepared" / key
    rows = rows_of_split(read_manifest(prepared), "test")
    best = max(rows, key=lambda r: (int(r["foreground_pixels"]), r["image"]))
    name = Path(best["image"]).name
    return prepared / best["image"], prepared / best["mask"], root / "artifacts" / key / "infer" / "masks" / name


def predictions(root: Path, params: dict, out: Path) -> None:
    """One test slice per dataset: image | truth | prediction, and the TP/FP/FN overlay."""
    rows, overlays = [], []
    for key in KEYS:
        classes = read_info(root / "data" / "prepared" / key).num_classes
        image_path, truth_path, pred_path = _test_pick(root, key)
        image = read_image(image_path)
        truth, pred = read_mask(truth_path, num_classes=classes), read_mask(pred_path, num_classes=classes)
        rows.append((image, truth, pred))
        overlays.append(cv2.resize(error_overlay(image, pred, truth), (176, 176), interpolation=cv2.INTER_AREA))
    save_rgb(out / "triptych.png", triptych(rows, tile=160))
    save_rgb(out / "tp_fp_fn.png", np.concatenate(overlays, axis=1))


def metrics_table(root: Path) -> str:
    lines = [
        "| dataset | test subjects (slices) | volume Dice per subject | HD95 | mean surface distance "
        "| 2D Dice per image | the seed's metric, our model | the seed's published figure |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in KEYS:
        # eval.json: the two headline metrics; details.json: every other figure and the counts
        m = {**json.loads((root / "metrics" / key / "details.json").read_text()),
             **json.loads((root / "metrics" / key / "eval.json").read_text())}
        name, published, ours = SEEDS[key]
        theirs = f"{name} {published:.4f}" if published is not None else "none (val bce_iou_loss 0.1609)"
        unit = m["distance_unit"]
        hd, msd = (f"{m[k]:.1f} {unit}" if m.get(k) is not None else "-" for k in (f"hd95_{unit}", f"msd_{unit}"))
        lines.append(f"| {key} | {m['n_subjects']} ({m['n_images']}) | {m['dice_volume']:.3f} | {hd} | {msd} "
                     f"| {m['dice_image']:.3f} | {name} {m[ours]:.3f} | {theirs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root after `dvc repro`")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    root, out = args.root, args.out
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    _shrink(root / "reports/pancreas/prepare/split_counts.png", out / "split_counts.png", 560)
    _shrink(root / "reports/lasc/prepare/samples.png", out / "prepare_samples.png", 720)
    _shrink(root / "reports/faz/augment/samples.png", out / "augment_samples.png", 720)
    curves(root, out / "curves.png")
    predictions(root, params, out)
    readme = args.readme.read_text()
    if not MARK.search(readme):
        raise SystemExit(f"{args.readme}: no <!-- demo-metrics:start/end --> markers to fill")
    args.readme.write_text(MARK.sub(lambda m: m.group(1) + metrics_table(root) + m.group(2), readme))
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} to {out}; metrics table in {args.readme}")


if __name__ == "__main__":
    main()
