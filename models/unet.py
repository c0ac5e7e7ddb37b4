"""The seeds' SlightlyFlexibleUNet in Keras 3: a plain UNet with kernel and dilation schedules."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def _level_kernel(base_kernels: Sequence[int], level: int) -> tuple[int, int]:
    """Large kernels near the input, shrinking by 2 per level, never below 3."""
    return (max(3, base_kernels[0] - 2 * level), max(3, base_kernels[1] - 2 * level))


def _level_dilation(dilation: Sequence[int], level: int) -> tuple[int, int]:
    """Dilation shrinking by 1 per level, never below 1."""
    return (max(1, dilation[0] - level), max(1, dilation[1] - level))


def build_unet(
    image_size: int,
    channels: int,
    outputs: int,
    base_filters: int,
    base_kernels: Sequence[int],
    num_layers: int,
    dilation: Sequence[int],
    dropout_rate: float,
    batch_norm: bool = False,
    *,
    activation: str = "elu",
) -> keras.Model:
    """Build the seeds' SlightlyFlexibleUNet (uncompiled).

    ``num_layers`` counts encoder levels including the bottleneck; level ``i`` has
    ``base_filters * 2**i`` filters, kernel ``max(3, k - 2i)``, dilation ``max(1, d - i)`` and
    dropout ``dropout_rate * i``; the decoder reuses the values of the same level.

    Args:
        image_size: side of the square input; divisible by ``2**(num_layers - 1)``.
        channels: input channels (1 grey, 3 RGB).
        outputs: output channels, from pipeline.learning.heads.model_outputs: 1 gives a sigmoid
            head, more a softmax head (background + foreground classes).
        base_filters, base_kernels, num_layers, dilation, dropout_rate, batch_norm: see above.
        activation: activation of every hidden convolution.

    Returns:
        A ``keras.Model`` mapping ``(B, S, S, channels)`` floats in [0, 1] to
        ``(B, S, S, outputs)`` probabilities (float32 even under mixed precision).

    Raises:
        ValueError: for sizes the pooling cannot divide or meaningless settings.
    """
    if num_layers < 2:
        raise ValueError(f"num_layers must be >= 2 (encoder levels incl. bottleneck), got {num_layers}")
    factor = 2 ** (num_layers - 1)
    if image_size % factor:
        raise ValueError(
            f"image_size {image_size} is not divisible by 2**(num_layers-1) = {factor}; "
            f"use a multiple of {factor} or fewer layers"
        )
    if channels < 1 or outputs < 1 or base_filters < 1:
        raise ValueError(
            f"channels, outputs and base_filters must be >= 1, "
            f"got {channels}, {outputs}, {base_filters}"
        )
    if not 0.0 <= dropout_rate * (num_layers - 1) < 1.0:
        raise ValueError(
            f"dropout_rate * (num_layers-1) must be in [0, 1), got {dropout_rate} * {num_layers - 1}"
        )

    def conv(filters: int, level: int) -> layers.Conv2D:
        return layers.Conv2D(
            filters,
            _level_kernel(base_kernels, level),
            dilation_rate=_level_dilation(dilation, level),
            activation=activation,
            kernel_initializer="he_normal",
            padding="same",
        )

    def maybe_bn(x):
        return layers.BatchNormalization()(x) if batch_norm else x

    inputs = keras.Input(shape=(image_size, image_size, channels))

    # Encoder: two convolutions per level; the pre-pool tensor is the skip connection.
    x = inputs
    skips = []
    for level in range(num_layers):
        filters = base_filters * 2**level
        x = maybe_bn(conv(filters, level)(x))
        x = layers.Dropout(dropout_rate * level)(x)
        x = maybe_bn(conv(filters, level)(x))
        if level < num_layers - 1:  # no pooling after the bottleneck
            skips.append(x)
            x = layers.MaxPooling2D((2, 2))(x)

    # Decoder: upsample, concatenate the skip of the same level, two convolutions.
    for level in range(num_layers - 2, -1, -1):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, (2, 2), strides=(2, 2), padding="same")(x)
        x = layers.concatenate([x, skips[level]])
        x = maybe_bn(conv(filters, level)(x))
        x = layers.Dropout(dropout_rate * level)(x)
        x = maybe_bn(conv(filters, level)(x))

    # Head: per-pixel probabilities, kept in float32 for mixed precision.
    head = "sigmoid" if outputs == 1 else "softmax"
    probs = layers.Conv2D(outputs, (1, 1), activation=head, dtype="float32")(x)
    return keras.Model(inputs, probs, name="slightly_flexible_unet")
