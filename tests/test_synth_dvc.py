"""synth@<key> under the real dvc: outputs appear, and a second repro is a no-op."""

from __future__ import annotations

import pytest

from tests.conftest import dvc


@pytest.mark.slow
def test_dvc_repro_synth_ms_and_lasc_then_noop(dvc_repo):
    dvc(dvc_repo, "repro", "synth@ms", "synth@lasc")
    ms = dvc_repo / "data" / "synthetic" / "ms"
    assert (ms / "Patient-1" / "1-Flair.nii").is_file() and (ms / "Patient-1" / "1-LesionSeg-Flair.nii").is_file()
    assert (ms / "patient_info.xlsx").is_file()
    task = dvc_repo / "data" / "synthetic" / "lasc" / "Left_Atrial_Segmentation"  # the Kaggle form
    assert not (task / "dataset.json").exists() and (task / "imagesTr" / "la_003.nii").is_file()
    assert (task / "imagesTr" / "._la_003.nii").is_file()
    assert (dvc_repo / "dvc.lock").is_file()

    again = dvc(dvc_repo, "repro", "synth@ms", "synth@lasc")
    out = again.stdout + again.stderr
    assert "didn't change" in out or "up to date" in out, out
    assert "Running stage" not in out, out
