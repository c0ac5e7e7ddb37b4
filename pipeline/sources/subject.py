"""What a source reader hands to the rest of the pipeline: one subject's image and mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Layout = Literal["volume", "stack"]


@dataclass(frozen=True)
class SubjectRef:
    """A picklable pointer to one subject in a raw source, cheap to list and send to a worker.

    ``files`` are the source files (paths, or ``archive.zip::member`` for zip members) in the
    order the reader needs them; ``extra`` holds reader-specific hints (e.g. slice names).
    ``problem`` is a per-subject problem found while listing (e.g. a label whose CT series is not
    in a partial download), as ``DatasetError`` text: prepare stops on it under ``on_error: fail``
    and leaves the subject out of the split under ``skip``.
    """

    subject_id: str
    files: tuple[str, ...]
    extra: tuple[tuple[str, str], ...] = ()
    problem: str | None = None

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.extra).get(name, default)


@dataclass(frozen=True, eq=False)
class Subject:
    """One subject (patient, case, volume or 2D scan) as read from its source.

    Conventions:
      * ``layout == "volume"``: ``image`` and ``mask`` are ``(X, Y, Z)`` arrays in RAS+ canonical
        orientation (nibabel ``as_closest_canonical``); ``affine`` maps those voxel indices to
        RAS+ millimetres; ``spacing`` is ``(sx, sy, sz)`` in mm.
      * ``layout == "stack"``: ``image`` and ``mask`` are ``(N, H, W)`` stacks of 2D slices already
        in display orientation (row 0 at the top), ``slice_names`` names each slice;
        ``spacing`` is ``(row, col)`` pixel spacing (1.0 when unknown) and ``affine`` is None.
      * ``image`` is float32, or the file's own integer type when it stores whole numbers of at
        most 16 bits (exact in float32; see ``formats.nifti.load_volume``), in physical units: HU
        for ``modality == "CT"``, arbitrary units for ``"MR"``, 0..255 grey for already-8-bit
        sources (``"8bit"``).
      * ``mask`` is uint8 class indices ``0..C-1`` (0 background), same shape as ``image``; None
        for an unlabelled scan read by a reader's ``load_images`` (inference on new data).
    """

    subject_id: str
    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, ...]
    sources: tuple[str, ...]
    modality: Literal["CT", "MR", "8bit"]
    layout: Layout
    affine: np.ndarray | None = None
    slice_names: tuple[str, ...] | None = None
    orientation: str = "RAS"
    meta: dict = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        return self.image.shape[0] if self.layout == "stack" else self.image.shape[2]
