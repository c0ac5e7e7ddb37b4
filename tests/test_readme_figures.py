"""scripts.readme_figures: the README's metrics table reads each figure from the file that holds it."""

from __future__ import annotations

import json

from scripts.readme_figures import KEYS, metrics_table


def test_metrics_table_takes_the_headline_from_eval_json_and_the_rest_from_details(tmp_path):
    """eval.json holds only dice_volume and hd95 (the `dvc exp show` columns); the MSD, the 2D Dice,
    the seeds' metric and the counts of the same row come from details.json."""
    for i, key in enumerate(KEYS):
        unit = "mm" if key == "lasc" else "px"
        folder = tmp_path / "metrics" / key
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(json.dumps({"dice_volume": 0.9 + i / 100, f"hd95_{unit}": 4.0}))
        (folder / "details.json").write_text(json.dumps({
            "headline": "dice_volume", "distance_unit": unit, f"msd_{unit}": 1.25, "dice_image": 0.5,
            "dice_seeds_style": 0.7, "dice_seeds_style_bg": 0.99, "n_images": 10 + i, "n_subjects": 2}))
    rows = metrics_table(tmp_path).splitlines()[2:]
    assert len(rows) == len(KEYS)
    assert rows[0] == ("| faz | 2 (10) | 0.900 | 4.0 px | 1.2 px | 0.500 | dice_coef 0.700 "
                       "| dice_coef 0.9058 |")
    assert rows[-1].startswith("| lasc | 2 (14) | 0.940 | 4.0 mm | 1.2 mm | 0.500 | dice_coef_multiclass 0.990 |")
