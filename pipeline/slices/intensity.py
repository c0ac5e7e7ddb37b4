"""Intensity to uint8 grey: CT windows in HU, per-volume MRI percentiles, 8-bit passthrough."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from pipeline.slices.slicing import forward
from pipeline.workers import thread_map, threads_lent

MODES: dict[str, tuple[str, ...]] = {"none": (), "window": ("center", "width"), "percentile": ("low", "high")}
# ``intensity: {mode: auto}``: the spec a modality gets when the dataset does not say (CT: a soft-tissue
# window in HU; MR and anything else: robust percentiles, as nnU-Net normalises non-CT channels).
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "CT": {"mode": "window", "center": 40, "width": 400},
    "MR": {"mode": "percentile", "low": 0.5, "high": 99.5},
}
_CHUNK_VOXELS = 1 << 22  # bound the float temporaries to ~16 MB whatever the volume size


def _slabs(values: np.ndarray, voxels: int = _CHUNK_VOXELS) -> tuple[int, int]:
    """(axis, step): chunk ``values`` along its outermost axis in memory, about ``voxels`` per chunk."""
    slow = int(np.argmax(np.abs(values.strides)))
    return slow, max(1, voxels // max(1, values.size // max(1, values.shape[slow])))


def _linear_to_uint8(values: np.ndarray, *, lo: float, hi: float) -> np.ndarray:
    """Map ``lo -> 0`` and ``hi -> 255`` linearly, clip, round half up; works chunk-wise.

    Chunking keeps peak memory at the uint8 output plus a small float32 buffer, not a float copy
    of a whole 512x512x300 volume.
    """
    flips = tuple(slice(None, None, -1 if step < 0 else 1) for step in np.asarray(values).strides)
    values = np.asarray(values)[flips]  # read forwards; the result is flipped back (a view) at the end
    out = np.empty_like(values, dtype=np.uint8)  # same memory order as the input: cheap slicing later
    if hi <= lo:  # constant volume: nothing to scale
        out[...] = 0
        return out[flips]
    scale = np.float32(255.0 / (hi - lo))
    offset = np.float32(0.5 - lo * 255.0 / (hi - lo))  # +0.5 then truncation = round half up
    if values.ndim == 0 or values.size == 0:
        out[...] = np.clip(values * scale + offset, 0.0, 255.0)
        return out[flips]
    slow, step = _slabs(values, _CHUNK_VOXELS)
    src, dst = np.moveaxis(values, slow, 0), np.moveaxis(out, slow, 0)

    def scale_slab(start: int) -> None:  # each slab its own output: any thread, any order, same bytes
        chunk = src[start : start + step].astype(np.float32)
        chunk *= scale
        chunk += offset
        np.clip(chunk, 0.0, 255.0, out=chunk)
        dst[start : start + step] = chunk  # float -> uint8 truncates, i.e. floors values >= 0

    thread_map(scale_slab, range(0, src.shape[0], step))
    return out[flips]


def window_ct(hu: np.ndarray, *, center: float, width: float) -> np.ndarray:
    """CT window: ``center - width/2 -> 0``, ``center + width/2 -> 255``, linear in between, clipped.

    Values are rounded half up, so e.g. the centre itself maps to 128 (127.5 rounded up).
    """
    if not width > 0:
        raise ValueError(f"CT window width must be > 0, found {width}")
    return _linear_to_uint8(hu, lo=float(center) - float(width) / 2, hi=float(center) + float(width) / 2)


_HIST_CHUNK = 1 << 18  # < 2**24: exact float32 counts in cv2.calcHist
_HIST_RUN = 1 << 20  # contiguous small integers: voxels per calcHist call (< 2**24, a few MB)
_MAX_BINS = 1 << 20  # integer volumes spanning more values than this take np.percentile's partition


def _small_integer_counts(flat: np.ndarray, low: int, span: int) -> np.ndarray:
    """Counts of ``low .. low + span - 1`` in a flat run of <= 16-bit integers, by OpenCV's histogram
    on the values' unsigned view minus ``low`` (modular arithmetic, exact: every value lies in the span).
    Split into one part per lent thread; integer sums, so the counts do not depend on the split."""
    unsigned = flat.view(np.uint8 if flat.dtype.itemsize == 1 else np.uint16)
    offset = unsigned.dtype.type(low % (1 << (8 * unsigned.dtype.itemsize)))

    def count(bounds: tuple[int, int]) -> np.ndarray:
        counts = np.zeros(span, np.int64)
        for start in range(bounds[0], bounds[1], _HIST_RUN):
            part = np.subtract(unsigned[start : min(start + _HIST_RUN, bounds[1])], offset, dtype=unsigned.dtype)
            counts += cv2.calcHist([part.reshape(-1, 1)], [0], None, [span], [0, span]).ravel().astype(np.int64)
        return counts

    parts = threads_lent()
    return np.sum(thread_map(count, [(flat.size * i // parts, flat.size * (i + 1) // parts) for i in range(parts)]),
                  axis=0)


def _integer_histogram(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(lowest value, count per value from it) when every voxel is a whole number within a span of
    ``_MAX_BINS`` values (integer volumes, and float volumes read from integer files), else None.

    One pass in slabs; a float volume leaves at its first slab holding a fraction, NaN or Inf.
    """
    if values.size == 0 or values.ndim == 0 or values.dtype.kind not in "uif":
        return None
    values = forward(values)
    vmin, vmax = values.min(), values.max()
    if not (np.isfinite(vmin) and np.isfinite(vmax)) or float(vmax) - float(vmin) >= _MAX_BINS:
        return None
    if not -(2**31) <= float(vmin) <= float(vmax) < 2**31:  # int32 chunks below
        return None
    low = int(np.floor(vmin))
    span = int(vmax) - low + 1
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 2 and (values.flags.c_contiguous or
                                                                      values.flags.f_contiguous):
        return low, _small_integer_counts(values.reshape(-1, order="A"), low, span)  # memory order: no copy
    counts = np.zeros(span, np.int64)
    slow, step = _slabs(values, _HIST_CHUNK)  # small chunks: the int32 copies stay in cache
    src = np.moveaxis(values, slow, 0)
    for start in range(0, src.shape[0], step):
        chunk = src[start : start + step]
        whole = chunk.astype(np.int32)  # exact: the span check bounds every value
        if chunk.dtype.kind == "f" and not np.array_equal(whole, chunk):
            return None
        whole -= low
        if span <= 1 << 16:  # OpenCV's 16-bit histogram: ~2x np.bincount; float32 counts, exact below 2**24
            flat = whole.astype(np.uint16).reshape(-1, 1)
            counts += cv2.calcHist([flat], [0], None, [span], [0, span]).ravel().astype(np.int64)
        else:
            counts += np.bincount(whole.reshape(-1), minlength=span)
    return low, counts


def _lerp_like_numpy(
    sorted_at: Callable[[np.ndarray], np.ndarray], n: int, q: np.ndarray, dtype: np.dtype
) -> list[float]:
    """``np.percentile(..., method="linear")`` from the order statistics it would pick, with numpy's
    own arithmetic (virtual index ``(n - 1) * q``, ``_lerp``), so the result is bit for bit the same."""
    virtual = (n - 1) * q
    below = np.floor(virtual)
    top = virtual >= n - 1
    prev_idx = np.where(top, n - 1, below).astype(np.intp)
    next_idx = np.where(top, n - 1, below + 1).astype(np.intp)
    gamma = np.where(top, virtual + 1, virtual - below)  # numpy's gamma at the top edge (prev = -1)
    a, b = sorted_at(prev_idx).astype(dtype), sorted_at(next_idx).astype(dtype)
    diff = b - a
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe")
    return [float(v) for v in result]


def sorted_percentiles(values: np.ndarray, percents: Sequence[float]) -> list[float]:
    """``np.percentile(values, percents)`` bit for bit, by a sort and numpy's own interpolation: without
    np.percentile's ``np.unique`` call, which imports ``numpy.ma`` (~15 ms) in every fresh process."""
    ordered = np.sort(np.asarray(values).reshape(-1))
    if not ordered.size:
        raise ValueError("percentiles of an empty array")
    return _lerp_like_numpy(lambda index: ordered[index], ordered.size, np.true_divide(percents, 100), ordered.dtype)


def percentile_range(volume: np.ndarray, *, low: float, high: float, nonzero: bool = True,
                     dtype: np.dtype | type | None = None) -> tuple[float, float]:
    """The ``low``/``high`` percentiles of a whole volume (of its non-zero voxels when ``nonzero``).

    MRI background is exactly 0 and can fill most of a volume; taking percentiles over the
    non-zero (body) voxels keeps the scale from depending on how much air the field of view holds.
    Falls back to all voxels when none is non-zero. Whole-number volumes (any CT or MRI read from
    an integer file) take one histogram pass instead of a copy and a partition (~5x faster), with
    numpy's interpolation, so the values are exactly ``np.percentile``'s (of the volume as ``dtype``
    when given: the intensity rule interpolates in float32 whatever type a reader keeps).
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, found low={low}, high={high}")
    values = np.asarray(volume)
    hist = _integer_histogram(values)
    if hist is not None:
        start, counts = hist
        if nonzero and start <= 0 < start + counts.size and counts.sum() > counts[-start]:
            counts[-start] = 0
        cumulative = np.cumsum(counts)

        def sorted_at(index: np.ndarray) -> np.ndarray:
            return start + np.searchsorted(cumulative, index, side="right")

        lo, hi = _lerp_like_numpy(sorted_at, int(cumulative[-1]), np.true_divide([low, high], 100),
                                  np.dtype(dtype or values.dtype))
        return lo, hi
    if nonzero:
        body = values[values != 0]
        values = body if body.size else values.reshape(-1)
    lo, hi = np.percentile(values if dtype is None else values.astype(dtype, copy=False), [low, high])
    return float(lo), float(hi)


def normalize_percentile(volume: np.ndarray, *, low: float, high: float, nonzero: bool = True) -> np.ndarray:
    """Clip a volume to its own ``low``/``high`` percentiles and scale to 0..255: one scale per volume.

    Every slice of a volume shares the scale, so one tissue has one grey along the whole volume.
    """
    lo, hi = percentile_range(volume, low=low, high=high, nonzero=nonzero, dtype=np.float32)
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


def resolve_spec(spec: Mapping[str, Any] | None, *, modality: str | None) -> dict[str, Any]:
    """The spec to apply: ``spec`` as given, or for a missing spec or ``mode: auto`` the modality's default."""
    if spec and spec.get("mode") != "auto":
        return dict(spec)
    if modality is None:
        if spec:
            raise ValueError("intensity mode 'auto' needs a reader that knows the modality (msd, nnunet); "
                             "set mode none, window or percentile")
        return {"mode": "none"}
    return dict(MODALITY_DEFAULTS.get(modality, MODALITY_DEFAULTS["MR"]))
