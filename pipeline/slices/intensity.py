"""Intensity to uint8 grey: CT windows in HU, per-volume MRI percentiles, 8-bit passthrough."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MODES: dict[str, tuple[str, ...]] = {"none": (), "window": ("center", "width"), "percentile": ("low", "high")}
_CHUNK_VOXELS = 1 << 22  # bound the float temporaries to ~16 MB whatever the volume size


def _linear_to_uint8(values: np.ndarray, *, lo: float, hi: float) -> np.ndarray:
    """Map ``lo -> 0`` and ``hi -> 255`` linearly, clip, round half up; works chunk-wise.

    Chunking keeps peak memory at the uint8 output plus a small float32 buffer, not a float copy
    of a whole 512x512x300 volume.
    """
    values = np.asarray(values)
    out = np.empty_like(values, dtype=np.uint8)  # same memory order as the input: cheap slicing later
    if hi <= lo:  # constant volume: nothing to scale
        out[...] = 0
        return out
    scale = np.float32(255.0 / (hi - lo))
    offset = np.float32(0.5 - lo * 255.0 / (hi - lo))  # +0.5 then truncation = round half up
    if values.ndim == 0 or values.size == 0:
        out[...] = np.clip(values * scale + offset, 0.0, 255.0)
        return out
    slow = int(np.argmax(np.abs(values.strides)))  # chunk along the outermost axis in memory
    src, dst = np.moveaxis(values, slow, 0), np.moveaxis(out, slow, 0)
    step = max(1, _CHUNK_VOXELS // max(1, src[0].size))
    for start in range(0, src.shape[0], step):
        chunk = src[start : start + step].astype(np.float32)
        chunk *= scale
        chunk += offset
        np.clip(chunk, 0.0, 255.0, out=chunk)
        dst[start : start + step] = chunk  # float -> uint8 truncates, i.e. floors values >= 0
    return out


def window_ct(hu: np.ndarray, *, center: float, width: float) -> np.ndarray:
    """CT window: ``center - width/2 -> 0``, ``center + width/2 -> 255``, linear in between, clipped.

    Values are rounded half up, so e.g. the centre itself maps to 128 (127.5 rounded up).
    """
    if not width > 0:
        raise ValueError(f"CT window width must be > 0, found {width}")
    return _linear_to_uint8(hu, lo=float(center) - float(width) / 2, hi=float(center) + float(width) / 2)


def percentile_range(volume: np.ndarray, *, low: float, high: float, nonzero: bool = True) -> tuple[float, float]:
    """The ``low``/``high`` percentiles of a whole volume (of its non-zero voxels when ``nonzero``).

    MRI background is exactly 0 and can fill most of a volume; taking percentiles over the
    non-zero (body) voxels keeps the scale from depending on how much air the field of view holds.
    Falls back to all voxels when none is non-zero.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, found low={low}, high={high}")
    values = np.asarray(volume)
    if nonzero:
        body = values[values != 0]
        values = body if body.size else values.reshape(-1)
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi)


def normalize_percentile(volume: np.ndarray, *, low: float, high: float, nonzero: bool = True) -> np.ndarray:
    """Clip a volume to its own ``low``/``high`` percentiles and scale to 0..255: one scale per volume.

    Every slice of a volume shares the scale, so one tissue has one grey along the whole volume.
    """
    lo, hi = percentile_range(volume, low=low, high=high, nonzero=nonzero)
    return _linear_to_uint8(volume, lo=lo, hi=hi)


def passthrough_8bit(image: np.ndarray) -> np.ndarray:
    """Already-8-bit grey (0..255, possibly stored as float): round to uint8, refuse anything else."""
    if image.dtype == np.uint8:
        return image
    if image.size:
        vmin, vmax = float(np.min(image)), float(np.max(image))
        if vmin < 0 or vmax > 255 or not np.isfinite(vmin + vmax):
            raise ValueError(
                f"intensity mode 'none' expects 8-bit grey values 0..255, found {vmin:g}..{vmax:g}; "
                "use mode 'window' (CT) or 'percentile' (MRI)"
            )
    return _linear_to_uint8(image, lo=0.0, hi=255.0)


def check_spec(spec: Mapping[str, Any]) -> None:
    """Raise ValueError naming the problem when an intensity spec is unusable."""
    mode = spec.get("mode")
    if mode not in MODES:
        raise ValueError(f"intensity mode must be one of {', '.join(MODES)}, found {mode!r}")
    missing = [k for k in MODES[mode] if k not in spec]
    if missing:
        raise ValueError(f"intensity mode {mode!r} needs {', '.join(MODES[mode])}; missing {', '.join(missing)}")


def to_uint8(image: np.ndarray, *, spec: Mapping[str, Any]) -> np.ndarray:
    """Apply the intensity ``spec`` (``{"mode": "none"|"window"|"percentile", ...}``) to a whole image/volume.

    ``window`` needs ``center`` and ``width`` (HU); ``percentile`` needs ``low`` and ``high``
    (optional ``nonzero``, default true); ``none`` passes 8-bit grey through.
    """
    check_spec(spec)
    mode = spec["mode"]
    if mode == "window":
        return window_ct(image, center=float(spec["center"]), width=float(spec["width"]))
    if mode == "percentile":
        return normalize_percentile(
            image, low=float(spec["low"]), high=float(spec["high"]), nonzero=bool(spec.get("nonzero", True))
        )
    return passthrough_8bit(image)
