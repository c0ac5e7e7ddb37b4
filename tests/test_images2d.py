"""Decoding 2D image bytes to grey and rasterising LabelMe polygons."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.formats.images2d import decode_grey, labelme_mask


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def labelme(shapes: list[dict], height: int, width: int) -> bytes:
    return json.dumps({"version": "4.5.6", "shapes": shapes, "imagePath": "1.png", "imageData": None,
                       "imageHeight": height, "imageWidth": width}).encode()


def polygon(points: list[list[float]], **extra) -> dict:
    return {"label": "FAZ", "points": points, "shape_type": "polygon", **extra}


GREY = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)


def test_decode_grey_png_and_three_identical_channels():
    assert np.array_equal(decode_grey(png(GREY), name="a.png"), GREY)
    rgb = decode_grey(png(np.repeat(GREY[:, :, None], 3, axis=2)), name="b.PNG")
    assert rgb.shape == (12, 20) and np.array_equal(rgb, GREY)


def test_decode_colour_and_alpha_become_luminance():
    colour = np.zeros((4, 5, 3), np.uint8)
    colour[..., 2] = 200  # red in BGR
    grey = decode_grey(png(colour), name="c.png")
    assert grey.shape == (4, 5) and 55 <= grey[0, 0] <= 65  # 0.299 * 200
    rgba = np.dstack([np.repeat(GREY[:, :, None], 3, axis=2), np.full_like(GREY, 7)])
    assert np.array_equal(decode_grey(png(rgba), name="d.png"), GREY)


def test_decode_jpeg():
    smooth = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    data = cv2.imencode(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    out = decode_grey(data, name="x.jpg")
    assert out.shape == (32, 32) and np.abs(out.astype(int) - smooth).max() < 8


def test_png_extension_with_other_content_is_refused():
    jpeg = cv2.imencode(".jpg", GREY)[1].tobytes()
    with pytest.raises(DatasetError, match=r"a\.zip::d/1\.png: extension \.png says PNG but the content is JPEG"):
        decode_grey(jpeg, name="a.zip::d/1.png")
    with pytest.raises(DatasetError, match=r"1\.png: extension \.png says PNG but the content is not PNG"):
        decode_grey(b"<html>Not found</html>", name="1.png")
    with pytest.raises(DatasetError, match="says JPEG but the content is PNG"):
        decode_grey(png(GREY), name="1.jpeg")


def test_undecodable_and_16_bit():
    truncated = png(GREY)[:40]
    with pytest.raises(DatasetError, match=r"trunc\.png: cannot decode image \(40 bytes\)"):
        decode_grey(truncated, name="trunc.png")
    with pytest.raises(DatasetError, match="expected an 8-bit image, found uint16"):
        decode_grey(png(GREY.astype(np.uint16) * 200), name="deep.png")


def test_all_polygons_filled():
    shapes = [polygon([[2, 3], [6, 3], [6, 8], [2, 8]]), polygon([[12, 1], [15, 1], [15, 4], [12, 4]])]
    out = labelme_mask(labelme(shapes, 10, 20), name="two.json")
    expected = np.zeros((10, 20), np.uint8)
    expected[3:9, 2:7] = 1
    expected[1:5, 12:16] = 1
    assert out.polygons == 2 and out.clipped_points == 0
    assert out.mask.dtype == np.uint8 and np.array_equal(out.mask, expected)


def test_overlapping_polygons_do_not_cancel():
    shapes = [polygon([[0, 0], [9, 0], [9, 9], [0, 9]]), polygon([[3, 3], [6, 3], [6, 6], [3, 6]])]
    assert labelme_mask(labelme(shapes, 10, 10), name="o.json").mask.all()


def test_non_square_image_is_not_transposed():
    # 30 rows x 50 columns; the polygon sits in the right part, beyond row 30, where a transposed mask
    # (50 x 30) could not hold it.
    shapes = [polygon([[40, 5], [48, 5], [48, 9], [40, 9]])]
    out = labelme_mask(labelme(shapes, 30, 50), name="wide.json", image_shape=(30, 50))
    assert out.mask.shape == (30, 50)
    rows, cols = np.nonzero(out.mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 9, 40, 48)


def test_points_outside_the_image_are_clipped_and_counted():
    shapes = [polygon([[-10.5, 2], [60, 2], [60, 4.2], [-3, 4.2]])]
    out = labelme_mask(labelme(shapes, 8, 50), name="wide.json")
    assert out.clipped_points == 4
    assert out.mask[2:5].all() and out.mask.sum() == 3 * 50


def test_float_points_and_rectangle_shapes():
    shapes = [{"label": "x", "points": [[1.4, 1.6], [3.5, 4.4]], "shape_type": "rectangle"},
              {"label": "old file without shape_type", "points": [[6, 0], [8, 0], [8, 2]]}]
    out = labelme_mask(labelme(shapes, 6, 10), name="r.json")
    assert out.mask[2:5, 1:5].all() and out.mask[0, 8] == 1 and out.polygons == 2


@pytest.mark.parametrize("data, message", [
    (b"{not json", "not valid LabelMe JSON"),
    (b"[1, 2]", "expected a LabelMe JSON object"),
    (labelme([], 5, 5), "no shapes"),
    (json.dumps({"shapes": [polygon([[0, 0], [1, 0], [1, 1]])], "imageHeight": 5}).encode(),
     "expected a positive integer 'imageWidth', found None"),
    (labelme([polygon([[0, 0], [1, 1]])], 5, 5), r"shapes\[0\]: a polygon needs at least 3 points, found 2"),
    (labelme([polygon([[0, 0], [1, 1], ["a", 2]])], 5, 5), r"shapes\[0\]: 'points'"),
    (labelme([{"points": [[1, 1], [2, 2]], "shape_type": "circle"}], 5, 5), "shape_type 'circle' not supported"),
])
def test_malformed_labelme(data, message):
    with pytest.raises(DatasetError, match=message):
        labelme_mask(data, name="bad.json")


def test_json_size_must_match_its_image():
    data = labelme([polygon([[0, 0], [3, 0], [3, 3]])], 30, 50)
    with pytest.raises(DatasetError, match=r"m\.json: JSON says imageHeight x imageWidth = 30 x 50 but its image is 50 x 30"):
        labelme_mask(data, name="m.json", image_shape=(50, 30))


def test_png_claiming_a_huge_size_is_refused_before_decoding():
    """A 100-byte PNG whose header claims 60000x60000 pixels must not be inflated (or crash OpenCV)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(DatasetError, match=r"PNG claims 60000x60000 pixels, more than the \d+ allowed"):
        decode_grey(data, name="big.png")
