"""train@<key>: fit the seeds' UNet on a PNG set, logging curves and snapshots with dvclive."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from pipeline.errors import UsageError
from pipeline.dataset.prepared import list_pairs, read_info
from pipeline.learning.heads import input_channels, model_outputs
from pipeline.writers import guarded_dir
from stages.common import base_parser, dataset_params, import_tensorflow, stage_edge

ARCH = ("base_filters", "base_kernels", "num_layers", "dilation", "dropout_rate", "batch_norm")


def fit_verbosity(stream: TextIO | None = None) -> int:
    """Keras' progress bar (steps within the epoch and an ETA) in a terminal; one line per epoch
    otherwise, so DVC's logs and CI output do not fill with carriage-return redraws."""
    stream = sys.stdout if stream is None else stream
    return 1 if getattr(stream, "isatty", lambda: False)() else 2


@stage_edge("train")
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="set with train/ and valid/ splits")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.keras and live/")
    args = parser.parse_args(argv)
    params = dataset_params(args.dataset, args.params)
    p = params["train"]
    info = read_info(args.data)
    outputs = model_outputs(num_classes=info.num_classes, head=params["train"].get("head", "sigmoid"),
                            mask_encoding=info.mask_encoding, source=f"{args.data}/dataset.json")
    # TensorFlow, keras and dvclive: only once the flags and the set are read, so mistakes show fast
    import_tensorflow()
    import keras
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from models.devices import place
    from models.losses import get_loss
    from models.metrics import default_metrics
    from models.training import EpochSnapshots, make_optimizer
    from models.unet import build_unet
    from pipeline.learning.predict import export_saved_model, load_model
    from pipeline.learning.tfdata import load_pairs, make_dataset
    from pipeline.reports.palette import MASK_PANEL_COLOURS

    # before anything touches a GPU: memory growth, precision, devices
    placement = place(mixed_precision=p.get("mixed_precision", False), jit_compile=p.get("jit_compile", "auto"))
    for note in placement.notes:
        print(f"train@{args.dataset}: {note}")
    keras.utils.set_random_seed(p["seed"])

    channels = input_channels(requested=p["channels"], prepared=info.channels)
    shape = dict(input_size=p["input_size"], channels=channels, num_classes=info.num_classes)
    batch = placement.global_batch(p["batch_size"])
    head = p.get("head", "sigmoid")
    train = make_dataset(args.data / "train", **shape, head=head, batch_size=batch, shuffle=True, seed=p["seed"])
    valid = make_dataset(args.data / "valid", **shape, head=head, batch_size=batch)
    valid_stems = [stem for stem, _, _ in list_pairs(args.data / "valid")]
    picks = np.linspace(0, len(valid_stems) - 1, min(p["snapshot_images"], len(valid_stems))).astype(int)
    stems, images, masks = load_pairs(args.data / "valid", **shape, stems=[valid_stems[i] for i in picks])

    with placement.scope():
        model = build_unet(p["input_size"], channels, outputs, *(p[k] for k in ARCH))
        model.compile(
            optimizer=make_optimizer(p["optimizer"], learning_rate=p["learning_rate"],
                                     clipvalue=p.get("clipvalue")),
            loss=get_loss(p["loss"], outputs=outputs),
            metrics=default_metrics(),
            jit_compile=placement.jit_compile,
        )
    print(f"train@{args.dataset}: {placement.describe(p['batch_size'])}, XLA {'on' if model.jit_compile else 'off'}")

    with guarded_dir(args.out, inputs=[args.data]):  # refuses an --out in --data; one run at a time
        (args.out / "model.keras").unlink(missing_ok=True)  # a model of an earlier run must not pass for this one's
        if (args.out / "saved_model" / "saved_model.pb").is_file():  # an export this stage wrote before
            shutil.rmtree(args.out / "saved_model")
        live = Live(dir=str(args.out / "live"), dvcyaml=False, save_dvc_exp=False)
        callbacks = [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **p["reduce_lr"], verbose=1),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=p["early_stopping_patience"],
                                          restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(args.out / "model.keras", monitor="val_loss",
                                            save_best_only=True),
            keras.callbacks.TerminateOnNaN(),
            EpochSnapshots(stems, images, masks,
                           log=lambda stem, epoch, panel: live.log_image(f"{stem}/{epoch}.png", panel),
                           colours=MASK_PANEL_COLOURS),
            DVCLiveCallback(live=live),  # last: it advances the dvclive step
        ]
        history = model.fit(train, validation_data=valid, epochs=p["epochs"], callbacks=callbacks,
                            shuffle=False, verbose=fit_verbosity()).history

    if not (args.out / "model.keras").is_file():
        raise UsageError(f"{args.params}: datasets.{args.dataset}.train.learning_rate: no epoch reached a finite "
                         "val_loss, so no model.keras was written; lower learning_rate, set clipvalue, "
                         "or turn off mixed_precision")
    export_saved_model(load_model(args.out / "model.keras"), args.out / "saved_model")  # the best epoch's weights
    best = int(np.nanargmin(history["val_loss"]))
    # Validation figures of the epoch whose weights model.keras holds (dvclive's own are the last).
    live.summary["best"] = {"step": best, **{k[4:]: float(v[best]) for k, v in history.items()
                                              if k.startswith("val_")}}
    live.make_summary()
    # The few figures `dvc exp show` lists (dvclive's metrics.json has every metric of the last epoch).
    summary = {"best_epoch": best + 1, "val_dice": round(float(history["val_dice"][best]), 6),
               "val_loss": round(float(history["val_loss"][best]), 6)}
    (args.out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"train@{args.dataset}: {len(history['loss'])} epochs, best epoch {best + 1}: "
          f"val_dice {history['val_dice'][best]:.3f}, val_loss {history['val_loss'][best]:.4f}; "
          f"wrote {args.out / 'model.keras'} ({model.count_params():,} parameters) and its SavedModel export")


if __name__ == "__main__":
    main()
