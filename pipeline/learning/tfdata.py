"""tf.data input from a prepared set's split (layout and pairing: pipeline.dataset.prepared).

Images are 8-bit grey or RGB; masks are single-channel uint8 read by the strict rule of
pipeline.slices.masks: 0/255 for one foreground class, class indices ``0..num_classes`` for several.
``num_classes`` always counts foreground classes (as dataset.json); ``head`` decides the targets.

Stable interface (evaluate and infer import it):
    make_dataset(split_dir, *, input_size, channels, num_classes, head, batch_size, shuffle, seed)
        -> tf.data.Dataset of (image (B,S,S,channels) float32 in [0,1],
                               mask (B,S,S,1) float32 {0,1} for sigmoid or (B,S,S,num_classes+1) one-hot)
    load_pairs(split_dir, *, input_size, channels, num_classes=1, stems=None)
        -> (stems, images (N,S,S,channels) float32, masks (N,S,S) uint8 class indices)
    load_images(paths, *, input_size, channels) -> images (N,S,S,channels) float32
    images_for_model(squares, *, input_size, channels) -> the same from uint8 arrays (a new scan)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.dataset.prepared import list_pairs
from pipeline.errors import DatasetError
from pipeline.learning.heads import model_outputs


def _decode_image(path: tf.Tensor, input_size: int | None, channels: int) -> tf.Tensor:
    """PNG -> (S, S, channels) uint8; grey/RGB converted to ``channels``, resized with antialiasing.

    Kept in uint8 until after the cache (4x less memory than float32 at the seeds' 512x512x3);
    :func:`_to_unit` scales it for the model, the same way in training, evaluation and inference.
    """
    return _to_input_size(tf.io.decode_png(tf.io.read_file(path), channels=channels, dtype=tf.uint8), input_size)


def _to_input_size(image: tf.Tensor, input_size: int | None) -> tf.Tensor:
    """uint8 ``(..., H, W, C)`` to the model's side, bilinear with antialiasing, back to uint8."""
    if input_size:
        image = tf.image.resize(image, (input_size, input_size), method="bilinear", antialias=True)
        image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    return image


def _to_unit(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32) / 255.0


def _decode_mask(path: tf.Tensor, input_size: int | None, num_classes: int) -> tf.Tensor:
    """PNG -> (S, S, 1) uint8 class indices, by pipeline.slices.masks' strict rule (decode_mask).

    One foreground class: 0/255 only, 255 is the class; several: indices ``0..num_classes``. Any
    other value stops training or scoring instead of silently becoming a label.
    """
    mask = tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=tf.uint8)
    if input_size:
        mask = tf.image.resize(mask, (input_size, input_size), method="nearest")
    if num_classes == 1:
        ok = tf.reduce_all((mask == 0) | (mask == 255))
        problem = "one-class mask must be 0/255 (dataset.json num_classes=1); prepare it again:"
    else:
        ok = tf.reduce_all(mask <= num_classes)
        problem = f"mask label > num_classes={num_classes}; labels must be class indices 0..{num_classes}:"
    check = tf.debugging.Assert(ok, [problem, path])
    with tf.control_dependencies([check]):
        if num_classes == 1:
            return tf.cast(mask == 255, tf.uint8)
        return tf.identity(mask)


def _encode_target(mask: tf.Tensor, outputs: int) -> tf.Tensor:
    if outputs == 1:
        return tf.cast(mask, tf.float32)
    return tf.one_hot(tf.cast(mask[..., 0], tf.int32), outputs, dtype=tf.float32)


def make_dataset(
    split_dir: Path,
    *,
    input_size: int | None,
    channels: int,
    num_classes: int = 1,
    head: str = "sigmoid",
    batch_size: int = 8,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of ``(image, target)`` for ``model.fit``; see the module docstring for shapes.

    Pairs are formed from file names before anything is decoded, so shuffling moves image and
    mask together. Decoded pairs are cached in memory (the sets here are small); the order is
    reshuffled each epoch from ``seed``. ``num_classes`` counts foreground classes; ``head`` gives
    the targets' channels (pipeline.learning.heads.model_outputs).
    """
    outputs = model_outputs(num_classes=num_classes, head=head)
    pairs = list_pairs(split_dir)
    ds = tf.data.Dataset.from_tensor_slices(
        ([str(p[1]) for p in pairs], [str(p[2]) for p in pairs])
    )
    ds = ds.map(
        lambda i, m: (_decode_image(i, input_size, channels), _decode_mask(m, input_size, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if cache:  # uint8 pairs: scaling and one-hot happen per batch, after the cache
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda i, m: (_to_unit(i), _encode_target(m, outputs)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_pairs(
    split_dir: Path, *, input_size: int | None, channels: int, num_classes: int = 1,
    stems: Collection[str] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A whole split (or only ``stems`` of it) in memory, decoded exactly as training sees it.

    Returns ``(stems, images, masks)``: images ``(N, S, S, channels)`` float32 in [0, 1],
    masks ``(N, S, S)`` uint8 class indices (0/1 for one class), in stem order.
    """
    pairs = list_pairs(split_dir)
    if stems is not None:
        wanted = set(stems)
        pairs = [p for p in pairs if p[0] in wanted]
    if not pairs:
        raise DatasetError(split_dir, f"none of the stems {sorted(stems or [])[:5]} is in this split")
    ds = tf.data.Dataset.from_tensor_slices(
        ([str(p[1]) for p in pairs], [str(p[2]) for p in pairs])
    ).map(
        lambda i, m: (
            _to_unit(_decode_image(i, input_size, channels)),
            _decode_mask(m, input_size, num_classes)[..., 0],
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    images, masks = zip(*ds.as_numpy_iterator())
    return [p[0] for p in pairs], np.stack(images), np.stack(masks)


def load_images(paths: Sequence[Path], *, input_size: int | None, channels: int) -> np.ndarray:
    """Images only (for inference), decoded as in training: ``(N, S, S, channels)`` float32."""
    if not paths:
        raise DatasetError("<images>", "no image paths given; expected at least one .png")
    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(
        lambda i: _to_unit(_decode_image(i, input_size, channels))
    )
    return np.stack(list(ds.as_numpy_iterator()))


def images_for_model(squares: np.ndarray, *, input_size: int | None, channels: int) -> np.ndarray:
    """Prepared-style uint8 squares ``(N, S, S[, C])`` (as prepare writes them, before PNG) for the model.

    The same resize and scaling as :func:`load_images` applies to the decoded PNGs, so a new scan
    reaches the model exactly as the prepared test images do: ``(N, s, s, channels)`` float32.
    """
    squares = np.asarray(squares, dtype=np.uint8)
    if squares.ndim == 3:
        squares = squares[..., None]
    if squares.shape[-1] != channels:  # grey written, RGB model (or back): decode_png converts the same way
        squares = np.repeat(squares[..., :1], channels, axis=-1) if channels == 3 else squares[..., :1]
    return _to_unit(_to_input_size(tf.constant(squares), input_size)).numpy()
