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
    labels = sorted(raw.glob("TCIA_pancreas_labels-02-05-2017/label*.nii*"))
    assert len(series) == 8 and len(labels) == 7  # 6 good cases, one without label, one short label
    assert all(any(s.glob("1-001.dcm")) for s in series)
    refs = [r for r in pancreas.discover(raw) if r.problem is None]
    assert [r.subject_id for r in refs] == [f"PANCREAS_{i:04d}" for i in range(1, 7)]
    assert pancreas.load(refs[-1]).mask.any()
    second = dvc(dvc_repo, "repro", "synth@pancreas")
    assert "Running stage" not in second.stdout
