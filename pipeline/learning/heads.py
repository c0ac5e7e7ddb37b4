"""The model's head from the data's class count: one rule for train, evaluate and infer (no TensorFlow)."""

from __future__ import annotations

from pipeline.errors import UsageError

HEADS = ("sigmoid", "softmax")


def model_outputs(*, num_classes: int, head: str, source: str = "the masks") -> int:
    """Output channels of the model for ``num_classes`` foreground classes: 1 (sigmoid) or classes + 1 (softmax).

    Raises UsageError for an unknown head, or a sigmoid head with several foreground classes
    (``source`` names where the class count came from).
    """
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
