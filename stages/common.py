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
