"""pipeline.slices.png: the fast PNG writer is lossless, deterministic and standard (cv2 and PIL read it)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from pipeline.slices.png import encode_png

shapes = st.one_of(hnp.array_shapes(min_dims=2, max_dims=2, max_side=40),
                   st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3)))


@settings(max_examples=80, deadline=None)
@given(array=hnp.arrays(np.uint8, shapes))
def test_cv2_and_pil_read_back_the_array(array):
    png = encode_png(array)
    assert png == encode_png(array.copy())  # deterministic
    back = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and np.array_equal(back, array)  # BGR in, BGR out, as cv2.imencode
    with Image.open(io.BytesIO(png)) as pil:
        pil.load()
        assert pil.mode == ("L" if array.ndim == 2 else "RGB")
        assert np.array_equal(np.asarray(pil), array if array.ndim == 2 else array[..., ::-1])


def test_views_are_encoded_as_their_values():
    base = np.arange(60 * 70 * 3, dtype=np.uint32).astype(np.uint8).reshape(60, 70, 3)
    view = base[::-2, 5:50]  # strided, reversed: not contiguous
    assert cv2.imdecode(np.frombuffer(encode_png(view), np.uint8), cv2.IMREAD_UNCHANGED).tolist() == view.tolist()


def test_a_slice_is_smaller_than_raw_and_near_opencvs_size():
    rng = np.random.default_rng(0)
    x, y = np.ogrid[:512, :512]
    body = (((x - 256) / 200.0) ** 2 + ((y - 256) / 160.0) ** 2 <= 1) * 120
    image = (body + rng.normal(0, 6, (512, 512))).clip(0, 255).astype(np.uint8)
    ours, opencv = len(encode_png(image)), cv2.imencode(".png", image)[1].size
    assert ours < image.size and ours < 1.15 * opencv


@pytest.mark.parametrize("array", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 4), np.uint8)])
def test_other_dtypes_and_channels_go_to_opencv(array):
    assert encode_png(array) == cv2.imencode(".png", array)[1].tobytes()


# --- reading back -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 53), (16, 16, 3), (1, 1), (512, 512)])
def test_read_png_of_our_files_equals_cv2_imread(tmp_path, shape):
    from pipeline.slices.png import _decode_simple, read_png

    array = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "a.png"
    path.write_bytes(encode_png(array))
    assert _decode_simple(path.read_bytes()) is not None  # the fast path, not OpenCV's
    got = read_png(path)
    assert got.dtype == np.uint8 and got.shape == array.shape and np.array_equal(got, array)
    assert np.array_equal(got, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))


@pytest.mark.parametrize("write", ["cv2-level9", "pil-paeth", "pil-palette", "cv2-16bit"])
def test_read_png_of_other_files_is_whatever_cv2_reads(tmp_path, write):
    from PIL import Image

    from pipeline.slices.png import read_png

    rng = np.random.default_rng(5)
    grey = cv2.GaussianBlur(rng.integers(0, 256, (64, 48), dtype=np.uint8), (5, 5), 0)
    path = tmp_path / "b.png"
    if write == "cv2-level9":
        cv2.imwrite(str(path), grey, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    elif write == "pil-paeth":  # PIL's adaptive filters use up, average and Paeth rows too
        Image.fromarray(grey).save(path, optimize=True)
    elif write == "pil-palette":
        Image.fromarray(grey).convert("P").save(path)
    else:
        cv2.imwrite(str(path), grey.astype(np.uint16) * 257)
    expected = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    got = read_png(path)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_read_png_refuses_what_cv2_refuses(tmp_path):
    from pipeline.slices.png import read_png

    good = encode_png(np.full((20, 20), 7, np.uint8))
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[40] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(corrupt))
    (tmp_path / "text.png").write_text("not a png")
    assert read_png(tmp_path / "missing.png") is None
    for name in ("cut.png", "text.png"):
        assert read_png(tmp_path / name) is None and cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED) is None
    got = read_png(tmp_path / "crc.png")  # the fast path refuses it; OpenCV then decides, as cv2.imread would
    expected = cv2.imread(str(tmp_path / "crc.png"), cv2.IMREAD_UNCHANGED)
    assert (got is None and expected is None) or np.array_equal(got, expected)
