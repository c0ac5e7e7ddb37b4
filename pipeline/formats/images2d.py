"""Decoding 2D image files (PNG/JPEG bytes) to grey arrays and rasterising LabelMe polygons to masks."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Collection
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import DatasetError

MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
}
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
MAX_PIXELS = 8192 * 8192  # a 2D slice or en-face scan; larger PNGs are refused before they are inflated


def sniff(data: bytes) -> str | None:
    """The format the bytes start with (``"png"``/``"jpeg"``), or None."""
    for kind, magics in MAGIC.items():
        if data.startswith(magics):
            return kind
    return None


def _decode(data: bytes, *, name: str) -> np.ndarray:
    """PNG/JPEG bytes as OpenCV decodes them unchanged, after checking kind and size."""
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    found = sniff(data)
    expected = EXTENSIONS.get(ext)
    if expected and found != expected:
        what = found.upper() if found else f"not {expected.upper()}"
        raise DatasetError(name, f"extension {ext} says {expected.upper()} but the content is {what} "
                                 f"(starts with {data[:8]!r}); replace it with a real {expected.upper()} file")
    if found == "png" and len(data) >= 24:  # IHDR: width and height before any pixel is inflated
        width, height = struct.unpack(">II", data[16:24])
        if width * height > MAX_PIXELS:
            raise DatasetError(name, f"PNG claims {width}x{height} pixels, more than the {MAX_PIXELS} allowed "
                                     "for a 2D slice; is it really a slice of this source?")
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as exc:
        raise DatasetError(name, f"cannot decode image ({str(exc).strip().splitlines()[-1][:200]})") from None
    if array is None:
        raise DatasetError(name, f"cannot decode image ({len(data)} bytes): damaged or unsupported format")
    return array


def decode_grey(data: bytes, *, name: str) -> np.ndarray:
    """Decode PNG/JPEG bytes to an ``(H, W)`` uint8 grey image.

    Three identical channels (grey stored as RGB) become one; real colour is converted with
    OpenCV's luminance weights; an alpha channel is dropped.

    Raises:
        DatasetError: content that is not what the extension of ``name`` says, undecodable
            bytes, or a bit depth other than 8.
    """
    array = _decode(data, name=name)
    if array.dtype != np.uint8:
        raise DatasetError(name, f"expected an 8-bit image, found {array.dtype}; convert it to 8 bit first")
    if array.ndim == 2:
        return array
    if array.shape[2] == 4:
        array = array[:, :, :3]
    if array.shape[2] == 1:
        return array[:, :, 0]
    if np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 0], array[:, :, 2]):
        return np.ascontiguousarray(array[:, :, 0])
    return cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)


PALETTE = 3  # PNG IHDR colour type of an indexed (palette) image


def decode_label(data: bytes, *, name: str) -> np.ndarray:
    """Decode a mask PNG to ``(H, W)`` uint8 label values as stored.

    A palette PNG gives its indices, not the palette's colours (OpenCV would expand them); an
    RGBA mask whose colour channels are blank gives its alpha channel (the label stored in alpha);
    grey stored as identical RGB channels gives one of them; 16-bit masks with values up to 255
    are accepted.

    Raises:
        DatasetError: as ``decode_grey``, or a colour mask (channels that differ).
    """
    if sniff(data) == "png" and len(data) > 25 and data[25] == PALETTE:
        _decode(data, name=name)  # kind, size and integrity checks first
        from PIL import Image  # Pillow reads palette indices; OpenCV always applies the palette

        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img, dtype=np.uint8).copy()
    array = _decode(data, name=name)
    if array.dtype == np.uint16 and int(array.max()) <= 255:
        array = array.astype(np.uint8)
    if array.dtype != np.uint8:
        raise DatasetError(name, f"expected an 8-bit mask, found {array.dtype} values up to {int(array.max())}")
    if array.ndim == 2:
        return array
    colour, alpha = array[:, :, :3], (array[:, :, 3] if array.shape[2] == 4 else None)
    if alpha is not None and not colour.any() and alpha.any():
        return np.ascontiguousarray(alpha)
    if np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(colour[:, :, 0], colour[:, :, 2]):
        return np.ascontiguousarray(colour[:, :, 0])
    raise DatasetError(name, "colour mask (its R, G and B differ): expected class indices in a grey or palette "
                             "PNG; convert the colours to class numbers first")


@dataclass(frozen=True)
class PolygonMask:
    """A rasterised LabelMe file: ``mask`` is ``(imageHeight, imageWidth)`` uint8 0/1."""

    mask: np.ndarray
    polygons: int
    clipped_points: int
    other_shapes: int = 0  # shapes left out because their label is not one asked for


def parse_labelme(data: bytes, *, name: str) -> dict:
    """The LabelMe JSON document as a dict, with its fields checked.

    Raises:
        DatasetError: not JSON, no ``shapes``, or missing/invalid ``imageHeight``/``imageWidth``.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(name, f"not valid LabelMe JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DatasetError(name, f"expected a LabelMe JSON object, found {type(doc).__name__}")
    shapes = doc.get("shapes")
    if not isinstance(shapes, list) or not shapes:
        raise DatasetError(name, "no shapes: expected 'shapes' with at least one polygon")
    for key in ("imageHeight", "imageWidth"):
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise DatasetError(name, f"expected a positive integer '{key}', found {value!r}")
    return doc


def _shape_points(shape: object, index: int, *, name: str) -> np.ndarray:
    """The ``(K, 2)`` float x,y points of one LabelMe shape as a polygon."""
    where = f"shapes[{index}]"
    if not isinstance(shape, dict):
        raise DatasetError(name, f"{where}: expected an object, found {type(shape).__name__}")
    kind = shape.get("shape_type") or "polygon"  # old LabelMe files have no shape_type
    try:
        points = np.asarray(shape.get("points"), dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(name, f"{where}: 'points' is not a list of [x, y] numbers") from None
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise DatasetError(name, f"{where}: 'points' must be a list of finite [x, y] pairs")
    if kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind != "polygon":
        raise DatasetError(name, f"{where}: shape_type {kind!r} not supported; expected 'polygon'")
    if len(points) < 3:
        raise DatasetError(name, f"{where}: a polygon needs at least 3 points, found {len(points)}")
    return points


def labelme_mask(data: bytes, *, name: str, image_shape: tuple[int, int] | None = None,
                 labels: Collection[str] | None = None) -> PolygonMask:
    """Fill every polygon of a LabelMe JSON into a ``(imageHeight, imageWidth)`` uint8 0/1 mask.

    ``labels`` keeps only shapes whose ``label`` is one of them (compared without case or
    surrounding spaces); the others are counted in ``other_shapes``. A file where no shape has
    such a label is an error naming the labels it has.

    Points outside the image are clipped to its border and counted. ``image_shape`` ``(H, W)``
    of the image the JSON belongs to must agree with the JSON's size (LabelMe stores
    ``imageHeight`` = rows, ``imageWidth`` = columns).

    Raises:
        DatasetError: malformed JSON, no shapes, unsupported shapes, or a size disagreeing with the image.
    """
    doc = parse_labelme(data, name=name)
    height, width = doc["imageHeight"], doc["imageWidth"]
    if image_shape is not None and tuple(image_shape) != (height, width):
        raise DatasetError(name, f"JSON says imageHeight x imageWidth = {height} x {width} but its image is "
                                 f"{image_shape[0]} x {image_shape[1]}; the annotation belongs to another image")
    mask = np.zeros((height, width), np.uint8)
    polygons, clipped, others = [], 0, 0
    wanted = None if labels is None else {str(v).strip().lower() for v in labels}
    for index, shape in enumerate(doc["shapes"]):
        label = str(shape.get("label", "")) if isinstance(shape, dict) else ""
        if wanted is not None and label.strip().lower() not in wanted:
            others += 1
            continue
        points = _shape_points(shape, index, name=name)
        outside = (points[:, 0] < 0) | (points[:, 0] > width - 1) | (points[:, 1] < 0) | (points[:, 1] > height - 1)
        clipped += int(outside.sum())
        points = np.clip(np.rint(points), 0, [width - 1, height - 1]).astype(np.int32)
        polygons.append(points.reshape(-1, 1, 2))
    if not polygons:
        found = sorted({str(sh.get("label")) for sh in doc["shapes"] if isinstance(sh, dict)})
        raise DatasetError(name, f"no shape labelled {' or '.join(sorted(labels or []))}: its shapes are labelled "
                                 f"{found}; set prepare.reader.faz_labels to the label that marks the target")
    for poly in polygons:  # one fill per polygon, so overlapping polygons do not cancel (even-odd rule)
        cv2.fillPoly(mask, [poly], 1)
    return PolygonMask(mask=mask, polygons=len(polygons), clipped_points=clipped, other_shapes=others)
