"""What every stage shares: the params of one dataset and the common CLI flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

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


def check_classes(dataset: str, params: dict[str, Any], stage: str) -> None:
    """Exit with one line unless the model's outputs fit the masks prepare writes.

    ``prepare.num_classes`` counts foreground classes in the masks (default 1);
    ``train.num_classes`` counts model outputs: 1 (sigmoid) or 2 (binary as two softmax classes)
    for one foreground class, foreground classes + 1 otherwise. Masks written with an ``rgb_map``
    are for viewers and the seeds' tools; training, evaluation and inference read class indices.
    """
    prepare, outputs = params.get("prepare", {}), int(params["train"]["num_classes"])
    where = f"{stage}@{dataset}: datasets.{dataset}"
    if prepare.get("rgb_map"):
        raise SystemExit(f"{where}.prepare.rgb_map is set: masks are colour PNGs, but {stage} reads class-index "
                         "masks; remove rgb_map (prepare then writes class indices) and run prepare again")
    foreground = int(prepare.get("num_classes", 1))
    allowed = (1, 2) if foreground == 1 else (foreground + 1,)
    if outputs not in allowed:
        raise SystemExit(f"{where}.train.num_classes is {outputs}, but prepare.num_classes={foreground} foreground "
                         f"class(es) need {' or '.join(map(str, allowed))} model outputs (background included)")
