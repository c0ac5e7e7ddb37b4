"""One palette for every picture: each picture module paints with pipeline.reports.palette's colours."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from models.training import snapshot_panel
from pipeline.reports import overlay, palette, plots

ROOT = Path(__file__).resolve().parents[1]
PICTURE_MODULES = ("pipeline/reports/overlay.py", "pipeline/reports/plots.py", "models/training.py")


def test_infer_colour_masks_and_prepare_montage_tint_class_1_alike():
    mask = np.array([[0, 1]], np.uint8)
    assert overlay.colorize(mask)[0, 1].tolist() == palette.CLASS_COLOURS[1].tolist()
    tinted = plots.overlay(np.zeros((1, 2), np.uint8), mask, alpha=1.0)
    assert np.rint(tinted[0, 1] * 255).astype(int).tolist() == palette.CLASS_COLOURS[1].tolist()
    assert tinted[0, 0].tolist() == [0, 0, 0]


def test_train_snapshots_paint_masks_with_the_palette_train_hands_them():
    truth = np.array([[0, 1, 2, 3]], np.uint8)
    panel = snapshot_panel(np.zeros((1, 4, 1), np.float32), truth, truth, colours=palette.MASK_PANEL_COLOURS)
    expected = palette.MASK_PANEL_COLOURS[truth[0]].tolist()
    assert panel[0, 4:8].tolist() == expected and panel[0, 8:12].tolist() == expected
    train = (ROOT / "stages" / "train.py").read_text()
    assert "colours=MASK_PANEL_COLOURS" in train and "from pipeline.reports.palette import" in train


def test_no_picture_module_spells_a_colour_of_its_own():
    """No RGB triple or '#rrggbb' literal outside the palette (a new colour goes there)."""
    for rel in PICTURE_MODULES:
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not (node.value.startswith("#") and len(node.value) == 7), f"{rel}: colour {node.value}"
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == 3 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool)
                    for e in node.elts):
                values = [e.value for e in node.elts]
                assert not all(0 <= v <= 255 for v in values), \
                    f"{rel}:{node.lineno}: colour-like literal {values}; take it from pipeline.reports.palette"
