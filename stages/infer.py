"""infer@<key>: predict masks for a folder of PNG images; pictures, and NIfTI volumes for volumetric sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.dataset.prepared import read_info, read_mask, write_mask
from pipeline.errors import DatasetError
from pipeline.learning.heads import classes_of_outputs, model_outputs
from pipeline.reports.overlay import blend, colorize, save_rgb, triptych
from pipeline.writers import atomic_dir
from stages.common import base_parser, dataset_params, import_tensorflow, stage_edge

CHUNK = 64      # images decoded at a time, so any folder size fits in memory
MONTAGE_ROWS = 6


@stage_edge("infer")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--images", type=Path, required=True, help="folder of .png images")
    parser.add_argument("--model", type=Path, required=True, help="trained .keras model")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--prepared", type=Path,
                        help="prepared set: its dataset.json gives the classes, its geometry.json rebuilds volumes "
                             "(without it, the classes come from the model's outputs)")
    args = parser.parse_args(argv)
    p = dataset_params(args.dataset, args.params)
    train, threshold = p["train"], p["evaluate"]["threshold"]
    outputs = None
    if args.prepared:
        info = read_info(args.prepared)
        outputs = model_outputs(num_classes=info.num_classes, head=train.get("head", "sigmoid"),
                                mask_encoding=info.mask_encoding, source=f"{args.prepared}/dataset.json")

    paths = sorted(q for q in args.images.glob("*.png")) if args.images.is_dir() else []
    if not paths:
        raise DatasetError(args.images, "no .png images found; expected a folder of PNG slices")
    truth_dir = args.images.parent / "masks"
    geometry_file = args.prepared / "geometry.json" if args.prepared else None
    if geometry_file is not None and not geometry_file.is_file():
        raise DatasetError(geometry_file, "not found; --prepared must be a set written by stages.prepare")
    # TensorFlow and nibabel: only once the flags and the folders are checked, so mistakes show fast
    import_tensorflow()
    from pipeline.learning.predict import load_model, predict_array, probs_to_labels, read_image, resize_labels
    from pipeline.learning.tfdata import load_images
    from pipeline.learning.volume import save_nifti, volume_from_geometry

    model = load_model(args.model)
    if outputs is not None and model.output_shape[-1] != outputs:
        raise DatasetError(args.model, f"the model has {model.output_shape[-1]} outputs, expected {outputs} for "
                           f"train.head {train.get('head', 'sigmoid')} and {args.prepared}/dataset.json; "
                           "train it again on this set")
    classes = classes_of_outputs(model.output_shape[-1])
    picks = {int(i) for i in np.linspace(0, len(paths) - 1, min(MONTAGE_ROWS, len(paths)))}
    rows = []
    with atomic_dir(args.out, inputs=[args.images, args.prepared, args.model]) as out:
        for start in tqdm(range(0, len(paths), CHUNK), desc=f"infer@{args.dataset}", unit="chunk"):
            chunk = paths[start:start + CHUNK]
            x = load_images(chunk, input_size=train["input_size"], channels=model.input_shape[-1])
            probs = np.concatenate([pr for _, pr in predict_array(model, x, batch_size=train.get("batch_size", 8))])
            for j, (path, small) in enumerate(zip(chunk, probs_to_labels(probs, threshold=threshold))):
                image = read_image(path)
                labels = resize_labels(small, image.shape[:2])
                write_mask(out / "masks" / path.name, labels, num_classes=classes)
                save_rgb(out / "colour" / path.name, colorize(labels))
                save_rgb(out / "overlays" / path.name, blend(image, labels))
                if start + j in picks:
                    gt = truth_dir / path.name
                    rows.append((image, read_mask(gt, num_classes=classes) if gt.is_file() else None, labels))
        save_rgb(out / "montage.png", triptych(rows))
        volumes = 0
        if geometry_file is not None:
            for subject, entry in sorted(json.loads(geometry_file.read_text()).items()):
                if entry.get("layout") != "volume":  # 2D sources have no volume to rebuild
                    continue
                written = [out / "masks" / n for n in entry.get("slices", {}).values()]
                built = volume_from_geometry(
                    entry, {m.name: read_mask(m, num_classes=classes) for m in written if m.is_file()})
                if built is not None:
                    save_nifti(out / "volumes" / f"{subject}.nii.gz", *built,
                               orientation=entry.get("mask_orientation"))
                    volumes += 1
    print(f"infer@{args.dataset}: {len(paths)} images -> {args.out}/masks, colour, overlays, montage.png"
          + (f"; {volumes} NIfTI volume(s) in {args.out}/volumes" if geometry_file is not None else ""))


if __name__ == "__main__":
    main()
