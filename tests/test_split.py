"""Subject-wise split: exclusive, stable, close to the ratios, no empty split when avoidable."""

from __future__ import annotations

import pytest

from pipeline.split import assign_splits

RATIOS = {"train": 0.7, "valid": 0.15, "test": 0.15}


def test_every_subject_in_exactly_one_split():
    ids = [f"case_{i:03d}" for i in range(50)]
    got = assign_splits(ids, RATIOS, seed=42)
    assert sorted(got) == sorted(ids) and set(got.values()) == set(RATIOS)


def test_ratios_respected_on_many_subjects():
    got = assign_splits([f"s{i}" for i in range(4000)], RATIOS, seed=7)
    for name, ratio in RATIOS.items():
        share = sum(v == name for v in got.values()) / 4000
        assert abs(share - ratio) < 0.025, (name, share)


def test_stable_when_subjects_are_added_and_seed_matters():
    base = assign_splits([f"s{i}" for i in range(40)], RATIOS, seed=1)
    more = assign_splits([f"s{i}" for i in range(60)], RATIOS, seed=1)
    assert all(more[s] == split for s, split in base.items())
    assert assign_splits(reversed(list(base)), RATIOS, seed=1) == base  # order does not matter
    assert assign_splits(list(base), RATIOS, seed=2) != base


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8])
def test_small_sets_fill_every_positive_split(n):
    for seed in range(20):
        got = assign_splits([f"p{i}" for i in range(n)], RATIOS, seed=seed)
        assert set(got.values()) == set(RATIOS), (n, seed, got)


def test_zero_ratio_split_stays_empty():
    got = assign_splits([f"p{i}" for i in range(10)], {"train": 0.8, "valid": 0.2, "test": 0.0}, seed=3)
    assert "test" not in got.values()


@pytest.mark.parametrize("ratios, message", [
    ({"train": 0.7, "valid": 0.2}, "must sum to 1, found 0.9"),
    ({"train": 1.2, "valid": -0.2}, "valid=-0.2 must be a finite number >= 0"),
    ({"train": "x"}, "is not a number"),
    ({}, "split ratios are empty"),
])
def test_bad_ratios_are_explained(ratios, message):
    with pytest.raises(ValueError, match=message):
        assign_splits(["a"], ratios, seed=0)
