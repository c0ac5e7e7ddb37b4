"""The throughput benchmark runs end to end on a small size and says whether the input keeps up."""

from __future__ import annotations

import re
import sys

import pytest

from benchmarks.gpu_unet_bench import verdict
from tests.conftest import ROOT, run


def test_verdict_names_the_bottleneck():
    assert verdict(100.0, 40.0) == "input keeps up (2.5x what the model takes)"
    slow = verdict(10.0, 40.0)
    assert slow.startswith("input is the bottleneck: it feeds 10.0 images/s, the model could take 40.0")


@pytest.mark.slow
def test_bench_measures_input_and_model_and_compares_them():
    out = run([sys.executable, "-m", "benchmarks.gpu_unet_bench", "--configs", "demo", "--size", "64",
               "--images", "8", "--steps", "2", "--batch", "2"], ROOT).stdout
    assert "tensorflow on /device:CPU:0 (one device, 1 replica, global batch 2), precision float32" in out
    assert "mixed precision off: no GPU here" in out
    assert re.search(r"input, 64x64 RGB PNG pairs, batch 2: [\d.]+ images/s decoding \(epoch 1\), "
                     r"[\d.]+ images/s from the cache", out)
    assert re.search(r"demo float32: [\d.]+ images/s per training step; epoch 1: input (keeps up|is the bottleneck)", out)
    assert "mixed_float16" not in out  # no GPU: no mixed-precision run


def test_prepare_bench_runs_small_and_prints_every_ratio():
    """The bench stays runnable: tiny volumes, one repeat, every figure printed (med2image may be absent)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "benchmarks.prepare_bench", "--volumes", "2", "--slices", "3",
                           "--one", "4", "--peak-slices", "4", "--repeats", "1", "--med2image", "/nonexistent"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for phrase in ("ratio ours/floor:", "same, 2 workers:", "one volume 512x512x4:", "med2image: not installed",
                   "2 volumes, 1 vs 2 worker processes:", "one volume, 1 vs 2 threads:", "gzip NIfTI read:",
                   "peak memory"):
        assert phrase in proc.stdout, (phrase, proc.stdout)
