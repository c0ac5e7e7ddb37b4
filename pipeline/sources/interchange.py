"""What the generic ``msd`` and ``nnunet`` readers share: their options, the dataset's own json,
channel selection, label mapping and modality. A dataset in either layout is a params block, no code."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DatasetError, UsageError
from pipeline.formats.nifti import MAX_VOLUME_BYTES, check_same_grid, load_label_volume, load_volume
from pipeline.sources.subject import Subject
from pipeline.workers import concurrently

PNG_CHANNELS = (1, 3)  # a PNG holds grey or colour: one channel, or three stacked as R, G, B


@dataclass(frozen=True)
class Options:
    """Reader options of ``prepare.reader`` for MSD and nnU-Net v2 datasets.

    ``channels``: image channels to use, one (grey) or three (stacked as R, G, B), by index as the
    dataset.json numbers them. ``labels``: source label value -> class written to the masks
    (``{1: 1, 2: 1, 3: 2}``; map to 0 to drop a label); None keeps the labels as they are. Any label
    value found that the mapping (or the dataset.json) does not list stops the subject.
    ``modality``: ``CT`` or ``MR`` to override what the dataset.json says.
    """

    channels: tuple[int, ...] = (0,)
    labels: Mapping[int, int] | None = None
    modality: str | None = None
    grid_tolerance: float = 0.01
    max_volume_bytes: int = MAX_VOLUME_BYTES  # refuse a volume larger than this in memory (float32), from its header


def parse_options(**options: object) -> Options:
    """Options from a params dict, with one-line UsageErrors for values that cannot work."""
    unknown = sorted(set(options) - {"channels", "labels", "modality", "grid_tolerance", "max_volume_bytes"})
    if unknown:
        raise UsageError(f"prepare.reader: unknown option(s) {', '.join(unknown)}; "
                         "expected channels, labels, modality, grid_tolerance, max_volume_bytes")
    raw_channels = options.get("channels", (0,))
    channels = (raw_channels,) if isinstance(raw_channels, int) else tuple(raw_channels)  # type: ignore[arg-type]
    if len(channels) not in PNG_CHANNELS or not all(isinstance(c, int) and c >= 0 for c in channels):
        raise UsageError(f"prepare.reader.channels: {list(channels)}; expected one channel index (grey) or "
                         "three (stacked as R, G, B), e.g. [0] or [0, 1, 2]")
    labels = options.get("labels")
    if labels is not None:
        try:
            labels = {int(k): int(v) for k, v in dict(labels).items()}  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise UsageError(f"prepare.reader.labels: {labels!r}; expected source label -> class, "
                             "e.g. {1: 1, 2: 1, 3: 2}") from None
        if not all(0 <= v <= 255 and 0 <= k <= 255 for k, v in labels.items()):
            raise UsageError(f"prepare.reader.labels: {labels}; labels and classes must be within 0..255")
    modality = options.get("modality")
    if modality is not None and str(modality).upper() not in ("CT", "MR"):
        raise UsageError(f"prepare.reader.modality: {modality!r}; expected CT or MR (or leave it out)")
    return Options(channels, labels, None if modality is None else str(modality).upper(),
                   float(options.get("grid_tolerance", 0.01)),  # type: ignore[arg-type]
                   int(options.get("max_volume_bytes", MAX_VOLUME_BYTES)))  # type: ignore[call-overload]


def read_json(path: Path, *, layout: str) -> dict:
    """The dataset's own json as a dict, or a DatasetError naming the layout expected."""
    try:
        meta = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DatasetError(path, f"file not found: expected the {layout} dataset.json here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(path, f"not a readable dataset.json ({exc}); expected the {layout} JSON") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, f"expected a JSON object (the {layout} dataset.json), found {type(meta).__name__}")
    return meta


def check_channels(path: Path, names: Mapping[str, str], channels: Sequence[int]) -> None:
    """Every selected channel must be one the dataset.json names."""
    missing = [c for c in channels if str(c) not in names]
    if missing:
        listed = ", ".join(f"{k}={v}" for k, v in names.items()) or "none"
        raise DatasetError(path, f"channel(s) {missing} not in the dataset's channels ({listed}); "
                                 "fix prepare.reader.channels")


def modality_of(names: Mapping[str, str], channels: Sequence[int], override: str | None) -> str:
    """``CT`` when the first selected channel is named CT (nnU-Net's cue for HU handling), else ``MR``."""
    if override:
        return override
    return "CT" if str(names.get(str(channels[0]), "")).strip().upper() == "CT" else "MR"


def label_table(found: Sequence[int], mapping: Mapping[int, int] | None) -> tuple[list[int], np.ndarray]:
    """(label values a mask may hold, a 256-entry lookup table to classes) from the json's labels and params."""
    if mapping is None:
        mapping = {v: v for v in found}
    lut = np.zeros(256, dtype=np.uint8)
    for source, target in mapping.items():
        lut[source] = target
    return sorted({0, *mapping}), lut


def count_classes(mapping: Mapping[int, int] | None, found: Sequence[int]) -> int:
    """Foreground classes the masks will hold (prepare.num_classes)."""
    return max((mapping or {v: v for v in found}).values(), default=0)


def load_case(subject_id: str, images: Sequence[tuple[Path, int | None]], label: Path, *, allowed: Sequence[int],
              lut: np.ndarray, modality: str, tol: float, max_bytes: int = MAX_VOLUME_BYTES) -> Subject:
    """One case: the selected channel volumes (stacked last when three), the label mapped to classes."""
    *volumes, mask = concurrently(  # on the threads the stage lends, if any
        *[lambda path=path, channel=channel: load_volume(path, channel=channel, max_bytes=max_bytes)
          for path, channel in images],
        lambda: load_label_volume(label, allowed_labels=allowed, max_bytes=max_bytes))
    for (path, _), volume in zip(images, volumes):
        check_same_grid(path, volume.affine, volume.array.shape, label, mask.affine, mask.array.shape, tol=tol)
    first = volumes[0]
    image = first.array if len(volumes) == 1 else np.stack([v.array for v in volumes], axis=-1)
    sources = tuple(dict.fromkeys(str(p) for p, _ in images)) + (str(label),)
    return Subject(
        subject_id=subject_id, image=image, mask=lut[mask.array], spacing=first.spacing, sources=sources,
        modality=modality, layout="volume", affine=first.affine, orientation=first.orientation,  # type: ignore[arg-type]
        meta={"mask_orientation": mask.orientation},
    )
