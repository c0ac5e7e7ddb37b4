"""A real `dvc exp run -S` on a tiny config shows up in `dvc exp show` with its params and its two
headline metrics, and `--only-changed` gives a table that fits a terminal."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from pipeline.dataset.prepared import read_mask
from pipeline.evaluation.metrics import counts, dice_from
from pipeline.learning.volume import volume_from_geometry
from tests.conftest import dvc, edit_params, run


def _tiny(params: dict) -> None:
    params["image_size"] = 64
    params["n_jobs"] = 1
    lasc = params["datasets"]["lasc"]
    lasc["synth"]["subjects"] = 5
    lasc["train"].update(epochs=1, input_size=32, num_layers=3, base_filters=4, batch_size=4, snapshot_images=1)


def _revs(entries: list[dict]):
    """Every (name, data) in exp show's JSON, baselines and experiments alike."""
    for entry in entries:
        yield entry.get("name") or entry["rev"], entry["data"]
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs", []):
                yield rev.get("name") or rev["rev"], rev["data"]


def _metric_columns(entries: list[dict]) -> set[str]:
    """The metric columns `dvc exp show` draws from its JSON: every file:key of every revision."""
    return {f"{path}:{key}" for _, data in _revs(entries)
            for path, metric in (data.get("metrics") or {}).items() for key in (metric.get("data") or {})}


def _check_volumes(repo) -> None:
    """infer's NIfTI volumes carry the source's canonical affine, and the prepared ground truth put
    back through the same path lands on the source's label voxels."""
    prepared = repo / "data/prepared/lasc"
    geometry = json.loads((prepared / "geometry.json").read_text())
    tested = [s for s, e in geometry.items() if e["split"] == "test"]
    assert tested
    for subject in tested:
        stored = nib.load(repo / f"data/synthetic/lasc/Left_Atrial_Segmentation/labelsTr/{subject}.nii")  # Kaggle form
        predicted = nib.load(repo / f"artifacts/lasc/infer/volumes/{subject}.nii.gz")
        # the source label file's own grid: shape, axis order and affine as stored (LPS, LAS, ...)
        assert np.allclose(predicted.affine, stored.affine, atol=1e-4)
        assert predicted.shape == stored.shape
        assert nib.aff2axcodes(predicted.affine) == nib.aff2axcodes(stored.affine)
        assert predicted.header.get_intent()[0] == "label"
        source = nib.as_closest_canonical(stored)
        truth = {n: read_mask(prepared / "test/masks" / n, num_classes=1) for n in geometry[subject]["slices"].values()}
        rebuilt, _ = volume_from_geometry(geometry[subject], truth)
        # 64-pixel prepared slices and back: not exact, but on the right voxels (a flip scores ~0)
        assert dice_from(counts(rebuilt, np.asarray(source.dataobj).astype(np.uint8))) > 0.8


@pytest.mark.slow
def test_exp_run_set_param_appears_in_exp_show(dvc_repo):
    edit_params(dvc_repo, _tiny)
    dvc(dvc_repo, "repro", "evaluate@lasc", "infer@lasc")
    _check_volumes(dvc_repo)
    run(["git", "add", "-A"], dvc_repo)
    run(["git", "commit", "-q", "-m", "tiny baseline"], dvc_repo)
    details = (dvc_repo / "metrics/lasc/details.json").read_text()

    # threshold 0: every pixel predicted foreground, so recall is exactly 1 whatever the model learnt
    proc = dvc(dvc_repo, "exp", "run", "evaluate@lasc", "-n", "thr0", "-S", "++datasets.lasc.evaluate.threshold=0.0")
    assert "Stage 'train@lasc' didn't change, skipping" in proc.stdout
    assert "Running stage 'evaluate@lasc'" in proc.stdout

    shown = json.loads(dvc(dvc_repo, "exp", "show", "--json", "--no-pager").stdout)
    revs = dict(_revs(shown))
    assert "thr0" in revs and "main" in revs
    for name, threshold in (("main", 0.5), ("thr0", 0.0)):
        data = revs[name]
        params = data["params"]["params.yaml"]["data"]
        effective = {**params["defaults"]["evaluate"], **params["datasets"]["lasc"]["evaluate"]}
        assert effective["threshold"] == threshold
        metrics = data["metrics"]["metrics/lasc/eval.json"]["data"]
        assert list(metrics) == ["dice_volume", "hd95_mm"]
        assert 0.0 <= metrics["dice_volume"] <= 1.0
    # the headline pair is every metric column: train.json (an output) and details.json are not
    assert _metric_columns(shown) == {"metrics/lasc/eval.json:dice_volume", "metrics/lasc/eval.json:hd95_mm"}
    # the workspace holds the last experiment's outputs: at threshold 0 nothing is missed
    assert json.loads((dvc_repo / "metrics/lasc/details.json").read_text())["recall_pixels"] == 1.0
    assert revs["thr0"]["metrics"]["metrics/lasc/eval.json"]["data"] != \
        revs["main"]["metrics"]["metrics/lasc/eval.json"]["data"]

    # one param changed: --only-changed shows it and the metrics it moved, not the ~150 columns
    header = dvc(dvc_repo, "exp", "show", "--csv", "--only-changed").stdout.splitlines()[0].split(",")
    assert "datasets.lasc.evaluate.threshold" in header, header
    assert {c.rsplit(":", 1)[-1] for c in header} >= {"dice_volume", "hd95_mm"}, header
    assert len(header) <= 20, header
    print(f"exp show --only-changed: {len(header)} columns: {header}")

    # details.json (the figures eval.json no longer holds) is cached like eval.json: checking the
    # baseline out again restores the pair together, not the experiment's details beside main's eval.json
    run(["git", "checkout", "--", "params.yaml", "dvc.lock"], dvc_repo)
    dvc(dvc_repo, "checkout", "evaluate@lasc")
    assert (dvc_repo / "metrics/lasc/details.json").read_text() == details
    assert "Data and pipelines are up to date." in dvc(dvc_repo, "status", "evaluate@lasc").stdout
