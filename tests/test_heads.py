"""pipeline.learning.heads: one rule from the data's foreground classes and train.head to model outputs."""

from __future__ import annotations

import pytest

from pipeline.errors import UsageError
from pipeline.learning.heads import classes_of_outputs, model_outputs


@pytest.mark.parametrize("num_classes, head, outputs", [(1, "sigmoid", 1), (1, "softmax", 2), (2, "softmax", 3),
                                                         (4, "softmax", 5)])
def test_outputs_follow_the_head_and_the_classes(num_classes, head, outputs):
    assert model_outputs(num_classes=num_classes, head=head) == outputs
    assert classes_of_outputs(outputs) == num_classes


def test_sigmoid_with_several_classes_is_one_usage_line_naming_the_set_and_the_fix():
    with pytest.raises(UsageError, match=r"^train\.head is sigmoid .*set/dataset\.json holds 3 foreground classes; "
                                         r"set train\.head: softmax$"):
        model_outputs(num_classes=3, head="sigmoid", source="set/dataset.json")


def test_unknown_head_and_no_class_are_usage_errors():
    with pytest.raises(UsageError, match="train.head is 'tanh'; expected one of sigmoid, softmax"):
        model_outputs(num_classes=1, head="tanh")
    with pytest.raises(UsageError, match="at least one foreground class"):
        model_outputs(num_classes=0, head="softmax")


def test_colour_masks_are_refused_where_class_indices_are_read():
    assert model_outputs(num_classes=2, head="softmax", mask_encoding="class_index") == 3
    with pytest.raises(UsageError, match=r"^prepare\.rgb_map: s/dataset\.json says its masks are colour PNGs.*"
                                         r"remove prepare\.rgb_map"):
        model_outputs(num_classes=2, head="softmax", mask_encoding="rgb_map", source="s/dataset.json")
