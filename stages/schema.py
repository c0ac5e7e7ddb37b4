"""The typed schema of params.yaml: every setting once, with its type, range and explanation.

params.yaml holds the globals, a ``defaults:`` block and one ``datasets.<key>`` block per dataset
that holds only ``raw`` and what differs; a dataset's settings are the defaults deep-merged with its
block (mappings merge, lists and scalars replace). pydantic (already installed as a dependency of
albumentations) checks types, enums, ranges and unknown keys; the explanations live here, in each
Field's description, because ``dvc exp run -S`` rewrites params.yaml (docs/params.md is generated
from them: ``python -m stages.config --markdown``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_serializer, model_validator

from pipeline.errors import UsageError

# libyaml's safe loader when PyYAML was built with it (the wheels are): the same data, ~8x faster
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SAFE_KEY = re.compile(r"[a-z][a-z0-9_]*")
SECTIONS = ("synth", "prepare", "augment", "train", "evaluate")
GLOBALS = ("seed", "image_size", "n_jobs")
# models/ imports TensorFlow; these mirror models.losses / models.training (tests/test_config.py checks)
LOSSES = ("bce_dice_loss", "dice_loss", "iou_loss", "bce_iou_loss", "categorical_crossentropy", "cce_dice_loss")
SIGMOID_ONLY = ("bce_dice_loss", "bce_iou_loss")
SOFTMAX_ONLY = ("categorical_crossentropy", "cce_dice_loss")
OPTIMIZERS = ("adam", "sgd", "rmsprop")


class Section(BaseModel):
    """Unknown keys are errors, and values are not coerced (``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# --- synth ------------------------------------------------------------------------------------------
class Synth(Section):
    subjects: int = Field(6, gt=0, description="Subjects (cases, patients or images) the stand-in generator writes.")
    seed: int = Field(0, description="Seed of the stand-in generator: same seed, byte-identical raw files.")


# --- prepare ----------------------------------------------------------------------------------------
class Intensity(Section):
    mode: Literal["none", "window", "percentile", "auto"] = Field(
        "none", description="`none`: 8-bit grey passes through; `window`: CT window in HU (`center`, `width`); "
                            "`percentile`: per-volume MRI percentiles (`low`, `high`); `auto` (readers msd, "
                            "nnunet): the modality's default from the dataset's json, CT window 40/400, else "
                            "percentiles 0.5/99.5.")
    center: float | None = Field(None, description="CT window centre in HU (mode `window`).")
    width: float | None = Field(None, gt=0, description="CT window width in HU, > 0 (mode `window`).")
    low: float | None = Field(None, ge=0, le=100, description="Lower percentile, 0..100 (mode `percentile`).")
    high: float | None = Field(None, ge=0, le=100, description="Upper percentile, > low (mode `percentile`).")
    nonzero: bool | None = Field(None, description="Percentiles of non-zero voxels only (mode `percentile`, default true).")

    @model_validator(mode="after")
    def _needs(self) -> Intensity:
        if self.mode == "window" and (self.center is None or self.width is None):
            raise ValueError("mode window needs center and width (HU), e.g. {mode: window, center: 40, width: 400}")
        if self.mode == "percentile":
            if self.low is None or self.high is None:
                raise ValueError("mode percentile needs low and high, e.g. {mode: percentile, low: 0.5, high: 99.5}")
            if not self.low < self.high:
                raise ValueError(f"percentiles need 0 <= low < high <= 100, found low={self.low:g}, high={self.high:g}")
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler):  # {mode: none} stays {mode: none}: the keys a stage reads today
        return {k: v for k, v in handler(self).items() if v is not None}


class Split(Section):
    train: float = Field(0.7, ge=0, le=1, description="Share of subjects in the train split.")
    valid: float = Field(0.15, ge=0, le=1, description="Share of subjects in the valid split.")
    test: float = Field(0.15, ge=0, le=1, description="Share of subjects in the test split.")
    seed: int = Field(42, description="Seed of the subject-wise split (a subject's split depends only on it and its id).")
    folds: int = Field(5, ge=0, description="Cross-validation folds of the train+valid subjects written to splits.json "
                                            "(0 or 1: none; none either when there are fewer subjects than folds).")
    fold: int | None = Field(None, ge=0, description="Make this fold (0..folds-1) the valid split and the other folds "
                                                    "train; null: the ratios' train/valid split.")
    file: str | None = Field(None, description="A splits.json to pin every subject in it to its split and fold "
                                               "(keep it under splits/, which prepare depends on); null: draw.")
    new_subjects: Literal["assign", "train", "fail"] = Field(
        "assign", description="Subjects missing from `file`: `assign` (drawn and balanced around the pinned ones), "
                              "`train`, or `fail` (an error listing them).")

    @model_validator(mode="after")
    def _sum_to_one(self) -> Split:
        total = self.train + self.valid + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + valid + test must be 1, found {total:g}")
        if self.fold is not None and not self.fold < self.folds:
            raise ValueError(f"fold {self.fold} needs folds > {self.fold}, found folds {self.folds}")
        return self


class Prepare(Section):
    reader: dict[str, Any] = Field(
        default_factory=dict, description="Keyword options of the dataset's reader (the `Options` dataclass of "
                                          "pipeline/sources/<key>.py), e.g. `{sequence: Flair}` for ms.")
    intensity: Intensity = Field(default_factory=Intensity, description="Raw intensities to 8-bit grey.")
    axis: Literal[0, 1, 2] = Field(2, description="Volume axis sliced (in the upright display orientation).")
    letterbox: bool = Field(False, description="Pad to square (true) instead of resizing with a stretch (false).")
    channels: Literal[1, 3] = Field(1, description="Channels of the prepared images: 1 grey, 3 grey replicated.")
    context_slices: Literal[0, 1] = Field(
        0, description="2.5D context: 1 writes slices z-1, z, z+1 as the R, G, B channels of each image (edges repeat "
                       "the border slice; masks are slice z's; `channels` is then 3); 0: one slice.")
    min_foreground_pixels: int = Field(1, ge=0, description="Slices with fewer foreground pixels count as empty.")
    keep_empty_fraction: float = Field(0.0, ge=0, le=1, description="Share of empty slices kept (seeded draw), 0..1.")
    empty_filter_splits: list[Literal["train", "valid", "test"]] = Field(
        ["train", "valid"], description="Splits where `min_foreground_pixels` and `keep_empty_fraction` drop empty "
                                        "slices; the others keep every slice (the test split, so evaluation sees "
                                        "the slices without the target too; the manifest marks them `empty_kept`).")
    target_spacing: float | None = Field(
        None, gt=0, description="mm per pixel: resample every slice in-plane to this pixel size and pad/crop it to "
                                "the image_size square (volume sources only); null stretches or letterboxes to the "
                                "square, as the seeds did.")
    split: Split = Field(default_factory=Split, description="Subject-wise train/valid/test split.")
    on_error: Literal["fail", "skip"] = Field("fail", description="A bad subject stops the stage (`fail`) or is "
                                                                  "listed in stats.json and left out (`skip`).")
    seed: int = Field(42, description="Seed of the kept empty slices (`keep_empty_fraction`).")
    num_classes: int = Field(1, ge=1, description="Foreground classes in the masks (1 = binary).")
    rgb_map: dict[int, list[int]] | None = Field(
        None, description="Class index -> [B, G, R] colour written into mask PNGs (for viewers); null writes "
                          "class indices, which train/evaluate/infer need.")


# --- augment ----------------------------------------------------------------------------------------
class Augment(Section):
    seed: int = Field(42, description="Base seed; each sample's seed comes from it and the sample id.")
    copies: int = Field(1, ge=0, description="Augmented copies of each train pair.")
    keep_original: bool = Field(True, description="Keep the unaugmented train pairs beside the copies.")
    transforms: list[dict[str, Any]] = Field(
        default_factory=list, description="albumentations transforms applied in order, each `{name: <class>, p: "
                                          "<probability>, <argument>: <value>}`; masks move with nearest only. "
                                          "HorizontalFlip mirrors left/right: fine for lesions, not for "
                                          "lateralised labels.")


# --- train ------------------------------------------------------------------------------------------
class ReduceLR(Section):
    factor: float = Field(0.5, gt=0, lt=1, description="Learning rate multiplier on a val_loss plateau.")
    patience: int = Field(3, ge=0, description="Epochs without val_loss improvement before reducing.")


class Train(Section):
    seed: int = Field(42, description="Seed of weights, shuffling and dropout.")
    input_size: int = Field(128, gt=0, description="Side of the model input; images are resized to it. "
                                                   "Must be divisible by 2**(num_layers-1).")
    channels: Literal[1, 3] = Field(1, description="Model input channels, at least the prepared set's (dataset.json: "
                                                  "3 for 2.5D context); 3 with a grey set replicates it, as the seeds did.")
    head: Literal["sigmoid", "softmax"] = Field(
        "sigmoid", description="Output head: `sigmoid` (1 output, only with prepare.num_classes 1) or `softmax` "
                               "(prepare.num_classes + 1 outputs, background included).")
    base_filters: int = Field(8, gt=0, description="Filters of the first level; doubled at each level down.")
    base_kernels: list[int] = Field([3, 3], min_length=2, max_length=2, description="Convolution kernel [h, w].")
    num_layers: int = Field(5, ge=1, description="UNet levels (depth).")
    dilation: list[int] = Field([1, 1], min_length=2, max_length=2, description="Convolution dilation [h, w].")
    dropout_rate: float = Field(0.05, ge=0, lt=1, description="Dropout after each level's convolutions.")
    batch_norm: bool = Field(False, description="Batch normalisation after each convolution.")
    epochs: int = Field(25, gt=0, description="Most epochs (early stopping may end sooner).")
    batch_size: int = Field(8, gt=0, description="Images per batch (per replica).")
    optimizer: Literal[OPTIMIZERS] = Field("adam", description="Keras optimizer.")  # type: ignore[valid-type]
    learning_rate: float = Field(0.002, gt=0, description="Initial learning rate.")
    clipvalue: float | None = Field(None, gt=0, description="Clip each gradient value to +-clipvalue; null: off.")
    loss: Literal[LOSSES] = Field("bce_dice_loss", description="Loss (models/losses.py); bce_* need the sigmoid "  # type: ignore[valid-type]
                                                               "head, categorical ones softmax.")
    mixed_precision: bool | Literal["auto", "float16", "bfloat16"] = Field(
        False, description="Mixed precision: `false` (float32), `auto`/`true` (mixed_float16 on GPUs of compute "
                           "capability >= 7.0), `float16`, or `bfloat16` (GPUs >= 8.0); off with a note on a CPU "
                           "or a GPU without support (models/devices.py).")
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation of the train step: `true`, `false`, or `auto` (Keras decides: on for "
                            "GPUs and the JAX backend, off on a CPU and under TensorFlow's MirroredStrategy, "
                            "where `true` is turned off with a note).")
    reduce_lr: ReduceLR = Field(default_factory=ReduceLR, description="ReduceLROnPlateau on val_loss.")
    early_stopping_patience: int = Field(6, ge=0, description="Epochs without val_loss improvement before stopping.")
    snapshot_images: int = Field(3, ge=0, description="Validation images drawn after every epoch (dvclive).")

    @model_validator(mode="after")
    def _depth_fits(self) -> Train:
        step = 2 ** (self.num_layers - 1)
        if self.input_size % step:
            raise ValueError(f"input_size {self.input_size} is not divisible by 2**(num_layers-1) = {step}; "
                             f"use a multiple of {step} or fewer layers")
        if self.head == "sigmoid" and self.loss in SOFTMAX_ONLY or self.head == "softmax" and self.loss in SIGMOID_ONLY:
            raise ValueError(f"loss {self.loss} does not fit head {self.head}; "
                             f"use {'bce_dice_loss' if self.head == 'sigmoid' else 'cce_dice_loss'} or change head")
        return self


# --- evaluate ---------------------------------------------------------------------------------------
class Evaluate(Section):
    threshold: float = Field(0.5, ge=0, le=1, description="Probability above which a sigmoid output is foreground.")
    overlays: int = Field(4, ge=0, description="Test images drawn as error overlays.")


class DatasetSettings(Section):
    """One dataset's merged settings, as stages read them."""

    raw: str = Field(description="Folder holding the source as published; point it at the real data.")
    reader: str | None = Field(None, description="Reader of `raw`: `msd` (a Decathlon task) or `nnunet` (an "
                                                 "nnU-Net v2 raw folder) make a new dataset a params block; null "
                                                 "reads the source named by the dataset key.")
    seed: int = Field(42, description="Base seed; sections carry their own seeds where they draw random numbers.")
    image_size: int = Field(512, gt=0, description="Side of the prepared PNGs.")
    n_jobs: int = Field(0, ge=0, description="Worker processes of prepare/augment; 0 = all cores (outputs do not "
                                             "depend on it).")
    synth: Synth = Field(default_factory=Synth)
    prepare: Prepare = Field(default_factory=Prepare)
    augment: Augment = Field(default_factory=Augment)
    train: Train = Field(default_factory=Train)
    evaluate: Evaluate = Field(default_factory=Evaluate)

    @model_validator(mode="after")
    def _head_fits_classes(self) -> DatasetSettings:
        if self.train.head == "sigmoid" and self.prepare.num_classes != 1:
            raise ValueError(f"train.head sigmoid needs prepare.num_classes 1, found {self.prepare.num_classes}; "
                             "set train.head: softmax")
        return self


class CrossValidation(Section):
    """The top-level ``cv:`` block: which datasets dvc.yaml cross-validates, over which folds."""

    datasets: list[str] = Field(default_factory=list, description="Dataset keys to cross-validate ([] = off: "
                                                                  "every fold trains a model).")
    folds: list[int] = Field([0, 1, 2, 3, 4], description="Folds to run, 0..K-1 for prepare.split.folds K.")

    @model_validator(mode="after")
    def _distinct(self) -> CrossValidation:
        if len(set(self.folds)) != len(self.folds) or any(k < 0 for k in self.folds):
            raise ValueError(f"folds must be distinct numbers >= 0, found {self.folds}")
        return self


# --- loading ----------------------------------------------------------------------------------------
def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has(tree: Any, path: tuple) -> bool:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return True


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The schema model whose fields live at ``path`` of a dataset's settings (for did-you-mean)."""
    model: Any = DatasetSettings
    for part in path:
        field = model.model_fields.get(part)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"known keys: {', '.join(options)}"


def _message(err: dict) -> tuple[tuple, str]:
    """One pydantic error as (key path, problem; fix)."""
    loc = tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-"))
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        return loc, f"unknown key; {did_you_mean(str(loc[-1]), list(model.model_fields) if model else [])}"
    if kind == "missing":
        return loc, "missing; add it to the defaults block"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return loc, msg
    return loc, f"{msg[:1].lower()}{msg[1:]}, found {value!r}"


def _path(loc: tuple) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def _reader_problems(key: str, options: Any, declared: type) -> list[tuple[tuple, str]]:
    fields = [f.name for f in dataclasses.fields(declared)]
    if not isinstance(options, Mapping):
        return [(("prepare", "reader"), f"expected a mapping of reader options, found {options!r}")]
    problems = [(("prepare", "reader", name), f"unknown option of the {key} reader; {did_you_mean(str(name), fields)}")
                for name in options if name not in fields]
    if not problems:
        try:
            TypeAdapter(declared).validate_python(dict(options))
        except ValidationError as err:
            problems += [(("prepare", "reader", *loc), msg) for loc, msg in map(_message, err.errors())]
    return problems


def _transform_problems(specs: Any, spec_problems: Callable[[Any], list[str]]) -> list[tuple[tuple, str]]:
    out = []
    for problem in spec_problems(specs):
        index, _, rest = problem.partition("] ")
        if index.startswith("transforms[") and index[11:].isdigit():
            out.append((("augment", "transforms", int(index[11:])), rest))
        else:
            out.append((("augment", "transforms"), problem))
    return out


class Settings:
    """params.yaml, read and checked: the merged settings of each dataset, or every problem found."""

    def __init__(self, params_file: Path | str) -> None:
        self.file = str(params_file)
        path = Path(params_file)
        if not path.is_file():
            raise UsageError(f"{self.file}: not found; run from the repository root or pass --params")
        try:
            raw = yaml.load(path.read_text(), Loader=_SAFE_LOADER) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise UsageError(f"{self.file}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
        if not isinstance(raw, Mapping):
            raise UsageError(f"{self.file}: expected a mapping with defaults: and datasets:, found {type(raw).__name__}")
        self.raw = raw
        self.defaults = raw.get("defaults") or {}
        self.datasets = raw.get("datasets") or {}

    def top_level_problems(self) -> list[str]:
        known = [*GLOBALS, "defaults", "datasets", "cv"]
        out = [f"{self.file}: {key}: unknown key; {did_you_mean(str(key), known)}" for key in self.raw if key not in known]
        out += self.cv_problems()
        if not isinstance(self.defaults, Mapping):
            out.append(f"{self.file}: defaults: expected a mapping of sections ({', '.join(SECTIONS)})")
        else:
            out += [f"{self.file}: defaults.{key}: unknown section; {did_you_mean(str(key), list(SECTIONS))}"
                    for key in self.defaults if key not in SECTIONS]
        if not isinstance(self.datasets, Mapping) or not self.datasets:
            out.append(f"{self.file}: datasets: expected one block per dataset, e.g. datasets: {{lasc: {{raw: ...}}}}")
        else:  # a key becomes part of dvc.yaml commands and output paths: keep it a plain word
            out += [f"{self.file}: datasets.{key}: dataset keys are lower-case letters, digits and _ "
                    "(starting with a letter), e.g. lasc or my_heart" for key in self.datasets
                    if not (isinstance(key, str) and SAFE_KEY.fullmatch(key))]
        return out

    def cv_problems(self) -> list[str]:
        """The ``cv:`` block (dvc.yaml's cross-validation matrix): known dataset keys, distinct folds >= 0."""
        if "cv" not in self.raw:
            return []
        try:
            cv = CrossValidation.model_validate(self.raw["cv"])
        except ValidationError as err:
            return [f"{self.file}: {_path(('cv', *loc))}: {msg}" for loc, msg in map(_message, err.errors())]
        known = list(self.datasets) if isinstance(self.datasets, Mapping) else []
        return [f"{self.file}: cv.datasets: {key}: no such dataset; {did_you_mean(str(key), known)}"
                for key in cv.datasets if key not in known]

    def merged(self, key: str) -> dict[str, Any]:
        """A dataset's raw (unchecked) settings: globals, then defaults, then its own block."""
        block = self.datasets.get(key)
        base = {name: self.raw[name] for name in GLOBALS if name in self.raw}
        defaults = self.defaults if isinstance(self.defaults, Mapping) else {}
        return deep_merge(deep_merge(base, {k: v for k, v in defaults.items() if k in SECTIONS}),
                          block if isinstance(block, Mapping) else {})

    def problems(self, key: str, *, reader_options: type | None = None,
                 spec_problems: Callable[[Any], list[str]] | None = None) -> list[str]:
        """Every problem of one dataset's settings, one line each, naming the key where it was written.

        ``prepare.reader`` is checked against ``reader_options`` (the reader's ``Options`` dataclass)
        and ``augment.transforms`` with ``spec_problems`` when given: the stages that use them pass
        them, so other stages do not import (and depend on) readers and albumentations.
        """
        if key not in self.datasets:
            return [f"{self.file}: datasets.{key}: no such block; known datasets: {', '.join(map(str, self.datasets))}"]
        block = self.datasets[key]
        if not isinstance(block, Mapping):
            return [f"{self.file}: datasets.{key}: expected a mapping with raw: and the settings that differ"]
        merged = self.merged(key)
        found: list[tuple[tuple, str]] = []
        try:
            DatasetSettings.model_validate(merged)
        except ValidationError as err:
            found += [_message(e) for e in err.errors()]
        if reader_options is not None and isinstance(merged.get("prepare"), Mapping):
            found += _reader_problems(key, merged["prepare"].get("reader", {}), reader_options)
        if spec_problems is not None and isinstance(merged.get("augment"), Mapping):
            found += _transform_problems(merged["augment"].get("transforms", []), spec_problems)
        return [f"{self.file}: {self.where(key, loc)}: {msg}" for loc, msg in found]

    def where(self, key: str, loc: tuple) -> str:
        """The key path the user wrote: the dataset block's, else the defaults', else a global."""
        if not loc:
            return f"datasets.{key}"
        block = self.datasets.get(key, {})

        def depth(tree: Any) -> int:  # how much of the key path a block spells out
            return max((d for d in range(len(loc) + 1) if _has(tree, loc[:d])), default=0)

        mine, shared = depth(block), depth(self.defaults)
        if mine and mine >= shared:
            return f"datasets.{key}.{_path(loc)}"
        if loc[0] in GLOBALS:
            return _path(loc)
        return f"defaults.{_path(loc)}" if shared else f"datasets.{key}.{_path(loc)}"

    def dataset(self, key: str, **checks: Any) -> dict[str, Any]:
        """The merged, checked settings of one dataset as a plain dict; UsageError names the first problem.

        ``checks``: ``reader_options`` and ``spec_problems``, as for :meth:`problems`.
        """
        problems = self.top_level_problems() + self.problems(key, **checks)
        if problems:
            more = f" (and {len(problems) - 1} more: python -m stages.config)" if len(problems) > 1 else ""
            raise UsageError(problems[0] + more)
        merged = self.merged(key)
        settings = DatasetSettings.model_validate(merged).model_dump()
        settings["prepare"]["reader"] = copy.deepcopy(merged.get("prepare", {}).get("reader", {}))  # as written
        settings["augment"]["transforms"] = copy.deepcopy(merged.get("augment", {}).get("transforms", []))
        return settings
