"""dvc repro synth@pancreas in a throw-away repository: the TCIA tree appears and the reader pairs it."""

from __future__ import annotations

import pytest

from pipeline.sources import pancreas
from tests.conftest import dvc


@pytest.mark.slow
def test_repro_synth_pancreas(dvc_repo):
    first = dvc(dvc_repo, "repro", "synth@pancreas")
    assert "Running stage 'synth@pancreas'" in first.stdout
    raw = dvc_repo / "data/synthetic/pancreas"
    series = sorted(raw.glob("Pancreas-CT/PANCREAS_*/*/*"))
    labels = sorted(raw.glob("TCIA_pancreas_labels-02-05-2017/label*.nii.gz"))
    assert len(series) == len(labels) == 6
    assert all(any(s.glob("1-001.dcm")) for s in series)
    refs = pancreas.discover(raw)
    assert [r.subject_id for r in refs] == [f"PANCREAS_{i:04d}" for i in range(1, 7)]
    assert pancreas.load(refs[-1]).mask.any()
    second = dvc(dvc_repo, "repro", "synth@pancreas")
    assert "Running stage" not in second.stdout
