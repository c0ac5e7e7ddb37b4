"""Training throughput of the seeds' UNet at 512x512, float32 vs mixed precision.

Runs on whatever Keras backend is configured (KERAS_BACKEND); on the lent GPU machine that is JAX,
since it ships no TensorFlow: the model code is backend-neutral Keras 3. With ``--input`` it also
measures how fast the project's tf.data pipeline feeds 512x512 PNG pairs on this machine's CPU.
Prints images/second; the figures are ratios within one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SEED_CONFIGS = {
    # the seeds' ms/pancreas-style configuration (31,127,153 parameters at 3 channels, 1 class)
    "L7_k5": dict(base_filters=16, base_kernels=(5, 5), num_layers=7, dilation=(2, 2), dropout_rate=0.05),
    # the seeds' largest (num_layers 8, kernels 9x9)
    "L8_k9": dict(base_filters=16, base_kernels=(9, 9), num_layers=8, dilation=(3, 3), dropout_rate=0.08),
}


def train_throughput(config: dict, *, precision: str, batch: int, steps: int, size: int = 512) -> float:
    import keras

    from models.losses import get_loss
    from models.unet import build_unet

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_unet(size, 3, 1, **config)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=get_loss("bce_dice_loss"))
    rng = np.random.default_rng(0)
    x = rng.random((batch * 4, size, size, 3), dtype=np.float32)
    y = (rng.random((batch * 4, size, size, 1)) > 0.9).astype(np.float32)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile + warm-up
    start = time.perf_counter()
    for _ in range(max(1, steps // 4)):
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return (max(1, steps // 4) * batch * 4) / elapsed


def input_throughput(batch: int, n: int = 64, size: int = 512) -> float:
    """Images/s that pipeline.learning.tfdata delivers from 512x512 PNG pairs on this CPU."""
    import tempfile
    from pathlib import Path

    import cv2

    from pipeline.learning.tfdata import make_dataset

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "train"
        (split / "images").mkdir(parents=True)
        (split / "masks").mkdir(parents=True)
        for i in range(n):
            img = (rng.random((size, size)) * 255).astype(np.uint8)
            cv2.imwrite(str(split / "images" / f"s{i}_0000.png"), img)
            cv2.imwrite(str(split / "masks" / f"s{i}_0000.png"), (img > 200).astype(np.uint8) * 255)
        ds = make_dataset(split, input_size=size, channels=3, num_classes=1, batch_size=batch, shuffle=True, seed=0, cache=False)
        for _ in ds.take(1):
            pass
        start = time.perf_counter()
        count = 0
        for _ in range(3):
            for images, _masks in ds:
                count += int(images.shape[0])
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--configs", nargs="+", default=list(SEED_CONFIGS))
    parser.add_argument("--input", action="store_true", help="measure the tf.data input pipeline (needs TensorFlow)")
    args = parser.parse_args()

    import keras

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    for name in args.configs:
        f32 = train_throughput(SEED_CONFIGS[name], precision="float32", batch=args.batch, steps=args.steps)
        mixed = train_throughput(SEED_CONFIGS[name], precision="mixed_float16", batch=args.batch, steps=args.steps)
        print(f"{name}: train images/s at 512x512 batch {args.batch}: float32 {f32:.1f}, mixed_float16 {mixed:.1f} "
              f"(x{mixed / f32:.2f})")
    if args.input:
        print(f"tf.data input pipeline (512x512 PNG pairs, 3 channels): {input_throughput(args.batch):.1f} images/s")


if __name__ == "__main__":
    main()
