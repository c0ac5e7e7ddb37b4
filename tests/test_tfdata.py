"""pipeline.learning.tfdata: pairing by name (never by position), decoding, shapes and values."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.learning.tfdata import load_images, load_pairs, make_dataset


def write_set(split_dir: Path, ids: list[int], *, size: int = 16, rgb: bool = False) -> None:
    """Each image is filled with its id; its mask has its foreground in the first ``id`` rows."""
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "masks").mkdir(parents=True, exist_ok=True)
    for i in ids:
        image = np.full((size, size, 3) if rgb else (size, size), 10 * i, np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[:i] = 255
        cv2.imwrite(str(split_dir / "images" / f"p{i:02d}_{i:03d}.png"), image)
        cv2.imwrite(str(split_dir / "masks" / f"p{i:02d}_{i:03d}.png"), mask)


def _ids_from(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image_ids = np.rint(images[:, 0, 0, 0] * 255 / 10).astype(int)
    mask_ids = masks.reshape(len(masks), masks.shape[1], -1).max(axis=2).sum(axis=1).astype(int)
    return image_ids, mask_ids


def test_shuffled_batches_never_mismatch(tmp_path, monkeypatch):
    ids = list(range(1, 13))
    write_set(tmp_path, ids)
    real_iterdir = Path.iterdir
    # A directory listing in an odd order must not matter: pairs come from names.
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(real_iterdir(self), reverse="mask" in self.name)))
    ds = make_dataset(tmp_path, input_size=None, channels=1, batch_size=5, shuffle=True, seed=3)
    seen = []
    for epoch in range(2):
        for images, masks in ds:
            image_ids, mask_ids = _ids_from(np.asarray(images), np.asarray(masks))
            np.testing.assert_array_equal(image_ids, mask_ids)
            seen.extend(image_ids.tolist())
    assert sorted(seen[:12]) == ids and seen[:12] != seen[12:]  # shuffled, reshuffled each epoch


def test_shuffle_is_seeded(tmp_path):
    write_set(tmp_path, list(range(1, 10)))

    def order(seed):
        ds = make_dataset(tmp_path, input_size=None, channels=1, batch_size=9, shuffle=True, seed=seed)
        return [_ids_from(np.asarray(x), np.asarray(y))[0].tolist() for x, y in ds.take(1)]

    assert order(1) == order(1)
    assert order(1) != order(2)


@pytest.mark.parametrize(("rgb", "channels"), [(False, 1), (False, 3), (True, 1), (True, 3)])
def test_values_shapes_and_channels(tmp_path, rgb, channels):
    write_set(tmp_path, [4, 8], size=16, rgb=rgb)
    stems, images, masks = load_pairs(tmp_path, input_size=8, channels=channels)
    assert stems == ["p04_004", "p08_008"]
    assert images.shape == (2, 8, 8, channels) and images.dtype == np.float32
    np.testing.assert_allclose(images[:, 0, 0, 0], [40 / 255, 80 / 255], atol=1e-6)
    assert masks.shape == (2, 8, 8) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}  # nearest only: no in-between labels
    assert masks[0].sum() == 2 * 8 and masks[1].sum() == 4 * 8  # 4 and 8 of 16 rows, halved


def test_one_hot_targets_for_several_classes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.array([[0, 1], [2, 2]], np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "a_0.png"), np.zeros((2, 2), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a_0.png"), mask)
    (x, y), = make_dataset(tmp_path, input_size=4, channels=1, num_classes=2, head="softmax", batch_size=1)
    y = np.asarray(y)
    assert y.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(y[0].argmax(-1), np.kron(mask, np.ones((2, 2), int)))
    np.testing.assert_array_equal(y.sum(-1), 1)


def test_binary_as_two_softmax_outputs_reads_0_255(tmp_path):
    write_set(tmp_path, [3], size=8)
    (x, y), = make_dataset(tmp_path, input_size=None, channels=1, num_classes=1, head="softmax", batch_size=1)
    assert np.asarray(y).shape == (1, 8, 8, 2) and np.asarray(y)[0, :, :, 1].sum() == 3 * 8


def test_sigmoid_head_with_several_classes_is_refused(tmp_path):
    from pipeline.errors import UsageError

    write_set(tmp_path, [3], size=8)
    with pytest.raises(UsageError, match="set train.head: softmax"):
        make_dataset(tmp_path, input_size=None, channels=1, num_classes=2, head="sigmoid", batch_size=1)


@pytest.mark.parametrize("loader", ["make_dataset", "load_pairs"])
def test_one_class_mask_that_is_not_0_255_stops_training_and_scoring(tmp_path, loader):
    """The strict rule of pipeline.slices.masks: 128 in a one-class mask is an error, not foreground."""
    import tensorflow as tf

    write_set(tmp_path, [3], size=8)
    mask = np.zeros((8, 8), np.uint8)
    mask[:3] = 128
    cv2.imwrite(str(tmp_path / "masks" / "p03_003.png"), mask)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one-class mask must be 0/255"):
        if loader == "make_dataset":
            list(make_dataset(tmp_path, input_size=None, channels=1, batch_size=1))
        else:
            load_pairs(tmp_path, input_size=None, channels=1)


def test_load_images_matches_load_pairs(tmp_path):
    write_set(tmp_path, [2, 5], rgb=True)
    _, images, _ = load_pairs(tmp_path, input_size=8, channels=3)
    paths = sorted((tmp_path / "images").iterdir())
    np.testing.assert_array_equal(load_images(paths, input_size=8, channels=3), images)


def test_label_outside_the_classes_stops_training(tmp_path):
    """Label 3 with two foreground classes (indices 0..2) must fail, not become an all-zero one-hot row."""
    import tensorflow as tf

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a_0.png"), np.zeros((2, 2), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a_0.png"), np.array([[0, 1], [2, 3]], np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=2"):
        list(make_dataset(tmp_path, input_size=None, channels=1, num_classes=2, head="softmax", batch_size=1))


def test_load_pairs_of_chosen_stems_only(tmp_path):
    write_set(tmp_path, [1, 2, 3, 4])
    stems, images, masks = load_pairs(tmp_path, input_size=None, channels=1, stems=["p03_003", "p01_001"])
    assert stems == ["p01_001", "p03_003"]
    assert _ids_from(images, masks)[0].tolist() == [1, 3] and images.dtype == np.float32
    all_stems, all_images, _ = load_pairs(tmp_path, input_size=None, channels=1)
    np.testing.assert_array_equal(images, all_images[[0, 2]])
    with pytest.raises(DatasetError, match="none of the stems"):
        load_pairs(tmp_path, input_size=None, channels=1, stems=["nope"])
