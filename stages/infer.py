"""infer@<key>: predict masks for a folder of PNG images, or for a new scan as published (--raw).

With ``--images``: masks, pictures, and NIfTI volumes for volumetric sources (``--prepared``).
With ``--raw``: the dataset's reader reads the scan (NIfTI, DICOM series, 2D image, folder or zip)
without any label, prepare's intensity/upright/placement path feeds the model, and the mask lands
on the source grid: ``<id>.nii.gz`` with the source's shape and affine for volumes, PNGs at the
source size for 2D sources, plus ``montage.png`` (slice | prediction overlay).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.dataset.prepared import read_info, read_mask, write_mask
from pipeline.errors import DatasetError
from pipeline.learning.heads import classes_of_outputs, model_outputs
from pipeline.reports.overlay import blend, colorize, montage, save_rgb, to_rgb, triptych
from pipeline.sources import get_reader
from pipeline.writers import atomic_dir
from stages.common import base_parser, dataset_params, import_tensorflow, stage_edge

CHUNK = 64      # images decoded at a time, so any folder size fits in memory
MONTAGE_ROWS = 6


def infer_raw(key: str, params: dict, raw: Path, model_path: Path, out_dir: Path) -> str:
    """Segment every scan the reader finds at ``raw``; returns the summary line."""
    prep, train = params["prepare"], params["train"]
    # TensorFlow and the readers' libraries: only once the flags are read, so mistakes show fast
    import_tensorflow()
    from pipeline.learning.predict import load_model
    from pipeline.learning.scan import predict_scan
    from pipeline.learning.volume import save_nifti

    scans = get_reader(key).load_images(raw, **prep.get("reader", {}))
    ids = [s.subject_id for s in scans]
    if len(set(ids)) != len(ids):
        raise DatasetError(raw, f"two scans share a name ({', '.join(sorted(i for i in set(ids) if ids.count(i) > 1))}); "
                                "point --raw at one of them")
    model = load_model(model_path)
    classes = classes_of_outputs(model.output_shape[-1])
    rows, written = [], []
    with atomic_dir(out_dir, inputs=[raw, model_path]) as out:  # never over the scan or the model
        for scan in tqdm(scans, desc=f"infer@{key}", unit="scan"):
            pred = predict_scan(
                model, scan, size=int(params.get("image_size", 512)), letterbox=bool(prep.get("letterbox", False)),
                intensity=prep.get("intensity", {"mode": "none"}), axis=int(prep.get("axis", 2)),
                channels=int(model.input_shape[-1]), input_size=int(train["input_size"]),
                threshold=float(params["evaluate"]["threshold"]), batch_size=int(train.get("batch_size", 8)),
                target_spacing=prep.get("target_spacing"), context_slices=int(prep.get("context_slices", 0)))
            if scan.layout == "volume":
                save_nifti(out / f"{scan.subject_id}.nii.gz", pred.labels, scan.affine, orientation=scan.orientation)
                written.append(f"{scan.subject_id}.nii.gz")
            else:
                names = scan.slice_names or tuple(str(i) for i in range(len(pred.labels)))
                for name, labels in zip(names, pred.labels):
                    rel = f"{scan.subject_id}.png" if len(names) == 1 else f"{scan.subject_id}/{name}.png"
                    write_mask(out / "masks" / rel, labels, num_classes=classes)
                    written.append(f"masks/{rel}")
            busy = np.argsort([-np.count_nonzero(m) for m in pred.display_labels], kind="stable")
            for i in sorted(busy[:max(1, MONTAGE_ROWS // len(scans))].tolist()):
                image = pred.display_images[i]
                rows.append([to_rgb(image), blend(image, pred.display_labels[i])])
        save_rgb(out / "montage.png", montage(rows[:MONTAGE_ROWS * 2], titles=["scan", "prediction"]))
    return (f"infer@{key}: {len(scans)} scan(s) from {raw} -> {out_dir}: {', '.join(written[:3])}"
            f"{' ...' if len(written) > 3 else ''}, montage.png")


@stage_edge("infer")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of .png images (prepared-style slices)")
    source.add_argument("--raw", type=Path, help="a new scan as published: NIfTI file, DICOM series folder, "
                                                 "2D image, or a folder/zip of them; no label needed")
    parser.add_argument("--model", type=Path, required=True, help="trained .keras model")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--prepared", type=Path,
                        help="prepared set: its dataset.json gives the classes, its geometry.json rebuilds volumes "
                             "(without it, the classes come from the model's outputs)")
    args = parser.parse_args(argv)
    p = dataset_params(args.dataset, args.params)
    if args.raw is not None:
        print(infer_raw(args.dataset, p, args.raw, args.model, args.out))
        return
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
