"""The model's head from the data's class count: one rule for train, evaluate and infer (no TensorFlow)."""

from __future__ import annotations

from pipeline.errors import UsageError

HEADS = ("sigmoid", "softmax")


def model_outputs(*, num_classes: int, head: str, mask_encoding: str | None = None,
                  source: str = "the masks") -> int:
    """Output channels of the model for ``num_classes`` foreground classes: 1 (sigmoid) or classes + 1 (softmax).

    ``num_classes`` and ``mask_encoding`` come from the prepared set's dataset.json, named by ``source``.
    Raises UsageError (one line) for an unknown head, a sigmoid head with several foreground classes,
    or colour (rgb_map) masks, which the model's input pipeline cannot read as class indices.
    """
    if mask_encoding == "rgb_map":
        raise UsageError(f"prepare.rgb_map: {source} says its masks are colour PNGs, but train, evaluate and "
                         "infer read class-index masks; remove prepare.rgb_map and run prepare again")
    if head not in HEADS:
        raise UsageError(f"train.head is {head!r}; expected one of {', '.join(HEADS)}")
    if num_classes < 1:
        raise UsageError(f"num_classes is {num_classes}; expected at least one foreground class")
    if head == "sigmoid":
        if num_classes != 1:
            raise UsageError(f"train.head is sigmoid (one output), but {source} holds {num_classes} foreground "
                             "classes; set train.head: softmax")
        return 1
    return num_classes + 1


def classes_of_outputs(outputs: int) -> int:
    """Foreground classes a model with ``outputs`` channels predicts (inverse of :func:`model_outputs`)."""
    return 1 if outputs <= 2 else outputs - 1


def input_channels(*, requested: int, prepared: int) -> int:
    """Model input channels: the prepared set's (dataset.json), or 3 when params ask to replicate a grey
    set as the seeds did; never fewer than the set holds, which would average a 2.5D set's slices to grey."""
    return max(int(requested), int(prepared))
