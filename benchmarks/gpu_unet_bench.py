"""Does the input keep up? tf.data images/s at 512x512 against a model step's images/s.

The input side is the project's own pipeline (pipeline.learning.tfdata: PNG decode, batching,
prefetch) on this machine's CPU, both the first epoch (decoding) and later ones (from the in-memory
cache training uses). The model side is a training step of the seeds' UNet (or the demo's) on
whatever Keras backend and devices there are (KERAS_BACKEND, CUDA_VISIBLE_DEVICES), in float32
and, on a GPU, in the mixed precision `train.mixed_precision: auto` would pick. Prints images/s
and, per configuration, whether the input is the bottleneck.

    python -m benchmarks.gpu_unet_bench                         # seeds' L7/k5 at 512x512, batch 8
    python -m benchmarks.gpu_unet_bench --configs demo --steps 4 # something a CPU finishes
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SEED_CONFIGS = {
    # the seeds' ms/pancreas-style configuration (31,127,153 parameters at 3 channels, 1 class)
    "L7_k5": dict(base_filters=16, base_kernels=(5, 5), num_layers=7, dilation=(2, 2), dropout_rate=0.05),
    # the seeds' largest (num_layers 8, kernels 9x9)
    "L8_k9": dict(base_filters=16, base_kernels=(9, 9), num_layers=8, dilation=(3, 3), dropout_rate=0.08),
    # params.yaml's demo model, here at the benchmark's size
    "demo": dict(base_filters=8, base_kernels=(3, 3), num_layers=5, dilation=(1, 1), dropout_rate=0.05),
}


def train_throughput(config: dict, *, precision: str, batch: int, steps: int, size: int = 512,
                     placement=None) -> float:
    """Images/s of ``model.fit`` steps on random data already in memory (no input cost)."""
    import contextlib

    import keras

    from models.losses import get_loss
    from models.unet import build_unet

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    with placement.scope() if placement is not None else contextlib.nullcontext():
        model = build_unet(size, 3, 1, **config)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=get_loss("bce_dice_loss"))
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, size, size, 3), dtype=np.float32)
    y = (rng.random((batch * steps, size, size, 1)) > 0.9).astype(np.float32)
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # compile + warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return batch * steps / elapsed


def write_pngs(split: Path, *, n: int, size: int) -> None:
    """``n`` RGB 512x512 image/mask pairs: noise compresses badly, so decode cost is not flattered."""
    import cv2

    rng = np.random.default_rng(0)
    (split / "images").mkdir(parents=True)
    (split / "masks").mkdir(parents=True)
    for i in range(n):
        img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(split / "images" / f"s{i}_0000.png"), img)
        cv2.imwrite(str(split / "masks" / f"s{i}_0000.png"), (img[..., 0] > 200).astype(np.uint8) * 255)


def input_throughput(*, batch: int, n: int = 64, size: int = 512) -> tuple[float, float]:
    """Images/s the training input delivers: first epoch (PNG decode) and a cached epoch."""
    from pipeline.learning.tfdata import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "train"
        write_pngs(split, n=n, size=size)
        ds = make_dataset(split, input_size=size, channels=3, num_classes=1, batch_size=batch,
                          shuffle=True, seed=0, cache=True)
        rates = []
        for _ in range(2):  # epoch 1 decodes and fills the cache; epoch 2 reads it
            start = time.perf_counter()
            count = sum(int(images.shape[0]) for images, _ in ds)
            rates.append(count / (time.perf_counter() - start))
        return rates[0], rates[1]


def verdict(input_rate: float, step_rate: float) -> str:
    """One line: does an input of ``input_rate`` images/s keep a model of ``step_rate`` busy?"""
    if input_rate >= step_rate:
        return f"input keeps up ({input_rate / step_rate:.1f}x what the model takes)"
    return (f"input is the bottleneck: it feeds {input_rate:.1f} images/s, the model could take "
            f"{step_rate:.1f}; more CPU cores, or keep the set small enough for the in-memory cache")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch (the seeds used 4-8)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per precision")
    parser.add_argument("--size", type=int, default=512, help="image side")
    parser.add_argument("--images", type=int, default=64, help="PNG pairs the input pipeline reads")
    parser.add_argument("--configs", nargs="+", default=["L7_k5"], choices=list(SEED_CONFIGS))
    args = parser.parse_args(argv)

    import keras

    from models.devices import place

    placement = place(mixed_precision="auto")
    batch = placement.global_batch(args.batch)
    print(f"keras {keras.__version__}: {placement.describe(args.batch)}")
    precisions = ["float32"] + ([placement.precision] if placement.precision != "float32" else [])
    if placement.notes:
        print(f"  {placement.notes[0]}: float32 only")
    first, cached = input_throughput(batch=batch, n=args.images, size=args.size)
    print(f"input, {args.size}x{args.size} RGB PNG pairs, batch {batch}: {first:.1f} images/s decoding "
          f"(epoch 1), {cached:.1f} images/s from the cache (later epochs)")
    for name in args.configs:
        for precision in precisions:
            rate = train_throughput(SEED_CONFIGS[name], precision=precision, batch=batch, steps=args.steps,
                                    size=args.size, placement=placement)
            print(f"{name} {precision}: {rate:.1f} images/s per training step; epoch 1: {verdict(first, rate)}; "
                  f"later: {verdict(cached, rate)}")


if __name__ == "__main__":
    main()
