"""Mask-safe, per-sample seeded augmentation pipelines built from plain data with albumentations."""

from __future__ import annotations

import csv
import difflib
import hashlib
import inspect
import json
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import DualTransform, ImageOnlyTransform
from tqdm import tqdm

from pipeline.dataset.prepared import list_pairs, read_info, subjects_by_stem
from pipeline.errors import DatasetError
from pipeline.slices.png import encode_png, read_png
from pipeline.workers import ordered_results

__all__ = [
    "applied_to_json",
    "augment_pair",
    "allowed_mask_values",
    "augment_set",
    "build_pipeline",
    "check_mask_values",
    "is_image_only",
    "sample_seed",
    "spec_problems",
    "transform_names",
]

NEAREST = cv2.INTER_NEAREST
_BIG_ARRAY = 16  # arrays with more elements than this are summarised in the applied params


@cache
def _transform_classes() -> dict[str, type]:
    """Every concrete albumentations transform that reads an image (and maybe a mask), by name."""
    classes = {}
    for name in dir(A):
        obj = getattr(A, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, (DualTransform, ImageOnlyTransform))
            and obj not in (DualTransform, ImageOnlyTransform)
            and not inspect.isabstract(obj)
        ):
            classes[name] = obj
    return classes


def transform_names() -> list[str]:
    """Names a transform spec may use."""
    return sorted(_transform_classes())


def is_image_only(name: str) -> bool:
    """True for pixel-level transforms that albumentations never applies to masks."""
    return issubclass(_transform_classes()[name], ImageOnlyTransform)


def _init_args(cls: type) -> list[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            params = inspect.signature(klass.__dict__["__init__"]).parameters.values()
            names.update(
                p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            )
    return sorted(names - {"self", "strict", "always_apply"})


def _nearest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else ""


def _check_spec(index: int, spec: object) -> list[str]:
    """Every problem of one spec, as messages (empty when it is usable)."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        return [f"transforms[{index}]: expected a mapping with a 'name' key, found {spec!r}"]
    name = spec["name"]
    where = f"transforms[{index}] {name}"
    classes = _transform_classes()
    if name not in classes:
        hint = _nearest(str(name), list(classes)) or "see albumentations' list of transforms"
        return [f"{where}: unknown transform; {hint}"]
    valid = _init_args(classes[name])
    problems = []
    for arg in spec:
        if arg != "name" and arg not in valid:
            hint = _nearest(str(arg), valid)
            problems.append(
                f"{where}: unknown argument {arg!r}; {hint + ' ' if hint else ''}"
                f"valid arguments: {', '.join(valid)}"
            )
    if spec.get("mask_interpolation", NEAREST) != NEAREST:
        problems.append(
            f"{where}: mask_interpolation={spec['mask_interpolation']} would invent label values; "
            f"masks only move with nearest neighbour (0, cv2.INTER_NEAREST): remove the argument"
        )
    if spec.get("fill_mask", 0) not in (0, None):
        problems.append(
            f"{where}: fill_mask={spec['fill_mask']!r} would paint a label into masks; "
            "use 0 (background) or remove the argument"
        )
    return problems


def _leaves_uint8(index: int, spec: Mapping[str, Any]) -> str | None:
    """Why the transform would take an 8-bit image out of uint8 0..255, or None.

    The transform is built with ``p=1`` and run once on a small grey ramp (an RGB one where grey is
    not accepted): a float result (``Normalize``, ``ToFloat``...) would be written as black or
    clipped PNGs, silently. A transform that fails on the probe is left to the real run.
    """
    cls = _transform_classes()[spec["name"]]
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "p")}
    ramp = (np.indices((32, 32)).sum(axis=0) * 4).astype(np.uint8)
    for probe in (ramp, np.dstack([ramp] * 3)):
        try:
            out = np.asarray(cls(**kwargs, p=1.0)(image=probe, mask=np.zeros(ramp.shape, np.uint8))["image"])
        except Exception:  # noqa: BLE001  (grey refused, or needs other targets: try RGB, else let it be)
            continue
        if out.dtype == np.uint8:
            return None
        return (f"transforms[{index}] {spec['name']}: turns the 8-bit image into {out.dtype} "
                f"(values {float(out.min()):.3g}..{float(out.max()):.3g}); augmented images are written as 8-bit "
                "PNG 0..255, so this would write black or clipped images: remove it (training scales the "
                "images itself)")
    return None


def spec_problems(specs: object) -> list[str]:
    """Every problem of a list of transform specs, one message each (empty when usable).

    The params schema reports these before any stage starts; :func:`build_pipeline` raises them.
    """
    if not isinstance(specs, Sequence) or isinstance(specs, (str, bytes)):
        return [f"expected a list of transform specs, found {specs!r}"]
    problems = [msg for i, spec in enumerate(specs) for msg in _check_spec(i, spec)]
    if problems:
        return problems
    for index, spec in enumerate(specs):
        try:
            _transform_classes()[spec["name"]](**{k: v for k, v in spec.items() if k != "name"})
        except (ValueError, TypeError) as err:  # albumentations checks its arguments with pydantic
            lines = [re.sub(r"\s*\[type=.*", "", line.strip()) for line in str(err).splitlines()
                     if line.strip() and "errors.pydantic.dev" not in line and "validation error" not in line]
            problems.append(f"transforms[{index}] {spec['name']}: {': '.join(lines)}")
    if problems:
        return problems
    return [msg for index, spec in enumerate(specs) if (msg := _leaves_uint8(index, spec))]


def build_pipeline(
    specs: Sequence[Mapping[str, Any]], *, source: str = "augment.transforms"
) -> A.Compose:
    """An ``A.Compose`` from specs like ``{name: Rotate, p: 0.5, limit: [-10, 10]}``, in order.

    Every spec is checked before any is built, and all problems are reported at once: unknown names
    and arguments come with the nearest valid ones. Spatial transforms get nearest-neighbour mask
    interpolation. Seed the result per sample with :func:`augment_pair`, never globally.

    Raises:
        DatasetError: naming ``source``, the position and transform of each bad spec.
    """
    if not isinstance(specs, Sequence) or isinstance(specs, (str, bytes)):
        raise DatasetError(source, f"expected a list of transform specs, found {specs!r}")
    problems = [msg for i, spec in enumerate(specs) for msg in _check_spec(i, spec)]
    if problems:
        raise DatasetError(source, "bad transform spec:\n  " + "\n  ".join(problems))
    transforms = []
    for index, spec in enumerate(specs):
        cls = _transform_classes()[spec["name"]]
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        if "mask_interpolation" in _init_args(cls):
            kwargs["mask_interpolation"] = NEAREST
        try:
            transforms.append(cls(**kwargs))
        except (ValueError, TypeError) as err:  # albumentations' pydantic checks raise ValueError
            detail = "\n".join(line for line in str(err).splitlines() if "errors.pydantic.dev" not in line)
            raise DatasetError(source, f"transforms[{index}] {spec['name']}: {detail}") from err
    problems = [msg for index, spec in enumerate(specs) if (msg := _leaves_uint8(index, spec))]
    if problems:
        raise DatasetError(source, "bad transform spec: " + "; ".join(problems))
    compose = A.Compose(transforms, mask_interpolation=NEAREST, save_applied_params=True)
    for index, transform in enumerate(compose.transforms):
        if getattr(transform, "mask_interpolation", NEAREST) != NEAREST:  # pragma: no cover
            raise DatasetError(source, f"transforms[{index}]: mask interpolation is not nearest")
    return compose


def sample_seed(base_seed: int, sample_id: str) -> int:
    """A 63-bit seed from the base seed and a sample id, stable across runs, machines and order."""
    digest = hashlib.sha256(f"{int(base_seed)}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def augment_pair(
    compose: A.Compose, image: np.ndarray, mask: np.ndarray, *, seed: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Apply ``compose`` to one image/mask pair with its own seed.

    One generator pair is shared by all transforms of the compose and reset for every sample, so a
    sample's result depends only on its seed. (``Compose(seed=...)`` in albumentations 2.0.8 gives
    every transform its own generator with the *same* seed, which makes transforms with equal
    probabilities fire together.)

    Returns:
        The augmented image and mask, and the applied transforms as JSON-ready dicts.
    """
    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
    result = compose(image=image, mask=mask)
    return result["image"], result["mask"], applied_to_json(result.get("applied_transforms", []))


def _label_values(mask: np.ndarray) -> set:
    if mask.ndim == 2 and mask.dtype == np.uint8 and mask.size:
        low, high = (int(v) for v in cv2.minMaxLoc(mask)[:2])
        if _holds_only(mask, {low, high}):  # binary masks (most): two compares, ~10x faster than the histogram
            return {low, high}
    if mask.ndim == 2 and mask.dtype == np.uint8:  # a histogram is ~5x faster than np.unique here
        return set(np.flatnonzero(cv2.calcHist([mask], [0], None, [256], [0, 256])).tolist())
    if mask.ndim == 2:
        return set(np.unique(mask).tolist())
    return {tuple(v) for v in np.unique(mask.reshape(-1, mask.shape[-1]), axis=0).tolist()}


def allowed_mask_values(mask: np.ndarray) -> set:
    """The labels an augmented copy of ``mask`` may hold: its own, plus background 0."""
    return _label_values(mask) | ({0} if mask.ndim == 2 else {(0,) * mask.shape[-1]})


def _holds_only(mask: np.ndarray, values: set) -> bool:
    """True when every pixel of a 2D uint8 ``mask`` is one of a few ``values``: one compare and count
    per value (~0.02 ms each at 512x512), against ~0.5 ms for the histogram of ``_label_values``."""
    return sum(cv2.countNonZero(cv2.compare(mask, int(v), cv2.CMP_EQ)) for v in values) == mask.size


def check_mask_values(before: np.ndarray, after: np.ndarray, *, where: object, allowed: set | None = None) -> None:
    """Raise unless ``after`` has the shape of ``before`` and only its labels (or background 0).

    ``allowed`` is ``allowed_mask_values(before)``, computed once for all copies of one source mask.

    Raises:
        DatasetError: naming ``where`` and the invented values.
    """
    if after.shape != before.shape:
        raise DatasetError(
            where,
            f"augmented mask has shape {after.shape}, expected {before.shape}; "
            "use transforms that keep the image size (no crops or resizes)",
        )
    allowed = allowed_mask_values(before) if allowed is None else allowed
    if after.ndim == 2 and after.dtype == np.uint8 and len(allowed) <= 8 and _holds_only(after, allowed):
        return
    extra = _label_values(after) - allowed
    if extra:
        raise DatasetError(
            where,
            f"augmented mask has label values {sorted(extra)[:8]} not in the source mask "
            f"{sorted(allowed)[:8]}; a transform touched the mask with something other than "
            "nearest-neighbour interpolation",
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size > _BIG_ARRAY:
            return {"array": list(value.shape), "mean": round(float(value.mean()), 4)}
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


def _displacement(params: Mapping[str, Any], *, step: int = 4) -> float:
    """Largest pixel shift of a remap (``map_x``/``map_y`` of the distortion transforms), on a
    ``step``-pixel grid: a summary for the manifest, 16x cheaper than every pixel."""
    map_x = np.asarray(params["map_x"])[::step, ::step]
    map_y = np.asarray(params["map_y"])[::step, ::step]
    rows, cols = np.indices(map_x.shape[:2], dtype=np.float32) * step
    return round(float(np.hypot(map_x - cols, map_y - rows).max()), 3)


def applied_to_json(applied: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """albumentations' ``applied_transforms`` as plain JSON data; warp maps become their largest shift."""
    out = []
    for name, params in applied:
        entry: dict[str, Any] = {"name": name}
        params = dict(params)
        if "map_x" in params and "map_y" in params:
            entry["max_displacement_px"] = _displacement(params)
            params.pop("map_x")
            params.pop("map_y")
        for key in ("shape", "bbox_matrix"):  # redundant with the image size / matrix
            params.pop(key, None)
        entry.update({str(k): _jsonable(v) for k, v in params.items()})
        out.append(entry)
    return out


# --- a whole prepared set: train augmented, everything else passed through -------------------------

MANIFEST = "augment_manifest.csv"
MANIFEST_FIELDS = ("image", "mask", "subject", "source_image", "source_mask", "copy", "seed", "applied")
_WORKER: dict[str, A.Compose] = {}


def _init_worker(specs: Sequence[Mapping[str, Any]]) -> None:
    cv2.setNumThreads(1)  # one process per core already
    _WORKER["compose"] = build_pipeline(specs)


def _augment_file(
    task: tuple[str, Path, Path, Path, int, int],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write ``copies`` augmented versions of one train pair; returns manifest rows and problems.

    Problems travel back as text (DatasetError does not pickle) and are raised once by the caller.
    """
    stem, image_path, mask_path, out, base_seed, copies = task
    image, mask = read_png(image_path), read_png(mask_path)
    if image is None or mask is None:
        return [], [f"{image_path if image is None else mask_path}: not a readable PNG"]
    rows, allowed = [], allowed_mask_values(mask)  # once for every copy of this pair
    for copy in range(1, copies + 1):
        name = f"{stem}_aug{copy}.png"
        seed = sample_seed(base_seed, f"{stem}_aug{copy}")
        try:
            aug_image, aug_mask, applied = augment_pair(_WORKER["compose"], image, mask, seed=seed)
            check_mask_values(mask, aug_mask, where=mask_path, allowed=allowed)
        except DatasetError as err:
            return [], [f"{err} (copy {copy}, seed {seed})"]
        except (ValueError, TypeError) as err:
            return [], [f"{image_path}: augmenting failed: {err}"]
        for kind, array in (("images", aug_image), ("masks", aug_mask)):
            try:
                (out / "train" / kind / name).write_bytes(encode_png(array))
            except OSError as err:
                where = out / "train" / kind / name
                return [], [f"{where}: could not write the PNG ({err.strerror}); is the disk full or read-only?"]
        rows.append({
            "image": f"train/images/{name}", "mask": f"train/masks/{name}",
            "source_image": f"train/images/{image_path.name}", "source_mask": f"train/masks/{mask_path.name}",
            "copy": copy, "seed": seed, "applied": json.dumps(applied, separators=(",", ":")),
        })
    return rows, []


def _copy_through(src: Path, dst: Path) -> None:
    """Copy a file or folder unchanged (bytes and names); copies, not links, so DVC's cache stays apart."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(src, dst)


def augment_set(
    src: Path, out: Path, *, specs: Sequence[Mapping[str, Any]], seed: int, copies: int,
    keep_original: bool = True, n_jobs: int = 1, desc: str = "augment", source: str = "augment.transforms",
) -> list[dict[str, Any]]:
    """Write a prepared set at ``out``: train originals (optional) plus ``copies`` augmented pairs each
    as ``<stem>_aug<k>.png``; every other file and split (dataset.json included) copied through byte for byte.

    Outputs depend only on the inputs, ``specs``, ``seed`` and ``copies``, not on ``n_jobs`` or order.

    Returns:
        The manifest rows (also written to ``out/augment_manifest.csv``), originals first per pair.
    Raises:
        DatasetError: bad specs or options, an unpaired or unreadable file, a mask that gained labels.
    """
    src, out = Path(src), Path(out)
    build_pipeline(specs, source=source)  # validate in this process, before any work
    if not isinstance(copies, int) or copies < 0:
        raise DatasetError("augment.copies", f"expected a whole number >= 0, found {copies!r}")
    if copies == 0 and not keep_original:
        raise DatasetError("augment", "copies 0 with keep_original false would leave train empty")
    read_info(src)  # a set prepare wrote; its dataset.json is copied through with the other files
    pairs = list_pairs(src / "train")
    for sub in ("images", "masks"):
        (out / "train" / sub).mkdir(parents=True)
    tasks = [(stem, i, m, out, int(seed), copies) for stem, i, m in pairs] if copies else []
    if n_jobs <= 1 or len(tasks) <= 1:  # the pool runs in this process: set its state up here
        _WORKER["compose"] = build_pipeline(specs)
    # every task is handed to the workers at once, so they start (forkserver, albumentations import)
    # while this process copies the other splits and the originals
    with ordered_results(_augment_file, tasks, jobs=n_jobs, initializer=_init_worker, initargs=(list(specs),),
                         preload=["pipeline.dataset.augment"],
                         chunksize=len(tasks) // (32 * max(1, n_jobs))) as results:  # small: even finish
        for entry in sorted(src.iterdir()):
            if entry.name != "train":
                _copy_through(entry, out / entry.name)
        subjects = subjects_by_stem(src)
        originals: dict[str, dict[str, Any]] = {}
        if keep_original:
            for stem, image_path, mask_path in pairs:
                shutil.copyfile(image_path, out / "train" / "images" / image_path.name)
                shutil.copyfile(mask_path, out / "train" / "masks" / mask_path.name)
                rel_i, rel_m = f"train/images/{image_path.name}", f"train/masks/{mask_path.name}"
                originals[stem] = {"image": rel_i, "mask": rel_m, "source_image": rel_i, "source_mask": rel_m,
                                   "copy": 0, "seed": "", "applied": "[]"}
        done = list(tqdm(results, total=len(tasks), desc=desc, unit="pair", leave=False))
    problems = [p for _, probs in done for p in probs]
    if problems:
        raise DatasetError(src / "train", f"{len(problems)} pairs failed:\n  " + "\n  ".join(problems[:20]))
    augmented = {stem: rows for (stem, _, _), (rows, _) in zip(pairs, done)}
    manifest = []
    for stem, _, _ in pairs:
        for row in ([originals[stem]] if stem in originals else []) + augmented.get(stem, []):
            manifest.append({**row, "subject": subjects.get(stem, "")})
    with open(out / MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(manifest)
    return manifest
