"""Scoring a model on one split of a prepared set: per image, per subject and overall."""

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


@dataclass
class SplitScores:
    """What :func:`score_split` found: one row per image and per subject, the summary, kept pictures."""

    images: list[dict] = field(default_factory=list)
    subjects: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    kept: dict[str, tuple[Path, np.ndarray, np.ndarray]] = field(default_factory=dict)


def _loss(model, masks: np.ndarray, probs: np.ndarray, outputs: int) -> float:
    """The model's compiled loss on one batch (NaN for an uncompiled model)."""
    if getattr(model, "loss", None) is None:
        return float("nan")
    target = masks[..., None].astype(np.float32) if outputs == 1 else np.eye(outputs, dtype=np.float32)[masks]
    return float(model.compute_loss(x=None, y=target, y_pred=probs))


def score_split(model, split_dir: Path, *, subjects: Mapping[str, str], input_size: int, channels: int,
                num_classes: int, head: str, threshold: float, batch_size: int = 8, keep: Collection[str] = (),
                progress: Callable = lambda it, **_: it) -> SplitScores:
    """Predict every image of ``split_dir`` at the model's size and score it at the mask's size.

    Predictions are upsampled with nearest neighbour to each stored mask; Dice/IoU are foreground,
    per image; subjects pool their slices' counts and surface distances (HD95 in pixels of the
    stored masks; a slice where the object is missed or invented counts its boundary at the image
    diagonal); precision/recall pool every pixel; ``dice_seeds_style`` and ``dice_seeds_style_bg``
    are the seeds' soft batch Dice on the model-size probabilities, without and with the
    background channel (their sigmoid and softmax models reported one or the other).
    ``keep`` names stems whose ``(image path, truth, prediction)`` are returned for pictures.
    ``num_classes`` counts foreground classes (dataset.json); ``head`` is the model's.
    """
    outputs = model_outputs(num_classes=num_classes, head=head)
    pairs = list_pairs(split_dir)
    stems, images, small_masks = load_pairs(split_dir, input_size=input_size, channels=channels,
                                            num_classes=num_classes)
    out = SplitScores()
    per_subject: dict[str, ev.Counts] = defaultdict(ev.Counts)
    distances: dict[str, list] = defaultdict(list)
    n_slices: dict[str, int] = defaultdict(int)
    class_dice: dict[int, list[float]] = defaultdict(list)
    seeds, seeds_bg = np.zeros(2), np.zeros(2)
    loss_sum = 0.0
    classes = num_classes + 1  # background included
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
                per_subject[f"{subject}\t{c}"] += class_counts
                distances[f"{subject}\t{c}"].append(ev.surface_distances(pred, truth, label=c))
                if not class_counts.empty_empty:  # a class absent from both masks says nothing about it
                    class_dice[c].append(ev.dice_from(class_counts))
            n_slices[subject] += 1
            if stem in keep:
                out.kept[stem] = (image_path, truth, pred)
    for subject in sorted(n_slices):
        keys = [f"{subject}\t{c}" for c in range(1, classes)]
        present = [k for k in keys if not per_subject[k].empty_empty]
        hd = [h for h in (ev.hd95(distances[k]) for k in present) if not np.isnan(h)]
        out.subjects.append({
            "subject": subject, "slices": n_slices[subject],
            "dice": float(np.mean([ev.dice_from(per_subject[k]) for k in present])) if present else 1.0,
            "iou": float(np.mean([ev.iou_from(per_subject[k]) for k in present])) if present else 1.0,
            "hd95": float(np.mean(hd)) if hd else float("nan"),
        })
    pooled = sum(per_subject.values(), ev.Counts())
    hd_all = [s["hd95"] for s in out.subjects if not np.isnan(s["hd95"])]
    out.summary = {
        "dice": float(np.mean([r["dice"] for r in out.images])),
        "iou": float(np.mean([r["iou"] for r in out.images])),
        "dice_subject": float(np.mean([s["dice"] for s in out.subjects])),
        "precision": ev.precision_from(pooled),
        "recall": ev.recall_from(pooled),
        "dice_seeds_style": ev.seeds_dice(seeds),
        "dice_seeds_style_bg": ev.seeds_dice(seeds_bg),
        "hd95": float(np.mean(hd_all)) if hd_all else float("nan"),
        "loss": loss_sum / len(stems),
        "n_images": len(stems),
        "n_subjects": len(out.subjects),
        "n_empty_empty": int(sum(r["empty_empty"] for r in out.images)),
        "n_hd95_subjects": len(hd_all),
    }
    for c in range(1, classes if classes > 2 else 1):  # over the images showing class c in either mask
        out.summary[f"dice_{c}"] = float(np.mean(class_dice[c])) if class_dice[c] else float("nan")
        out.summary[f"n_images_{c}"] = len(class_dice[c])
    return out
