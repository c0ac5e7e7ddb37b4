"""What every stage shares: the params of one dataset and the common CLI flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.dataset.prepared import DatasetInfo
from pipeline.errors import UsageError
from pipeline.learning.heads import model_outputs

PARAMS_FILE = Path("params.yaml")
GLOBAL_KEYS = ("seed", "image_size", "n_jobs")


def dataset_params(dataset: str, params_file: Path = PARAMS_FILE) -> dict[str, Any]:
    """The ``datasets.<dataset>`` block of params.yaml, with the shared top-level keys added."""
    if not Path(params_file).is_file():
        raise SystemExit(f"{params_file}: not found; run from the repository root or pass --params")
    with open(params_file) as f:
        params = yaml.safe_load(f) or {}
    datasets = params.get("datasets", {})
    if dataset not in datasets:
        raise SystemExit(
            f"{params_file}: no block datasets.{dataset}; known datasets: {', '.join(datasets)}"
        )
    block = dict(datasets[dataset])
    for key in GLOBAL_KEYS:
        if key in params:
            block.setdefault(key, params[key])
    return block


def resolve_jobs(n_jobs: int | None) -> int:
    """0 or None means all cores this process may use."""
    if not n_jobs:
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, int(n_jobs))


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", required=True, help="dataset key, e.g. lasc")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file")
    return parser


def model_outputs_for(dataset: str, params: dict[str, Any], info: DatasetInfo, *, where: Path) -> int:
    """The model's outputs for this dataset's ``train.head`` and the classes the set at ``where`` holds.

    ``num_classes`` comes from the set's dataset.json (prepare wrote it), never from params; a head
    that does not fit it, or colour (rgb_map) masks where class indices are read, is one UsageError.
    """
    key = f"datasets.{dataset}"
    if info.mask_encoding == "rgb_map":
        raise UsageError(f"{key}.prepare.rgb_map: {where}/dataset.json says its masks are colour PNGs, but "
                         "train, evaluate and infer read class-index masks; remove rgb_map and run prepare again")
    try:
        return model_outputs(num_classes=info.num_classes, head=params.get("train", {}).get("head", "sigmoid"),
                             source=f"{where}/dataset.json")
    except UsageError as err:
        raise UsageError(f"{key}.{err}") from None
