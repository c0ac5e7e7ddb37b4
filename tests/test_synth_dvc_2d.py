"""dvc repro of the two zip-shipped 2D stand-ins (faz, aisd) in a throw-away repository."""

from __future__ import annotations

import zipfile

import pytest

from tests.conftest import dvc


@pytest.mark.slow
def test_repro_synth_faz_and_aisd_then_no_op(dvc_repo):
    first = dvc(dvc_repo, "repro", "synth@faz", "synth@aisd")
    assert "Running stage 'synth@faz'" in first.stdout and "Running stage 'synth@aisd'" in first.stdout
    faz_zip = dvc_repo / "data/synthetic/faz/FAZ.zip"
    with zipfile.ZipFile(faz_zip) as zf:
        assert "FAZ_sgementation/deep_all/1.json" in zf.namelist()
    for name in ("image.zip", "mask.zip"):
        assert (dvc_repo / "data/synthetic/aisd" / name).stat().st_size > 0
    before = faz_zip.read_bytes()
    second = dvc(dvc_repo, "repro", "synth@faz", "synth@aisd")
    assert "Running stage" not in second.stdout
    assert faz_zip.read_bytes() == before
