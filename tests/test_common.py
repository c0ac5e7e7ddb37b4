"""stages.common: the params checks every stage shares."""

from __future__ import annotations

import pytest

from stages.common import check_classes


@pytest.mark.parametrize("foreground, outputs", [(1, 1), (1, 2), (2, 3), (4, 5)])
def test_model_outputs_that_fit_the_masks(foreground, outputs):
    check_classes("x", {"prepare": {"num_classes": foreground}, "train": {"num_classes": outputs}}, "train")


@pytest.mark.parametrize("foreground, outputs, need", [(1, 3, "1 or 2"), (2, 2, "3"), (3, 5, "4")])
def test_model_outputs_that_do_not_fit_are_one_line_errors(foreground, outputs, need):
    params = {"prepare": {"num_classes": foreground}, "train": {"num_classes": outputs}}
    with pytest.raises(SystemExit, match=rf"^train@x: datasets\.x\.train\.num_classes is {outputs}, .* need {need} "):
        check_classes("x", params, "train")


def test_rgb_map_masks_are_refused_where_class_indices_are_read():
    params = {"prepare": {"num_classes": 2, "rgb_map": {0: [0, 0, 0], 1: [255, 0, 0], 2: [0, 255, 0]}},
              "train": {"num_classes": 3}}
    with pytest.raises(SystemExit, match=r"^evaluate@x: datasets\.x\.prepare\.rgb_map is set.*remove rgb_map"):
        check_classes("x", params, "evaluate")


def test_default_is_one_foreground_class():
    check_classes("x", {"train": {"num_classes": 1}}, "infer")
    with pytest.raises(SystemExit):
        check_classes("x", {"train": {"num_classes": 3}}, "infer")
