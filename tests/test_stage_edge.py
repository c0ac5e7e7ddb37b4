"""The stage edge: every stage's ordinary mistakes are one line and a documented exit code, TensorFlow
stays silent unless --verbose, and --help imports none of the heavy libraries."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synth", "prepare", "augment", "train", "evaluate", "infer", "check")
HEAVY = ("tensorflow", "keras", "dvclive", "matplotlib", "albumentations", "SimpleITK")
# TensorFlow's C++ log (glog style "I0000 00:00:..." lines, absl's preamble) and its usual banners
TF_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN custom operations|cpu_feature_guard"
                    r"|This TensorFlow binary is optimized", re.M)


def stage(name: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m stages.<name> ...`` from the repository root, with no TF log level preset."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line(proc: subprocess.CompletedProcess, label: str, code: int, *expected: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(label)]
    assert len(lines) == 1, proc.stderr
    assert lines[0] == proc.stderr.rstrip("\n").rsplit("\n", 1)[-1].split("\r")[-1], "the error line comes last"
    for text in expected:
        assert text in lines[0], lines[0]


def write_pair(folder: Path, stem: str, size: int = 32) -> None:
    for kind in ("images", "masks"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        picture = np.zeros((size, size), np.uint8)
        picture[8:20, 8:20] = 255
        cv2.imwrite(str(folder / kind / f"{stem}.png"), picture)


def test_importing_a_stage_imports_no_heavy_library():
    code = ("import sys\n"
            f"for name in {STAGES!r}: __import__('stages.' + name)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("name", STAGES)
def test_help_exits_zero_and_documents_the_exit_codes(name):
    proc = stage(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--verbose" in proc.stdout and "2 a params or command-line problem" in " ".join(proc.stdout.split())
    assert proc.stderr == ""


def test_bad_flag_is_one_line_exit_2():
    assert_one_line(stage("prepare", "--dataset", "lasc", "--raw", "r", "--out", "o", "--on-error", "FAIL"),
                    "prepare@lasc: ", 2, "--on-error", "invalid choice", "see --help")
    assert_one_line(stage("infer", "--dataset", "lasc"), "infer@lasc: ", 2, "required")


def test_output_under_a_file_is_one_line_exit_1(tmp_path):
    (tmp_path / "file").write_text("mine")
    proc = stage("synth", "--dataset", "lasc", "--out", str(tmp_path / "file" / "raw"), "--subjects", "1")
    assert_one_line(proc, "synth@lasc: ", 1, str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "mine"


def test_missing_raw_folder_is_one_line_exit_1(tmp_path):
    proc = stage("prepare", "--dataset", "lasc", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert_one_line(proc, "prepare@lasc: ", 1, str(tmp_path / "nope"), "folder not found")
    assert not (tmp_path / "o").exists()


def test_augment_of_a_folder_that_is_not_a_prepared_set(tmp_path):
    (tmp_path / "in").mkdir()
    proc = stage("augment", "--dataset", "lasc", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "o"))
    assert_one_line(proc, "augment@lasc: ", 1, "dataset.json: not found")


def test_infer_on_an_empty_folder_and_a_missing_model(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = stage("infer", "--dataset", "lasc", "--images", str(tmp_path / "empty"),
                 "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o"))
    assert_one_line(proc, "infer@lasc: ", 1, "no .png images found")
    write_pair(tmp_path / "set", "a_0000")
    proc = stage("infer", "--dataset", "lasc", "--images", str(tmp_path / "set" / "images"),
                 "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o"))
    assert_one_line(proc, "infer@lasc: ", 1, str(tmp_path / "m.keras"), "model file not found")
    assert not (tmp_path / "o").exists()


def test_evaluate_with_a_missing_model(tmp_path):
    from pipeline.dataset.prepared import DatasetInfo, write_info

    write_pair(tmp_path / "set" / "test", "a_0000")
    write_info(tmp_path / "set", DatasetInfo(num_classes=1, channels=1, mask_encoding="binary_0_255",
                                             image_size=32, slice_axis=2))
    proc = stage("evaluate", "--dataset", "lasc", "--data", str(tmp_path / "set"),
                 "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o"),
                 "--reports", str(tmp_path / "r"))
    assert_one_line(proc, "evaluate@lasc: ", 1, "model file not found")


def test_train_on_an_empty_folder(tmp_path):
    proc = stage("train", "--dataset", "lasc", "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_one_line(proc, "train@lasc: ", 1, str(tmp_path / "dataset.json"))
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_real_run_prints_no_tensorflow_log_unless_verbose(tmp_path):
    import keras

    inp = keras.Input((None, None, 1))
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    model.save(tmp_path / "m.keras")
    write_pair(tmp_path / "set", "a_0000")
    args = ("--dataset", "lasc", "--images", str(tmp_path / "set" / "images"), "--model", str(tmp_path / "m.keras"))
    quiet = stage("infer", *args, "--out", str(tmp_path / "o1"))
    assert quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "o1" / "masks" / "a_0000.png").is_file()
    assert not TF_LOG.search(quiet.stderr), quiet.stderr
    loud = stage("infer", *args, "--out", str(tmp_path / "o2"), "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert TF_LOG.search(loud.stderr), "--verbose should let TensorFlow's own log through"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_exits_130_quietly_and_writes_nothing(tmp_path):
    raw = tmp_path / "raw"
    subprocess.run([sys.executable, "-m", "stages.synth", "--dataset", "lasc", "--out", str(raw),
                    "--subjects", "24"], cwd=ROOT, check=True, capture_output=True)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "stages.prepare", "--dataset", "lasc", "--raw", str(raw),
                             "--out", str(out), "--n-jobs", "2"], cwd=ROOT, start_new_session=True,
                            # a shell's background job (`make test &`, some CI runners) starts with SIGINT
                            # ignored, and Python keeps an inherited SIG_IGN: give the stage a terminal's default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(tmp_path.glob(".tmp-out-*/*/images")):  # the scratch set exists: work has begun
                break
            time.sleep(0.005)
        assert proc.poll() is None, "prepare finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the stage and its workers
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.rstrip().endswith("prepare@lasc: interrupted; outputs left as they were")
    assert not out.exists() and not list(tmp_path.glob(".tmp-out-*"))
