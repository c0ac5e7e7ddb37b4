"""Scoring a model on one split of a prepared set: per image (2D), per subject volume (3D) and overall."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.dataset.prepared import list_pairs, read_mask, subject_of
from pipeline.evaluation import metrics as ev
from pipeline.learning.heads import model_outputs
from pipeline.learning.predict import predict_array, probs_to_labels, resize_labels
from pipeline.learning.tfdata import load_pairs
from pipeline.learning.volume import restore_subject, restores_exactly


@dataclass
class SplitScores:
    """What :func:`score_split` found: rows per image and per subject, the headline metrics, the details."""

    images: list[dict] = field(default_factory=list)
    subjects: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)  # eval.json: the headline Dice and HD95, named with their unit
    details: dict = field(default_factory=dict)  # details.json: other figures, counts, units, per-class figures
    kept: dict[str, tuple[Path, np.ndarray, np.ndarray]] = field(default_factory=dict)


def _loss(model, masks: np.ndarray, probs: np.ndarray, outputs: int) -> float:
    """The model's compiled loss on one batch (NaN for an uncompiled model)."""
    if getattr(model, "loss", None) is None:
        return float("nan")
    target = masks[..., None].astype(np.float32) if outputs == 1 else np.eye(outputs, dtype=np.float32)[masks]
    return float(model.compute_loss(x=None, y=target, y_pred=probs))


def distance_unit(entry: Mapping | None) -> str:
    """``mm`` for volumes (NIfTI/DICOM spacing); ``px`` for 2D sources, which publish no pixel size,
    and for volumes whose header gives none (geometry.json ``spacing_unknown``)."""
    known = entry and entry.get("layout") == "volume" and entry.get("spacing") and not entry.get("spacing_unknown")
    return "mm" if known else "px"


def split_distance_unit(entries) -> str:
    """One unit for a whole split, so its mean means something: ``mm`` only when every subject's
    source gives a spacing; a split mixing headers with and without one is scored in voxels."""
    return "mm" if {distance_unit(e) for e in entries} == {"mm"} else "px"


def _mean(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _subject_volume(subject: str, entry: Mapping | None, preds: dict[str, np.ndarray], truths: dict[str, np.ndarray],
                    classes: int, unit: str) -> dict:
    """Volume scores of one subject on its source grid (or on the stored masks without geometry)."""
    if entry is not None:
        pred, truth = restore_subject(entry, preds), restore_subject(entry, truths)
        spacing = entry.get("spacing")[:3] if unit == "mm" else None
    else:  # no geometry.json: the subject's stored masks, in name order, as a stack
        names = sorted(preds)
        pred, truth, spacing = np.stack([preds[n] for n in names]), np.stack([truths[n] for n in names]), None
    return ev.volume_scores(pred, truth, spacing=spacing, num_classes=classes)


def _subject_row(subject: str, entry: Mapping | None, preds: dict, truths: dict, classes: int, unit: str) -> dict:
    vol = _subject_volume(subject, entry, preds, truths, classes, unit)
    return {
        "subject": subject, "slices": len(preds), "dice_volume": vol["dice"], f"hd95_{unit}": vol["hd95"],
        f"msd_{unit}": vol["msd"], "truth_voxels": vol["truth_voxels"], "pred_voxels": vol["pred_voxels"],
        **{f"dice_volume_{c}": vol[f"dice_{c}"] for c in range(1, classes) if classes > 2},
    }


def score_split(model, split_dir: Path, *, subjects: Mapping[str, str], input_size: int, channels: int,
                num_classes: int, head: str, threshold: float, batch_size: int = 8, keep: Collection[str] = (),
                geometry: Mapping[str, Mapping] | None = None,
                progress: Callable = lambda it, **_: it) -> SplitScores:
    """Predict every image of ``split_dir`` at the model's size and score it per image and per subject.

    Per subject (3D, on the source grid rebuilt with ``geometry``, prepare's geometry.json):
    Dice, HD95 and mean surface distance, in mm for volumes and in pixels for 2D sources; their
    means ``dice_volume`` and ``hd95_<unit>`` are the summary (eval.json), the rest goes to details.
    Per image (2D, on the stored mask's grid): Dice, IoU, precision, recall; ``dice_image``
    averages the images where truth or prediction shows foreground (an empty slice predicted
    empty says nothing; one predicted with foreground scores 0).
    ``dice_seeds_style`` / ``_bg`` are the seeds' soft batch Dice at the model's size without and
    with the background channel. ``keep`` names stems whose ``(image path, truth, prediction)``
    are returned for pictures.
    ``num_classes`` counts foreground classes (dataset.json); ``head`` is the model's.
    """
    outputs = model_outputs(num_classes=num_classes, head=head)
    pairs = list_pairs(split_dir)
    stems, images, small_masks = load_pairs(split_dir, input_size=input_size, channels=channels,
                                            num_classes=num_classes)
    geometry = geometry or {}
    out = SplitScores()
    pooled = ev.Counts()
    class_dice: dict[int, list[float]] = defaultdict(list)
    seeds, seeds_bg = np.zeros(2), np.zeros(2)
    loss_sum = 0.0
    classes = num_classes + 1  # background included
    by_subject: dict[str, tuple[dict, dict]] = defaultdict(lambda: ({}, {}))
    last = {subject_of(stem, subjects): i for i, (stem, _, _) in enumerate(pairs)}  # score a subject once complete
    unit = split_distance_unit(geometry.get(s) for s in last)
    for start, probs in progress(predict_array(model, images, batch_size=batch_size),
                                 total=-(-len(stems) // batch_size), desc="evaluate", unit="batch"):
        batch_masks = small_masks[start:start + len(probs)]
        loss_sum += _loss(model, batch_masks, probs, outputs) * len(probs)
        scored = probs[..., 0] if outputs == 1 else probs
        seeds += ev.seeds_dice_terms(scored, batch_masks, num_classes=classes, background=False)
        seeds_bg += ev.seeds_dice_terms(scored, batch_masks, num_classes=classes, background=True)
        for i, labels in enumerate(probs_to_labels(probs, threshold=threshold)):
            stem, image_path, mask_path = pairs[start + i]
            truth = read_mask(mask_path, num_classes=num_classes)
            pred = resize_labels(labels, truth.shape)
            subject = subject_of(stem, subjects)
            scores = ev.image_scores(pred, truth, num_classes=classes)
            out.images.append({"image": stem, "subject": subject, **scores})
            for c in range(1, classes):
                class_counts = ev.counts(pred, truth, label=c)
                pooled += class_counts
                if not class_counts.empty_empty:  # a class absent from both masks says nothing about it
                    class_dice[c].append(ev.dice_from(class_counts))
            by_subject[subject][0][image_path.name] = pred
            by_subject[subject][1][image_path.name] = truth
            if stem in keep:
                out.kept[stem] = (image_path, truth, pred)
            if last[subject] == start + i:  # one subject's squares in memory at a time
                entry = geometry.get(subject)
                out.subjects.append(_subject_row(subject, entry, *by_subject.pop(subject), classes, unit))
    out.subjects.sort(key=lambda row: row["subject"])
    with_foreground = [r for r in out.images if not r["empty_empty"]]
    empty_truth = [r for r in out.images if r["tp"] + r["fn"] == 0]
    out.summary = {  # two per dataset: every key here is a `dvc exp show` column of every experiment
        "dice_volume": _mean(s["dice_volume"] for s in out.subjects),
        f"hd95_{unit}": _mean(s.get(f"hd95_{unit}", float("nan")) for s in out.subjects),
    }
    out.details = {
        "headline": "dice_volume",
        "distance_unit": unit,
        f"msd_{unit}": _mean(s.get(f"msd_{unit}", float("nan")) for s in out.subjects),
        "dice_image": float(np.mean([r["dice"] for r in with_foreground])) if with_foreground else float("nan"),
        "dice_seeds_style": ev.seeds_dice(seeds),
        "dice_seeds_style_bg": ev.seeds_dice(seeds_bg),
        "truth_on_source_grid_exact": all(restores_exactly(geometry[s["subject"]]) for s in out.subjects
                                          if s["subject"] in geometry),
        "n_images": len(stems),
        "n_subjects": len(out.subjects),
        "n_images_scored": len(with_foreground),
        "n_empty_truth_images": len(empty_truth),
        "n_empty_truth_images_with_prediction": sum(1 for r in empty_truth if r["fp"] > 0),
        "n_subjects_without_distance": sum(1 for s in out.subjects if np.isnan(s.get(f"hd95_{unit}", np.nan))),
        "precision_pixels": ev.precision_from(pooled),
        "recall_pixels": ev.recall_from(pooled),
        "loss": loss_sum / len(stems),
    }
    for c in range(1, classes if classes > 2 else 1):  # over the images showing class c in either mask
        out.details[f"dice_image_{c}"] = float(np.mean(class_dice[c])) if class_dice[c] else float("nan")
        out.details[f"n_images_{c}"] = len(class_dice[c])
        out.details[f"dice_volume_{c}"] = _mean(s[f"dice_volume_{c}"] for s in out.subjects)
    return out
