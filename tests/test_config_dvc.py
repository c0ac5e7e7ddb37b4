"""The defaults/overrides layout with the real dvc: what reruns, `dvc exp run -S`, `dvc exp show` width."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import dvc, edit_params, run

KEYS = ("faz", "ms", "aisd", "pancreas", "lasc")


def _commit(repo, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


def _ran(out: str) -> set[str]:
    """Stages dvc ran or restored from its run cache (the same params seen before), not skipped."""
    return {line.split("'")[1] for line in out.splitlines()
            if line.startswith("Running stage '") or line.startswith("Stage '") and "is cached" in line}


@pytest.mark.slow
def test_a_default_reruns_every_dataset_and_a_dataset_key_only_its_own(dvc_repo):
    def small(p):
        p["image_size"] = 64
        p["defaults"]["synth"]["subjects"] = 2
        p["datasets"]["faz"]["synth"].pop("subjects")
    edit_params(dvc_repo, small)
    _commit(dvc_repo, "small")
    targets = ("synth@faz", "synth@lasc", "prepare@lasc")
    assert _ran(dvc(dvc_repo, "repro", *targets).stdout) == set(targets)
    _commit(dvc_repo, "lock")

    # A default: every dataset's stages of that section (and what follows from their outputs).
    out = dvc(dvc_repo, "exp", "run", *targets, "-S", "defaults.synth.subjects=3").stdout
    assert _ran(out) == set(targets)
    # A key the dataset block does not override yet: `++` adds it; only that dataset reruns.
    assert "subjects" not in yaml.safe_load((dvc_repo / "params.yaml").read_text())["datasets"]["lasc"]["synth"]
    out = dvc(dvc_repo, "exp", "run", *targets, "-S", "++datasets.lasc.synth.subjects=2").stdout
    assert _ran(out) == {"synth@lasc", "prepare@lasc"}
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    assert params["datasets"]["lasc"]["synth"] == {"seed": 5, "subjects": 2}
    assert params["defaults"]["synth"]["subjects"] == 3
    # Without `++` dvc refuses a key the block lacks (hydra: "Key ... is not in struct").
    refused = dvc(dvc_repo, "exp", "run", *targets, "-S", "datasets.faz.synth.subjects=2", check=False)
    assert refused.returncode != 0 and "+datasets.faz.synth.subjects" in refused.stderr + refused.stdout
    # A key the block does override: plain -S (and ++) both work.
    out = dvc(dvc_repo, "exp", "run", *targets, "-S", "datasets.lasc.synth.seed=6").stdout
    assert _ran(out) == {"synth@lasc", "prepare@lasc"}

    # An augment setting never reruns prepare (prepare tracks only the prepare sections).
    edit_params(dvc_repo, lambda p: p["defaults"]["augment"].update(copies=2))
    status = dvc(dvc_repo, "status", "prepare@lasc").stdout
    assert "up to date" in status, status
    edit_params(dvc_repo, lambda p: p["datasets"]["lasc"]["prepare"].update(keep_empty_fraction=0.5))
    assert "prepare@lasc" in dvc(dvc_repo, "status", "prepare@lasc").stdout
    assert "up to date" in dvc(dvc_repo, "status", "synth@faz", "synth@lasc").stdout


def test_a_dataset_block_without_a_section_key_is_refused_by_dvc(dvc_repo):
    """Why every dataset block keeps all five section keys: dvc does not read a missing key as {}."""
    edit_params(dvc_repo, lambda p: p["datasets"]["lasc"].pop("synth"))
    proc = dvc(dvc_repo, "repro", "--dry", "synth@lasc", check=False)
    assert proc.returncode != 0 and "datasets.lasc.synth" in proc.stderr and "missing" in proc.stderr


def _leaves(tree) -> int:
    return sum(_leaves(v) if isinstance(v, dict) else 1 for v in tree.values()) if isinstance(tree, dict) else 1


def test_exp_show_of_the_demo_has_params_once_and_two_metrics_per_dataset(dvc_repo):
    """Columns of `dvc exp show` without flags: params once (not once per dataset), two metrics each.

    Every leaf of params.yaml and every stage dependency is a column whatever we do (dvc shows them
    all); the metrics are ours to keep few: eval.json's headline pair, written here with the keys
    evaluate writes. train.json is written too, to show it is no longer a column.
    """
    stages = yaml.safe_load((dvc_repo / "dvc.yaml").read_text())["stages"]
    metric_files = [m.replace("${key}", key) for key in KEYS for name in stages
                    if stages[name].get("foreach") == "${datasets}"  # (cross-validation stages: off in the demo)
                    for m in stages[name]["do"].get("metrics", [])]
    assert sorted({p.split("/")[-1] for p in metric_files}) == ["eval.json"]
    for key in KEYS:
        for rel, data in ((f"metrics/{key}/eval.json", {"dice_volume": 0.9, "hd95_px": 4.0}),
                          (f"artifacts/{key}/train.json", {"best_epoch": 3, "val_dice": 0.9, "val_loss": 0.1})):
            (dvc_repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (dvc_repo / rel).write_text(json.dumps(data))

    shown = json.loads(dvc(dvc_repo, "exp", "show", "--json").stdout)
    data = shown[0]["rev"] if "rev" in shown[0] and "data" not in shown[0] else shown[0]["data"]
    params = sum(_leaves(f["data"]) for f in data["params"].values())
    metrics = sum(_leaves(f["data"]) for f in data["metrics"].values())
    deps = len(data["deps"])
    header = dvc(dvc_repo, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    report = f"{len(header)} columns: {params} params, {metrics} metrics, {deps} deps"
    assert params == _leaves(yaml.safe_load((dvc_repo / "params.yaml").read_text())), report
    assert params <= 90, report          # was 221: each dataset repeated ~44 identical settings (84 with split
    #                                      pinning, folds, context_slices and the cv block)
    assert sorted(data["metrics"]) == sorted(f"metrics/{key}/eval.json" for key in KEYS), report
    assert metrics == 2 * len(KEYS), report  # was 45: six eval.json keys and three train.json keys per dataset
    assert len(header) == 5 + params + metrics + deps, report  # Experiment, rev, typ, Created, parent
    print(report)


@pytest.mark.slow
def test_dvc_exp_run_set_param_keeps_params_yaml_comments(dvc_repo):
    """dvc 3.67 rewrites params.yaml on -S: comments outside lists survive, lists are rewritten in block
    style and comments inside them are lost, so explanations live in the schema (docs/params.md)."""
    comments = [line for line in (dvc_repo / "params.yaml").read_text().splitlines() if "#" in line]
    dvc(dvc_repo, "exp", "run", "synth@lasc", "-S", "++datasets.lasc.synth.subjects=2")
    after = (dvc_repo / "params.yaml").read_text()
    assert "subjects: 2" in after
    assert [line for line in after.splitlines() if "#" in line] == comments
