"""Segmentation metrics on numpy label maps: per image, per subject volume, and the seeds' batch Dice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

__all__ = [
    "Counts",
    "counts",
    "dice_from",
    "iou_from",
    "precision_from",
    "recall_from",
    "image_scores",
    "seeds_dice_terms",
    "seeds_dice",
    "surface_distances",
    "hd95",
    "mean_surface_distance",
    "volume_scores",
]


@dataclass(frozen=True)
class Counts:
    """Pixel confusion counts of one foreground class; they add up over slices of a subject."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def empty_empty(self) -> bool:
        """Neither mask has this class: Dice and IoU are 1 by convention, but worth counting apart."""
        return self.tp + self.fp + self.fn == 0


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {truth.shape}")


def counts(pred: np.ndarray, truth: np.ndarray, *, label: int = 1) -> Counts:
    """TP/FP/FN of class ``label`` between two label maps of the same shape (class indices)."""
    _check_pair(pred, truth)
    p = pred == label
    t = truth == label
    tp = int(np.count_nonzero(p & t))
    return Counts(tp=tp, fp=int(np.count_nonzero(p)) - tp, fn=int(np.count_nonzero(t)) - tp)


def dice_from(c: Counts) -> float:
    """2TP / (2TP + FP + FN); 1.0 when both masks are empty."""
    return 1.0 if c.empty_empty else 2 * c.tp / (2 * c.tp + c.fp + c.fn)


def iou_from(c: Counts) -> float:
    """TP / (TP + FP + FN); 1.0 when both masks are empty."""
    return 1.0 if c.empty_empty else c.tp / (c.tp + c.fp + c.fn)


def precision_from(c: Counts) -> float:
    """TP / (TP + FP); NaN when nothing was predicted (undefined, not perfect)."""
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else float("nan")


def recall_from(c: Counts) -> float:
    """TP / (TP + FN); NaN when the ground truth is empty."""
    return c.tp / (c.tp + c.fn) if c.tp + c.fn else float("nan")


def image_scores(pred: np.ndarray, truth: np.ndarray, *, num_classes: int = 2) -> dict[str, float]:
    """Foreground scores of one image: Dice, IoU, precision, recall and ``empty_empty`` (0/1).

    ``num_classes`` counts background, so one foreground class is 2. With several foreground
    classes, each class gets ``dice_<c>``/``iou_<c>`` and ``dice``/``iou`` average the classes
    present in either mask (an image with no foreground anywhere scores 1 and is flagged
    ``empty_empty``); precision/recall pool all foreground classes.
    """
    _check_pair(pred, truth)
    per_class = {c: counts(pred, truth, label=c) for c in range(1, max(2, num_classes))}
    present = [c for c, k in per_class.items() if not k.empty_empty]
    total = sum(per_class.values(), Counts())
    out: dict[str, float] = {
        "dice": float(np.mean([dice_from(per_class[c]) for c in present])) if present else 1.0,
        "iou": float(np.mean([iou_from(per_class[c]) for c in present])) if present else 1.0,
        "precision": precision_from(total),
        "recall": recall_from(total),
        "empty_empty": float(not present),
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
    }
    if len(per_class) > 1:
        for c, k in per_class.items():
            out[f"dice_{c}"] = dice_from(k)
            out[f"iou_{c}"] = iou_from(k)
    return out


def seeds_dice_terms(prob: np.ndarray, truth: np.ndarray, *, num_classes: int, background: bool) -> np.ndarray:
    """Sums the seeds' batch Dice needs: ``[sum(y_true * y_pred), sum(y_true) + sum(y_pred)]``.

    Soft probabilities pooled over every pixel of every image, so the terms add up over batches.
    ``background=False`` is the seeds' ``dice_coef`` of a sigmoid head (faz, ms and pancreas
    seeds): foreground channels only. ``background=True`` is ``dice_coef_multiclass`` of their
    softmax FlexUNet (aisd, lasc seeds): the background channel too, which flatters every score.
    ``prob`` is ``(..., H, W)`` sigmoid foreground probabilities or ``(..., H, W, C)`` softmax
    ones; ``truth`` holds class indices of shape ``(..., H, W)``.
    """
    prob = np.asarray(prob, dtype=np.float64)
    if prob.shape == truth.shape:  # sigmoid: the background channel is 1 - p
        prob = np.stack([1.0 - prob, prob], axis=-1)
    n = prob.shape[-1]
    if prob.shape[:-1] != truth.shape:
        raise ValueError(f"probabilities {prob.shape} do not match ground truth {truth.shape} + classes")
    onehot = np.eye(n, dtype=np.float64)[np.clip(truth, 0, n - 1)]
    if not background:
        onehot, prob = onehot[..., 1:], prob[..., 1:]
    return np.array([float((onehot * prob).sum()), float(onehot.sum() + prob.sum())])


def seeds_dice(terms: np.ndarray, *, smooth: float = 1.0) -> float:
    """The seeds' batch Dice from summed ``seeds_dice_terms``."""
    return float((2.0 * terms[0] + smooth) / (terms[1] + smooth))


def _to_sitk(mask: np.ndarray, spacing: Sequence[float] | None) -> sitk.Image:
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    if spacing is not None:
        img.SetSpacing(tuple(float(s) for s in reversed(spacing)))  # numpy (row, col) -> ITK (x, y)
    return img


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, *, label: int = 1, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances from each boundary pixel of one mask to the other mask's boundary, both ways.

    Returns ``(pred_to_truth, truth_to_pred)`` in pixels (or in the units of ``spacing``, given
    per numpy axis); None when neither mask has ``label``. When only one has it (a missed or an
    invented object) its boundary pixels get the image diagonal, the farthest any surface could
    be (the BraTS convention), and the other direction is empty: a missed slice must count
    against HD95, not vanish from it. Works for 2D slices and 3D volumes; boundaries come from
    SimpleITK's LabelContour and distances from its SignedMaurerDistanceMap.
    """
    _check_pair(pred, truth)
    # A background frame, so an object touching the image edge has its boundary there too
    # (LabelContour finds none for a mask that fills the whole image).
    p = np.pad(pred == label, 1).astype(np.uint8)
    t = np.pad(truth == label, 1).astype(np.uint8)
    if not p.any() and not t.any():
        return None
    if not p.any() or not t.any():
        steps = np.ones(p.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
        diagonal = float(np.linalg.norm(np.asarray(pred.shape) * steps))
        contour = sitk.GetArrayFromImage(sitk.LabelContour(_to_sitk(p if p.any() else t, spacing))) > 0
        far, none = np.full(int(contour.sum()), diagonal), np.zeros(0)
        return (far, none) if p.any() else (none, far)
    contours = [sitk.LabelContour(_to_sitk(m, spacing)) for m in (p, t)]  # face-connected, as MedPy's border
    out = []
    for a, b in ((0, 1), (1, 0)):
        # The map of b's contour itself (a shell, all of it on its own boundary): |map| is the exact
        # distance to the nearest of those pixels. The map of b's mask would measure to ITK's own
        # fully connected contour instead, a few pixels more on curved surfaces.
        dist = sitk.SignedMaurerDistanceMap(
            contours[b], insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
        on_a = sitk.GetArrayFromImage(contours[a]) > 0
        out.append(np.abs(sitk.GetArrayFromImage(dist))[on_a].astype(np.float64))
    return out[0], out[1]


def hd95(distances: Iterable[tuple[np.ndarray, np.ndarray] | None], *, percentile: float = 95.0) -> float:
    """Symmetric 95th-percentile Hausdorff distance over pooled surface distances.

    ``distances`` are ``surface_distances`` results, e.g. of all slices of one subject; None
    entries (the label absent from both masks there) are skipped. The larger of the two directed
    95th percentiles is returned (MedPy's ``hd95`` and MONAI's ``compute_hausdorff_distance`` with
    ``percentile=95``); NaN when no surface is left at all. ``percentile=100`` is the Hausdorff distance.
    """
    pairs = [d for d in distances if d is not None]
    directed = [np.concatenate([p[i] for p in pairs]) for i in (0, 1)] if pairs else []
    found = [np.percentile(d, percentile) for d in directed if d.size]
    return float(max(found)) if found else float("nan")


def mean_surface_distance(distances: Iterable[tuple[np.ndarray, np.ndarray] | None]) -> float:
    """Average symmetric surface distance: the mean over the boundary points of both masks.

    MedPy's ``assd`` averages the two directed means instead; this pools the points (as MONAI's
    ``compute_average_surface_distance(symmetric=True)`` does), so a larger boundary weighs more.
    NaN when no surface is left at all.
    """
    pairs = [d for d in distances if d is not None]
    pooled = np.concatenate([p[i] for p in pairs for i in (0, 1)]) if pairs else np.zeros(0)
    return float(pooled.mean()) if pooled.size else float("nan")


def volume_scores(pred: np.ndarray, truth: np.ndarray, *, spacing: Sequence[float] | None = None,
                  num_classes: int = 2) -> dict[str, float]:
    """3D foreground Dice, HD95 and mean surface distance of one subject on its source grid.

    ``spacing`` is per numpy axis (mm for volumes; None for unit voxels). Axes of length 1 are
    dropped first, so a single 2D image is scored as an image (its boundary is its outline, not
    every pixel). With several foreground classes each class gets ``dice_<c>`` and the headline
    values average the classes present in either volume; a class found in only one of them
    counts at the volume diagonal in the distances. Dice is 1 and the distances NaN when neither
    volume has any foreground (``empty_empty`` 1).
    """
    _check_pair(pred, truth)
    keep = [i for i, n in enumerate(truth.shape) if n > 1] or [0]
    pred, truth = pred.reshape([truth.shape[i] for i in keep]), truth.reshape([truth.shape[i] for i in keep])
    steps = None if spacing is None else [float(spacing[i]) for i in keep]
    classes = range(1, max(2, num_classes))
    per_class = {c: counts(pred, truth, label=c) for c in classes}
    present = [c for c in classes if not per_class[c].empty_empty]
    surfaces = {c: surface_distances(pred, truth, label=c, spacing=steps) for c in present}
    hd = [hd95([surfaces[c]]) for c in present]
    msd = [mean_surface_distance([surfaces[c]]) for c in present]
    total = sum(per_class.values(), Counts())
    out: dict[str, float] = {
        "dice": float(np.mean([dice_from(per_class[c]) for c in present])) if present else 1.0,
        "hd95": float(np.mean(hd)) if hd else float("nan"),
        "msd": float(np.mean(msd)) if msd else float("nan"),
        "empty_empty": float(not present),
        "truth_voxels": total.tp + total.fn,
        "pred_voxels": total.tp + total.fp,
    }
    if len(per_class) > 1:
        for c, k in per_class.items():
            out[f"dice_{c}"] = dice_from(k)
    return out
