"""Where training runs: devices, replicas, precision and XLA, on any Keras 3 backend (no file I/O).

One call, :func:`place`, before the model is built: GPU memory grows on demand instead of being
grabbed whole, the mixed-precision policy fits the GPU (or is off on a CPU, with a note why),
and with several devices the model is mirrored over all of them (TensorFlow ``MirroredStrategy``,
JAX ``keras.distribution.DataParallel``). ``CUDA_VISIBLE_DEVICES`` decides which GPUs are seen.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

# params.yaml train.mixed_precision -> wanted policy ("auto" picks by compute capability)
PRECISIONS = {False: None, "off": None, True: "auto", "auto": "auto",
              "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
FLOAT16_MIN_CC = (7, 0)   # tensor cores (Volta and later): float16 matmuls run fast
BFLOAT16_MIN_CC = (8, 0)  # bfloat16 arithmetic in hardware (Ampere and later)


@dataclass(frozen=True)
class Placement:
    """The devices a model trains on and how; ``scope()`` wraps building and compiling it."""

    backend: str
    devices: tuple[str, ...]
    precision: str                 # keras dtype policy: float32, mixed_float16 or mixed_bfloat16
    jit_compile: bool | str = "auto"  # for model.compile: True, False or "auto" (Keras decides)
    notes: tuple[str, ...] = ()    # one line each: why a setting is not what was asked
    strategy: Any = None           # tf.distribute.MirroredStrategy with several TensorFlow devices

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def how(self) -> str:
        if self.replicas == 1:
            return "one device"
        return "MirroredStrategy" if self.strategy is not None else "DataParallel"

    def global_batch(self, per_replica: int) -> int:
        """``batch_size`` is per device, so each replica sees the same batch as on one device."""
        return per_replica * self.replicas

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self, per_replica: int) -> str:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # set per queue worker: one GPU each
        return (f"{self.backend} on {', '.join(self.devices)} ({self.how}, {self.replicas} replica"
                f"{'s' if self.replicas > 1 else ''}, global batch {self.global_batch(per_replica)}"
                f"{'' if visible is None else f', CUDA_VISIBLE_DEVICES={visible}'}), precision {self.precision}")


def choose_precision(setting: Any, *, capabilities: Sequence[tuple[int, int]]) -> tuple[str, str]:
    """The dtype policy for ``train.mixed_precision`` on GPUs of these compute capabilities.

    ``false``/``off``: float32. ``auto``/``true``: mixed_float16 where every GPU has tensor cores
    (compute capability >= 7.0). ``float16``/``bfloat16``: that policy where the GPUs support it
    (bfloat16 needs >= 8.0). Without a GPU, or on GPUs that lack support, float32 and a one-line note.
    Returns ``(policy, note)``.
    """
    if setting not in PRECISIONS:
        raise ValueError(f"mixed_precision {setting!r} is not one of false, auto, float16, bfloat16")
    wanted = PRECISIONS[setting]
    if wanted is None:
        return "float32", ""
    if not capabilities:
        return "float32", "mixed precision off: no GPU here, and on a CPU it is slower, not faster"
    cc = min(capabilities)
    shown = f"{cc[0]}.{cc[1]}"
    if wanted in ("auto", "mixed_float16"):
        if cc >= FLOAT16_MIN_CC:
            return "mixed_float16", ""
        return "float32", f"mixed precision off: GPU compute capability {shown} < 7.0 has no tensor cores"
    if cc >= BFLOAT16_MIN_CC:
        return "mixed_bfloat16", ""
    return "float32", f"mixed_bfloat16 off: GPU compute capability {shown} < 8.0 lacks bfloat16; use float16"


def _tf_devices() -> tuple[list[str], list[tuple[int, int]]]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # before anything initialises them
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    caps = [tuple(tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)))
            for g in gpus]
    # Every GPU; without one, the CPU (split into logical devices only by tests).
    names = [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    return names, caps


def _jax_devices() -> tuple[list[str], list[tuple[int, int]]]:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX's memory growth
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    caps = [tuple(int(v) for v in str(getattr(d, "compute_capability", "0.0")).split(".")[:2]) for d in gpus]
    return [str(d) for d in (gpus or jax.devices("cpu"))], caps


def choose_jit_compile(setting: bool | str, *, mirrored: bool) -> tuple[bool | str, str]:
    """``train.jit_compile`` (true, false, auto) as model.compile takes it, and a note if changed.

    TensorFlow cannot XLA-compile a MirroredStrategy step (a replica's variables live on another
    device), so there it is off; "auto" lets Keras decide (on for GPUs and JAX, off on a TF CPU).
    """
    if setting not in (True, False, "auto"):
        raise ValueError(f"jit_compile {setting!r} is not one of true, false, auto")
    if setting is True and mirrored:
        return False, "XLA off: TensorFlow cannot jit_compile a MirroredStrategy step; the JAX backend can"
    return setting, ""


def place(*, mixed_precision: Any = False, jit_compile: bool | str = "auto") -> Placement:
    """Set up this process for training and say where it runs (call before building the model).

    Sets the global dtype policy and, with several devices, the distribution; returns the
    :class:`Placement` whose ``scope()`` the model must be built and compiled in.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        names, caps = _tf_devices()
    elif backend == "jax":
        names, caps = _jax_devices()
    else:
        names, caps = ["default device"], []
    precision, note = choose_precision(mixed_precision, capabilities=caps)
    keras.mixed_precision.set_global_policy(precision)
    strategy = None
    if len(names) > 1 and backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices=names)
    elif len(names) > 1 and backend == "jax":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=keras.distribution.list_devices()))
    jit, jit_note = choose_jit_compile(jit_compile, mirrored=strategy is not None)
    return Placement(backend=backend, devices=tuple(names), precision=precision, jit_compile=jit,
                     notes=tuple(n for n in (note, jit_note) if n), strategy=strategy)
