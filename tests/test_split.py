"""Subject-wise split: exclusive, within one subject of the ratios, nearly stable, no empty split when avoidable."""

from __future__ import annotations

import pytest

from pipeline.dataset.split import assign_folds, assign_splits, plan_splits, read_splits, write_splits
from pipeline.errors import DatasetError

RATIOS = {"train": 0.7, "valid": 0.15, "test": 0.15}


def test_every_subject_in_exactly_one_split():
    ids = [f"case_{i:03d}" for i in range(50)]
    got = assign_splits(ids, RATIOS, seed=42)
    assert sorted(got) == sorted(ids) and set(got.values()) == set(RATIOS)


@pytest.mark.parametrize("n", [6, 7, 10, 20, 33, 82, 400])
def test_counts_within_one_subject_of_the_ratios(n):
    for seed in range(10):
        got = list(assign_splits([f"s{i}" for i in range(n)], RATIOS, seed=seed).values())
        for name, ratio in RATIOS.items():
            assert abs(got.count(name) - n * ratio) < 1, (n, seed, name, got.count(name))


def test_six_subjects_split_four_one_one():
    """The demo's smallest sources: 70/15/15 of 6 is 4.2/0.9/0.9, so 4/1/1 for every seed."""
    for seed in range(50):
        got = list(assign_splits([f"case_{i}" for i in range(6)], RATIOS, seed=seed).values())
        assert (got.count("train"), got.count("valid"), got.count("test")) == (4, 1, 1), seed


def test_adding_a_subject_moves_few_others_and_seed_matters():
    moved = []
    for seed in range(20):
        for n in range(10, 60, 7):
            base = assign_splits([f"s{i}" for i in range(n)], RATIOS, seed=seed)
            more = assign_splits([*base, "newcomer"], RATIOS, seed=seed)
            moved.append(sum(more[s] != split for s, split in base.items()))
    assert max(moved) <= 3 and sum(m == 0 for m in moved) > len(moved) // 3, moved
    base = assign_splits([f"s{i}" for i in range(40)], RATIOS, seed=1)
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


def test_pinned_subjects_keep_their_split_and_others_balance_around_them():
    """A publisher's official test cases (AISD's 52) stay in test; the rest fill the other splits."""
    ids = [f"s{i:03d}" for i in range(100)]
    pins = {f"s{i:03d}": "test" for i in range(0, 40, 4)}  # 10 pinned, below the test share of 15
    for seed in range(5):
        got = assign_splits(ids, RATIOS, seed=seed, pinned=pins)
        assert all(got[s] == "test" for s in pins)
        counts = [list(got.values()).count(name) for name in RATIOS]
        assert counts in ([70, 15, 15], [69, 16, 15], [70, 16, 14], [71, 15, 14], [70, 14, 16], [71, 14, 15]), counts


def test_pins_beyond_a_split_share_fill_it_alone():
    ids = [f"s{i:02d}" for i in range(20)]
    pins = {f"s{i:02d}": "test" for i in range(8)}  # 8 pinned, far above the test share of 3
    got = assign_splits(ids, RATIOS, seed=1, pinned=pins)
    assert sorted(s for s, split in got.items() if split == "test") == sorted(pins)
    rest = [got[s] for s in ids if s not in pins]
    assert rest.count("train") in (9, 10) and rest.count("valid") in (2, 3)  # 12 shared 70:15


def test_no_pins_is_the_unpinned_assignment_and_unknown_pins_are_ignored():
    ids = [f"s{i}" for i in range(30)]
    assert assign_splits(ids, RATIOS, seed=3, pinned={"not-there": "test"}) == assign_splits(ids, RATIOS, seed=3)
    with pytest.raises(ValueError, match=r"pinned to unknown split\(s\) \['holdout'\]"):
        assign_splits(ids, RATIOS, seed=3, pinned={"s1": "holdout"})
# --- pinned subjects, folds, split files ------------------------------------------------------------

@pytest.mark.parametrize("n, k", [(5, 5), (12, 5), (37, 4), (10, 3)])
def test_folds_are_balanced_exclusive_and_seeded(n, k):
    ids = [f"p{i}" for i in range(n)]
    got = assign_folds(ids, k, seed=7)
    sizes = [list(got.values()).count(f) for f in range(k)]
    assert sorted(got) == sorted(ids) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert assign_folds(ids, k, seed=8) != got or n == k
    with pytest.raises(ValueError, match=f"{n + 1} folds need at least {n + 1} train\\+valid subjects"):
        assign_folds(ids, n + 1, seed=7)


def test_plan_keeps_test_out_of_every_fold_and_selects_a_fold():
    ids = [f"c{i:02d}" for i in range(14)]
    plan = plan_splits(ids, RATIOS, seed=1, folds=5)
    test = {s for s, split in plan.subjects.items() if split == "test"}
    assert test and not test & set(plan.folds) and set(plan.folds) | test == set(ids)
    doc = plan.to_json()
    assert len(doc["folds"]) == 5 and all(set(f["train"]) | set(f["val"]) == set(plan.folds) for f in doc["folds"])
    chosen = plan_splits(ids, RATIOS, seed=1, folds=5, fold=2)
    assert {s for s, split in chosen.subjects.items() if split == "valid"} == set(doc["folds"][2]["val"])
    assert {s for s, split in chosen.subjects.items() if split == "test"} == test
    with pytest.raises(ValueError, match="no folds"):
        plan_splits(ids, RATIOS, seed=1, fold=0)
    assert plan_splits(ids[:3], RATIOS, seed=1, folds=5).folds == {}  # too few subjects: no folds


def test_split_file_round_trip_pins_everything_and_new_subjects_follow_the_policy(tmp_path):
    ids = [f"c{i:02d}" for i in range(14)]
    plan = plan_splits(ids, RATIOS, seed=1, folds=5, fold=1)
    write_splits(tmp_path / "splits.json", plan)
    pinned = read_splits(tmp_path / "splits.json")
    assert pinned == plan
    # another seed: the file wins, byte for byte
    again = plan_splits(ids, RATIOS, seed=99, folds=5, fold=1, pinned=pinned)
    write_splits(tmp_path / "again.json", again)
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "splits.json").read_bytes()
    grown = plan_splits([*ids, "new1", "new2"], RATIOS, seed=99, folds=5, pinned=pinned)
    assert {s: grown.subjects[s] for s in ids} == plan.subjects and {s: grown.folds[s] for s in plan.folds} == plan.folds
    as_train = plan_splits([*ids, "new1"], RATIOS, seed=99, folds=5, pinned=pinned, new_subjects="train")
    assert as_train.subjects["new1"] == "train" and "new1" in as_train.folds
    with pytest.raises(ValueError, match="1 subject\\(s\\) are not in the split file: new1"):
        plan_splits([*ids, "new1"], RATIOS, seed=1, pinned=pinned, new_subjects="fail")
    with pytest.raises(ValueError, match="2 subject\\(s\\) in the split file are not in the data: c00, c05"):
        plan_splits([s for s in ids if s not in ("c00", "c05")], RATIOS, seed=1, pinned=pinned)
    with pytest.raises(ValueError, match="the split file has 5 folds but split.folds is 3"):
        plan_splits(ids, RATIOS, seed=1, folds=3, pinned=pinned)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a readable JSON split file"),
    ('{"subjects": {"a": "holdout"}}', "have a split other than train, valid, test"),
    ('{"subjects": {"a": "train", "b": "test"}, "folds": [{"train": [], "val": ["a", "b"]}]}',
     "not train/valid: b"),
    ('[{"train": ["a"], "val": ["b"]}]', 'expected {"subjects"'),
])
def test_bad_split_files_are_explained(tmp_path, text, message):
    path = tmp_path / "splits.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as err:
        read_splits(path)
    assert str(path) in str(err.value)
    with pytest.raises(DatasetError, match="split file not found; copy"):
        read_splits(tmp_path / "missing.json")
