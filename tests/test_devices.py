"""Training on accelerators without one: precision rules, two logical CPUs mirrored by the real
train stage, and train/evaluate/infer under the JAX backend (skipped when JAX is not installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
import yaml

from models.devices import choose_jit_compile, choose_precision, place
from pipeline.dataset.prepared import DatasetInfo, write_info
from tests.conftest import ROOT
from tests.test_train import TINY, write_discs

HAS_JAX = importlib.util.find_spec("jax") is not None

# Split the one CPU into two logical devices before TensorFlow starts, then run the stage as DVC would.
TWO_CPUS = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from stages.train import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("setting, caps, policy", [
    (False, [(9, 0)], "float32"),
    ("off", [(9, 0)], "float32"),
    ("auto", [(7, 5), (8, 0)], "mixed_float16"),   # the slowest GPU decides
    (True, [(8, 6)], "mixed_float16"),
    ("auto", [(6, 1)], "float32"),                  # Pascal: no tensor cores
    ("float16", [(7, 0)], "mixed_float16"),
    ("bfloat16", [(9, 0)], "mixed_bfloat16"),
    ("bfloat16", [(7, 5)], "float32"),              # Turing: no bfloat16
    ("auto", [], "float32"),                        # CPU
    ("bfloat16", [], "float32"),
])
def test_precision_fits_the_gpus(setting, caps, policy):
    chosen, note = choose_precision(setting, capabilities=caps)
    assert chosen == policy
    assert (note == "") == (policy != "float32" or setting in (False, "off"))  # a fallback always says why


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16, bfloat16"):
        choose_precision("half", capabilities=[(8, 0)])


@pytest.mark.parametrize("setting, mirrored, chosen", [
    (True, False, True), (True, True, False), ("auto", True, "auto"), (False, False, False)])
def test_jit_compile_is_off_only_where_tensorflow_cannot(setting, mirrored, chosen):
    jit, note = choose_jit_compile(setting, mirrored=mirrored)
    assert jit == chosen and bool(note) == (setting is True and mirrored)


def test_place_on_a_cpu_turns_mixed_precision_off_with_a_note():
    try:
        placement = place(mixed_precision="auto")
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert placement.precision == "float32" and "no GPU" in placement.notes[0]
    assert placement.replicas == 1 and placement.strategy is None and placement.global_batch(4) == 4


def _tiny_set(tmp_path: Path, **train) -> tuple[Path, Path]:
    data = tmp_path / "data"
    for split, n in (("train", 8), ("valid", 4), ("test", 4)):
        write_discs(data / split, n, seed=len(split))
    write_info(data, DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255",
                                 image_size=48, slice_axis=2))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 42, "datasets": {"demo": {"raw": "unused",
        "train": {**TINY, "epochs": 1, **train}, "evaluate": {"threshold": 0.5, "overlays": 1}}}}))
    return data, params


def _python(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_train_stage_mirrors_over_two_logical_devices_with_the_global_batch(tmp_path):
    data, params = _tiny_set(tmp_path, jit_compile=True)
    out = tmp_path / "artifacts"
    proc = _python(["-c", TWO_CPUS, "--dataset", "demo", "--params", str(params),
                    "--data", str(data), "--out", str(out)])
    assert ("train@demo: tensorflow on /device:CPU:0, /device:CPU:1 (MirroredStrategy, 2 replicas, global batch 8), "
            "precision float32, XLA off\n") in proc.stdout
    assert "train@demo: XLA off: TensorFlow cannot jit_compile a MirroredStrategy step" in proc.stdout
    # 8 train images, global batch 8 -> one step per epoch (4 per replica), logged by dvclive
    assert json.loads((out / "live" / "metrics.json").read_text())["step"] == 0
    assert keras.saving.load_model(out / "model.keras").output_shape == (None, 32, 32, 1)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (pip install -e '.[test]' brings it)")
def test_train_evaluate_infer_under_the_jax_backend(tmp_path):
    data, params = _tiny_set(tmp_path, mixed_precision="auto")
    common = ["--dataset", "demo", "--params", str(params)]
    jax = {"KERAS_BACKEND": "jax"}
    out = tmp_path / "artifacts"
    proc = _python(["-m", "stages.train", *common, "--data", str(data), "--out", str(out)], jax)
    assert "train@demo: jax on cpu:0 (one device, 1 replica, global batch 4), precision float32" in proc.stdout
    assert "mixed precision off: no GPU here" in proc.stdout
    _python(["-m", "stages.evaluate", *common, "--data", str(data), "--model", str(out / "model.keras"),
             "--out", str(tmp_path / "metrics"), "--reports", str(tmp_path / "reports")], jax)
    scores = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    details = json.loads((tmp_path / "metrics" / "details.json").read_text())
    assert details["n_images"] == 4 and 0.0 <= scores["dice_volume"] <= 1.0
    _python(["-m", "stages.infer", *common, "--images", str(data / "test" / "images"),
             "--model", str(out / "model.keras"), "--out", str(tmp_path / "infer")], jax)
    assert len(list((tmp_path / "infer").rglob("*.png"))) >= 4


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed (pip install -e '.[test]' brings it)")
def test_jax_backend_data_parallel_over_two_cpu_devices(tmp_path):
    data, params = _tiny_set(tmp_path)
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = _python(["-m", "stages.train", "--dataset", "demo", "--params", str(params),
                    "--data", str(data), "--out", str(tmp_path / "artifacts")], env)
    assert "(DataParallel, 2 replicas, global batch 8)" in proc.stdout
    assert (tmp_path / "artifacts" / "model.keras").is_file()
