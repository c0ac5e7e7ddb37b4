"""A sixth and seventh dataset as params blocks only: an nnU-Net v2 raw folder and an MSD 4D task through
the whole `dvc repro` (synth does nothing, prepare reads the real folder, augment, train, evaluate, infer)."""

from __future__ import annotations

import json

import cv2
import pytest
import yaml

from tests.conftest import dvc, edit_params
from tests.interchange_data import write_msd, write_nnunet


@pytest.mark.slow
def test_dvc_repro_of_params_only_nnunet_and_msd_blocks(dvc_repo):
    write_nnunet(dvc_repo / "byod" / "Dataset001_Toy", cases=6, channels=2)
    write_msd(dvc_repo / "byod" / "Task01_BrainTumour", cases=6)

    def blocks(params):
        tiny = {"epochs": 1, "input_size": 32, "batch_size": 4, "snapshot_images": 1, "base_filters": 4,
                "num_layers": 3}
        params["defaults"]["augment"]["transforms"] = [{"name": "HorizontalFlip", "p": 0.5}]
        params["datasets"] = {
            "toy": {"raw": "byod/Dataset001_Toy", "reader": "nnunet", "synth": {},
                    "prepare": {"reader": {"channels": [1], "labels": {1: 1, 2: 1}}, "intensity": {"mode": "auto"}},
                    "augment": {}, "train": tiny, "evaluate": {"overlays": 1}},
            "brats": {"raw": "byod/Task01_BrainTumour", "reader": "msd", "synth": {},
                      "prepare": {"reader": {"channels": [0, 1, 3], "labels": {1: 1, 2: 1}},
                                  "intensity": {"mode": "auto"}, "channels": 3},
                      "augment": {}, "train": {**tiny, "channels": 3}, "evaluate": {"overlays": 1}},
        }
        params["image_size"] = 32

    edit_params(dvc_repo, blocks)
    dvc(dvc_repo, "repro")
    for key, channels in (("toy", 1), ("brats", 3)):
        assert (dvc_repo / "data" / "synthetic" / key / "NO_STAND_IN.txt").is_file()
        info = json.loads((dvc_repo / "data" / "prepared" / key / "dataset.json").read_text())
        assert info["channels"] == channels and info["num_classes"] == 1
        image = next((dvc_repo / "data" / "prepared" / key / "train" / "images").iterdir())
        assert cv2.imread(str(image), cv2.IMREAD_UNCHANGED).ndim == (2 if channels == 1 else 3)
        assert (dvc_repo / "artifacts" / key / "model.keras").is_file()
        assert "dice_volume" in json.loads((dvc_repo / "metrics" / key / "eval.json").read_text())
        assert (dvc_repo / "reports" / key / "prepare" / "card.png").is_file()
    assert (dvc_repo / "reports" / "plots_template.html").is_file()
    status = dvc(dvc_repo, "status")
    assert "changed" not in status.stdout, status.stdout
