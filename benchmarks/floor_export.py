"""The naive exporter prepare is measured against, as a whole command: nibabel load, one window, cv2 PNGs.

It reads an MSD-style ``dataset.json`` (image/label pairs), windows each CT volume (center 40,
width 400), and writes every image and mask slice with ``cv2.imwrite``: no reorientation, no checks,
no split, no manifest. Run: ``python -m benchmarks.floor_export RAW OUT``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np


def main(argv: list[str] | None = None) -> None:
    raw, out = (Path(a) for a in (argv or sys.argv[1:]))
    out.mkdir(parents=True, exist_ok=True)
    for pair in json.loads((raw / "dataset.json").read_text())["training"]:
        hu = np.asanyarray(nib.load(raw / pair["image"]).dataobj)
        mask = np.asanyarray(nib.load(raw / pair["label"]).dataobj)
        grey = np.clip((hu.astype(np.float32) + 160.0) * (255.0 / 400.0) + 0.5, 0, 255).astype(np.uint8)
        stem = Path(pair["image"]).name.split(".")[0]
        for k in range(grey.shape[2]):
            cv2.imwrite(str(out / f"{stem}_{k:04d}_image.png"), grey[:, :, k])
            cv2.imwrite(str(out / f"{stem}_{k:04d}_mask.png"), mask[:, :, k] * np.uint8(255))


if __name__ == "__main__":
    main()
