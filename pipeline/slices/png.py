"""A fast standard PNG writer for the 8-bit slices the pipeline writes: one row filter and isal deflate.

``cv2.imencode`` spends ~1 ms on a 512x512 grey slice, most of it in zlib; filtering every row
with PNG's "sub" filter in numpy and deflating with python-isal at level 1 encodes the same slice
~3.9x faster, ~5% larger (masks, already tiny, ~35% larger). The files are plain PNG (8-bit grey
or RGB, one IDAT), lossless and the same bytes for the same array on every run; any PNG reader
(OpenCV, PIL, tf.io.decode_png) reads them. Arrays follow OpenCV's convention: 3 channels are BGR
and come back as BGR from ``cv2.imread``. Other dtypes and shapes go to ``cv2.imencode``.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

try:
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover  (pinned; zlib gives valid PNGs too, only slower and other bytes)
    _deflate = zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2}  # grey, RGB
_SUB = 1  # PNG filter type 1: each byte minus the byte one pixel to its left


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W)`` grey or ``(H, W, 3)`` BGR array (else OpenCV's encoder)."""
    channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else 0)
    if array.dtype != np.uint8 or channels not in _COLOUR_TYPE or 0 in array.shape:
        ok, buf = cv2.imencode(".png", array)
        if not ok:
            raise RuntimeError(f"cv2.imencode failed for an array of shape {array.shape}")
        return buf.tobytes()
    height, width = array.shape[:2]
    rows = (array[..., ::-1] if channels == 3 else array).reshape(height, width * channels)  # BGR -> RGB
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = _SUB
    filtered[:, 1 : 1 + channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])  # wraps mod 256
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", _deflate.compress(filtered.tobytes(), 1))
            + _chunk(b"IEND", b""))
