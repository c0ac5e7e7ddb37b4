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
