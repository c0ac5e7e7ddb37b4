"""Does the training input pipeline keep up with the model? tf.data decode + batch vs the demo model's steps.

Both on this machine's CPU, one after the other: images/s that ``pipeline.learning.tfdata.make_dataset``
delivers from 512x512 PNG pairs (decode, resize to the model input, batch; the in-memory cache off, so
every epoch decodes, as the first epoch does), and images/s of the demo model's training steps
(``train`` params of the dataset, on in-memory batches). The input pipeline must deliver at least
the model's rate. Run: ``python -m benchmarks.train_input_bench``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def write_split(split: Path, pairs: int) -> None:
    """512x512 grey images with a bright disc and its 0/255 mask, as prepare writes them."""
    import cv2

    from pipeline.slices.png import encode_png

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (split / sub).mkdir(parents=True)
    for i in range(pairs):
        image = rng.normal(60, 20, (512, 512)).clip(0, 255).astype(np.uint8)
        cv2.circle(image, (int(rng.integers(150, 360)), int(rng.integers(150, 360))), 60, 190, -1)
        mask = np.where(image > 140, 255, 0).astype(np.uint8)
        (split / "images" / f"s{i % 7}_{i:04d}.png").write_bytes(encode_png(image))
        (split / "masks" / f"s{i % 7}_{i:04d}.png").write_bytes(encode_png(mask))


def input_rate(split: Path, p: dict, epochs: int) -> float:
    from pipeline.learning.tfdata import make_dataset

    ds = make_dataset(split, input_size=p["input_size"], channels=p["channels"], num_classes=1,
                      head=p.get("head", "sigmoid"), batch_size=p["batch_size"], shuffle=True, seed=0, cache=False)
    for _ in ds.take(1):  # graph building and the first file reads out of the timing
        pass
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        for images, _ in ds:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def model_rate(p: dict, steps: int) -> float:
    import keras

    from models.losses import get_loss
    from models.training import make_optimizer
    from models.unet import build_unet
    from stages.train import ARCH

    keras.utils.set_random_seed(0)
    model = build_unet(p["input_size"], p["channels"], 1, *(p[k] for k in ARCH))
    model.compile(optimizer=make_optimizer(p["optimizer"], learning_rate=p["learning_rate"]),
                  loss=get_loss(p["loss"], outputs=1))
    rng = np.random.default_rng(0)
    size, batch = p["input_size"], p["batch_size"]
    x = rng.random((batch, size, size, p["channels"]), dtype=np.float32)
    y = (rng.random((batch, size, size, 1)) > 0.9).astype(np.float32)
    for _ in range(3):  # compile and warm up
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="lasc", help="whose train params give the demo model")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from stages.common import dataset_params

    p = dataset_params(args.dataset, ROOT / "params.yaml")["train"]
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "train"
        write_split(split, args.pairs)
        feeds, steps = [], []
        for _ in range(args.repeats):  # interleaved, best of each
            feeds.append(input_rate(split, p, epochs=1))
            steps.append(model_rate(p, args.steps))
    feed, step = max(feeds), max(steps)
    print(f"training input ({args.dataset} train params: {p['input_size']} px, batch {p['batch_size']}), "
          f"best of {args.repeats}")
    print(f"  tf.data decode + resize + batch of 512x512 PNG pairs: {feed:.0f} images/s; model steps: {step:.0f} "
          f"images/s; ratio {feed / step:.1f}x  (aim >= 1)")


if __name__ == "__main__":
    main()
