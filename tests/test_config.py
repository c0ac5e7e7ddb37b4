"""params.yaml: the schema (stages/schema.py), the defaults/overrides layout and python -m stages.config."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.dataset.augment import spec_problems
from pipeline.errors import UsageError
from pipeline.sources import READERS, get_reader
from stages import config
from stages.common import dataset_params
from stages.schema import SECTIONS, DatasetSettings, Settings
from tests.conftest import ROOT, run

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
BEFORE = yaml.safe_load((ROOT / "tests" / "params_before_defaults.yaml").read_text())
# Settings the old file did not spell out, with the value the code used when they were absent.
NEW_KEYS = {("prepare", "num_classes"): 1, ("prepare", "rgb_map"): None, ("train", "head"): "sigmoid",
            ("prepare", "context_slices"): 0,
            ("prepare", "empty_filter_splits"): ["train", "valid"], ("prepare", "target_spacing"): None,
            ("train", "jit_compile"): "auto"}
NEW_SPLIT_KEYS = {"folds": 5, "fold": None, "file": None, "new_subjects": "assign"}  # folds only add splits.json
# values changed on purpose since: the pancreas stand-in has a patient without label and a short label, as
# real mirrors do (issue 11), and the demo skips them
CHANGED = {("pancreas", "prepare", "on_error"): "skip"}


def write(tmp_path: Path, edit) -> Path:
    params = copy.deepcopy(PARAMS)
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    settings = Settings(path)
    found = settings.top_level_problems()
    for key in settings.datasets:
        found += [p for p in settings.problems(key, **config.checks(key)) if p not in found]
    return found


def test_the_repository_params_are_valid():
    assert problems(ROOT / "params.yaml") == []


@pytest.mark.parametrize("key", list(BEFORE["datasets"]))
def test_effective_settings_equal_the_old_per_dataset_blocks(key):
    """Every value the old file set for a dataset is its effective value now (demo outputs unchanged)."""
    old, new = BEFORE["datasets"][key], dataset_params(key, ROOT / "params.yaml")
    assert new["raw"] == old["raw"]
    for name in ("seed", "image_size", "n_jobs"):
        assert new[name] == BEFORE[name]
    for section in SECTIONS:
        expected = dict(old[section])
        expected.update({name: v for (k, sec, name), v in CHANGED.items() if (k, sec) == (key, section)})
        if section == "train":
            assert expected.pop("num_classes") == 1 and new["train"]["head"] == "sigmoid"
        got = {k: v for k, v in new[section].items() if (section, k) not in NEW_KEYS and k != "num_classes"}
        if section == "prepare":
            got["split"] = {k: v for k, v in got["split"].items() if k not in NEW_SPLIT_KEYS}
            assert {k: new["prepare"]["split"][k] for k in NEW_SPLIT_KEYS} == NEW_SPLIT_KEYS
        assert got == expected, section
        for (sec, name), value in NEW_KEYS.items():
            if sec == section:
                assert new[section][name] == value


def test_dataset_blocks_hold_only_what_differs_and_every_section_key():
    def leaves(tree, prefix=()):
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, (*prefix, k))
            else:
                yield (*prefix, k), v

    defaults = dict(leaves(PARAMS["defaults"]))
    for key, block in PARAMS["datasets"].items():
        assert set(block) == {"raw", *SECTIONS}, key  # DVC refuses a tracked params key that is missing
        for path, value in leaves({s: block[s] for s in SECTIONS}):
            assert path not in defaults or defaults[path] != value, f"datasets.{key}.{'.'.join(path)} repeats the default"


def test_defaults_spell_out_every_setting_of_the_schema():
    for section in SECTIONS:
        fields = DatasetSettings.model_fields[section].annotation.model_fields
        assert list(PARAMS["defaults"][section]) == list(fields), section


@pytest.mark.parametrize("edit, line", [
    (lambda p: p["datasets"]["lasc"]["prepare"].update(keep_empty_fractoin=0.5),
     "datasets.lasc.prepare.keep_empty_fractoin: unknown key; did you mean keep_empty_fraction?"),
    (lambda p: p.update(image_sise=256), "image_sise: unknown key; did you mean image_size?"),
    (lambda p: p["datasets"]["lasc"].update(trian={}), "datasets.lasc.trian: unknown key; did you mean train?"),
    (lambda p: p.update(image_size=0), "image_size: input should be greater than 0, found 0"),
    (lambda p: p["datasets"]["pancreas"]["prepare"]["intensity"].update(width=-400),
     "datasets.pancreas.prepare.intensity.width: input should be greater than 0, found -400"),
    (lambda p: p["datasets"]["lasc"]["prepare"]["intensity"].update(low=99.5, high=0.5),
     "datasets.lasc.prepare.intensity: percentiles need 0 <= low < high <= 100, found low=99.5, high=0.5"),
    (lambda p: p["defaults"]["prepare"].update(on_error="FAIL"),
     "defaults.prepare.on_error: input should be 'fail' or 'skip', found 'FAIL'"),
    (lambda p: p["defaults"]["train"].update(epochs="10"),
     "defaults.train.epochs: input should be a valid integer, found '10'"),
    (lambda p: p["datasets"]["ms"]["prepare"].update(split={"train": 0.8}),
     "datasets.ms.prepare.split: train + valid + test must be 1, found 1.1"),
    (lambda p: p["datasets"]["faz"]["train"].update(input_size=100),
     "datasets.faz.train: input_size 100 is not divisible by 2**(num_layers-1) = 16"),
    (lambda p: p["datasets"]["lasc"]["prepare"].update(num_classes=2),
     "datasets.lasc: train.head sigmoid needs prepare.num_classes 1, found 2; set train.head: softmax"),
    (lambda p: p["datasets"]["ms"]["prepare"]["reader"].update(sequense="T1"),
     "datasets.ms.prepare.reader.sequense: unknown option of the ms reader; did you mean sequence?"),
    (lambda p: p["datasets"]["ms"]["prepare"]["reader"].update(sequence="T4"),
     "datasets.ms.prepare.reader.sequence: input should be 'Flair', 'T1' or 'T2', found 'T4'"),
    (lambda p: p["defaults"]["augment"]["transforms"].append({"name": "Rotat", "p": 0.5}),
     "defaults.augment.transforms[10]: Rotat: unknown transform; did you mean Rotate"),
    (lambda p: p["datasets"]["faz"]["augment"].update(transforms=[{"name": "Rotate", "limt": 5}]),
     "datasets.faz.augment.transforms[0]: Rotate: unknown argument 'limt'; did you mean limit?"),
    (lambda p: p["datasets"]["faz"]["augment"].update(transforms=[{"name": "Rotate", "p": 2}]),
     "datasets.faz.augment.transforms[0]: Rotate: p: Input should be less than or equal to 1"),
])
def test_each_problem_is_one_line_naming_the_key_and_the_fix(tmp_path, edit, line):
    found = problems(write(tmp_path, edit))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'params.yaml'}: {line}"), found[0]
    assert "\n" not in found[0]


def test_dataset_keys_are_plain_words(tmp_path):
    """A key reaches dvc.yaml commands and output paths (``data/prepared/${key}``): no shell text."""
    path = write(tmp_path, lambda p: p["datasets"].update({"my heart;rm": dict(p["datasets"]["lasc"])}))
    found = Settings(path).top_level_problems()
    assert found == [f"{path}: datasets.my heart;rm: dataset keys are lower-case letters, digits and _ "
                     "(starting with a letter), e.g. lasc or my_heart"]


def test_dataset_params_raises_a_usage_error_before_any_work(tmp_path):
    path = write(tmp_path, lambda p: p["defaults"]["prepare"].update(keep_empty_fraction=1.5))
    with pytest.raises(UsageError, match=r"params\.yaml: defaults\.prepare\.keep_empty_fraction: input should be "
                                         r"less than or equal to 1, found 1\.5$"):
        dataset_params("lasc", path)


def test_a_bad_value_under_on_error_skip_writes_nothing(tmp_path):
    """A params error never passes for a data problem: no skipped subjects, no output folder."""
    from stages import prepare

    raw = tmp_path / "raw"
    raw.mkdir()
    path = write(tmp_path, lambda p: p["datasets"]["lasc"]["prepare"].update(
        on_error="skip", intensity={"mode": "window", "center": 40, "width": -1}))
    with pytest.raises(SystemExit, match=r"^prepare@lasc: \S*params\.yaml: datasets\.lasc\.prepare\.intensity\.width: "
                                         r"input should be greater than 0, found -1$") as err:
        prepare.main(["--dataset", "lasc", "--raw", str(raw), "--out", str(tmp_path / "out"),
                      "--reports", str(tmp_path / "reports"), "--params", str(path)])
    assert err.value.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]


def test_config_cli_lists_every_problem_and_exits_2(tmp_path):
    def two(p):
        p["defaults"]["prepare"]["on_error"] = "FAIL"
        p["datasets"]["ms"]["train"]["epochs"] = 0
    proc = run([sys.executable, "-m", "stages.config", "--params", str(write(tmp_path, two))], ROOT, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["defaults.prepare.on_error", "datasets.ms.train.epochs"]
    assert "Traceback" not in proc.stderr


def test_config_cli_shows_the_effective_settings(tmp_path):
    proc = run([sys.executable, "-m", "stages.config", "--dataset", "pancreas", "--show"], ROOT)
    shown = yaml.safe_load(proc.stdout)
    assert shown == Settings(ROOT / "params.yaml").dataset("pancreas")
    assert shown["prepare"]["intensity"] == {"mode": "window", "center": 40, "width": 400}
    assert shown["train"]["epochs"] == 25 and shown["synth"] == {"subjects": 6, "seed": 4}
    assert run([sys.executable, "-m", "stages.config"], ROOT).returncode == 0


def test_docs_params_md_is_generated_from_the_schema():
    assert (ROOT / "docs" / "params.md").read_text() == config.markdown(), \
        "run: python -m stages.config --markdown > docs/params.md"


def test_every_setting_has_an_explanation():
    rows = config._rows(DatasetSettings, "")
    assert len(rows) > 40 and all(meaning for _, _, _, meaning in rows)


@pytest.mark.parametrize("key", list(READERS))
def test_reader_options_are_the_readers_keyword_options(key):
    """Options declares exactly the keyword options of discover/load (and pinned_splits), with their defaults."""
    reader = get_reader(key)
    declared = {f.name: f.default for f in dataclasses.fields(reader.Options)}
    keywords = {}
    for func in (reader.discover, reader.load, getattr(reader, "pinned_splits", reader.load)):
        for p in inspect.signature(func).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                keywords.setdefault(p.name, p.default)
    assert set(declared) == set(keywords)
    for name, default in declared.items():
        assert keywords[name] in (default, None) or tuple(keywords[name]) == tuple(default), name
    assert dataclasses.fields(reader.Options) and reader.Options.__dataclass_params__.frozen


def test_loss_and_optimizer_names_mirror_the_models():
    from models.losses import LOSSES, SIGMOID_ONLY, SOFTMAX_ONLY
    from models.training import OPTIMIZERS
    from stages import schema

    assert set(schema.LOSSES) == set(LOSSES) and set(schema.OPTIMIZERS) == set(OPTIMIZERS)
    assert schema.SIGMOID_ONLY == SIGMOID_ONLY and schema.SOFTMAX_ONLY == SOFTMAX_ONLY


def test_transform_problems_come_from_the_augment_module():
    assert spec_problems(PARAMS["defaults"]["augment"]["transforms"]) == []
    assert spec_problems([{"name": "Rotate", "mask_interpolation": 1}])[0].startswith("transforms[0] Rotate: mask_interp")
