"""Output guards: no stage deletes or changes a file it did not create, and one run per output at a time.

Each case points a real stage at an output a user could plausibly type by mistake and checks
that it refuses with one line naming the output, and that every file under the test folder is
byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipeline.errors import UsageError
from pipeline.synth import get_synthesizer
from pipeline.writers import MARKER, atomic_dir, guarded_dir, output_lock, write_report
from stages import augment, check, prepare, synth

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with its content hash: what 'nothing touched' compares."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def refusal(main, argv: list[str]) -> str:
    """The one line a stage refused with; refused outputs are usage problems (exit 2)."""
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 2, exc  # through the stage edge: a usage problem, one line
        assert "\n" not in str(exc)
        return str(exc)
    raise AssertionError("the stage accepted the output")


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["image_size"] = 32
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lasc(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("pristine") / "lasc"
    raw.mkdir()
    get_synthesizer("lasc").generate(raw, subjects=2, seed=3)
    return raw


@pytest.fixture
def raw(lasc, tmp_path) -> Path:
    """The user's download, with a file of their own beside it."""
    import shutil

    dest = tmp_path / "downloads" / "Task02"
    shutil.copytree(lasc, dest)
    (tmp_path / "downloads" / "notes.txt").write_text("my notes\n")
    return dest


def prepare_argv(raw: Path, out: Path, params: Path) -> list[str]:
    return ["--dataset", "lasc", "--raw", str(raw), "--out", str(out), "--params", str(params), "--n-jobs", "1"]


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_prepare_refuses_an_output_overlapping_the_input(where, raw, params_file, tmp_path):
    out = {"same": raw, "parent": raw.parent, "inside": raw / "prepared"}[where]
    before = tree(tmp_path)
    message = refusal(prepare.main, prepare_argv(raw, out, params_file))
    assert str(out) in message and "input" in message and "\n" not in message, message
    assert tree(tmp_path) == before


def test_prepare_refuses_an_existing_file(raw, params_file, tmp_path):
    out = tmp_path / "thesis.docx"
    out.write_bytes(b"four years of work")
    before = tree(tmp_path)
    message = refusal(prepare.main, prepare_argv(raw, out, params_file))
    assert "existing file" in message and str(out) in message
    assert tree(tmp_path) == before


def test_prepare_refuses_a_folder_it_did_not_write(raw, params_file, tmp_path):
    out = tmp_path / "Documents"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "letter.txt").write_text("dear ...\n")
    before = tree(tmp_path)
    message = refusal(prepare.main, prepare_argv(raw, out, params_file))
    assert MARKER in message and "did not write" in message
    assert tree(tmp_path) == before


def test_prepare_replaces_an_empty_folder_and_its_own_output(raw, params_file, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    prepare.main(prepare_argv(raw, out, params_file))
    assert (out / MARKER).is_file() and (out / "manifest.csv").is_file()
    first = tree(out)
    prepare.main(prepare_argv(raw, out, params_file))  # its own output, recognised by the marker
    assert tree(out) == first
    assert not list(tmp_path.glob(".*.lock")) and not list(tmp_path.glob(".tmp-*"))


def test_augment_refuses_in_as_out_and_out_inside_in(raw, params_file, tmp_path):
    prepared = tmp_path / "prepared"
    prepare.main(prepare_argv(raw, prepared, params_file))
    before = tree(tmp_path)
    for out in (prepared, prepared / "augmented"):
        message = refusal(augment.main, ["--dataset", "lasc", "--params", str(params_file), "--in", str(prepared),
                                         "--out", str(out), "--n-jobs", "1"])
        assert "input" in message and str(out) in message
        assert tree(tmp_path) == before


def test_synth_refuses_a_folder_it_did_not_write(tmp_path, params_file):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8 cat")
    before = tree(tmp_path)
    message = refusal(synth.main, ["--dataset", "lasc", "--params", str(params_file), "--out", str(out),
                                   "--subjects", "1"])
    assert "did not write" in message
    assert tree(tmp_path) == before


def test_check_report_never_lands_in_the_source_or_over_a_user_file(raw, params_file, tmp_path):
    argv = ["--dataset", "lasc", "--params", str(params_file), "--raw", str(raw), "--n-jobs", "1", "--out"]
    user_file = tmp_path / "downloads" / "notes.txt"
    before = tree(tmp_path)
    for out in (raw / "check.json", user_file, raw):
        message = refusal(check.main, [*argv, str(out)])
        assert str(out) in message
        assert tree(tmp_path) == before
    report = tmp_path / "check.json"
    check.main([*argv, str(report)])
    check.main([*argv, str(report)])  # its own report is replaced
    assert '"written_by": "medseg-dvc"' in report.read_text()


def test_a_second_run_on_the_same_output_refuses_and_leaves_the_first_alone(raw, params_file, tmp_path):
    out = tmp_path / "prepared"
    with atomic_dir(out) as scratch:  # the first run, busy writing
        (scratch / "half.png").write_bytes(b"...")
        before = tree(tmp_path)
        message = refusal(prepare.main, prepare_argv(raw, out, params_file))
        assert "another run is writing" in message and str(out) in message
        assert tree(tmp_path) == before  # its scratch folder survives
    assert (out / "half.png").is_file()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pipeline.writers import output_lock
    with output_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_lock_left_by_a_killed_run_is_recognised(raw, params_file, tmp_path):
    out = tmp_path / "prepared"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert "another run is writing" in refusal(prepare.main, prepare_argv(raw, out, params_file))
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    lock = tmp_path / ".prepared.lock"
    assert lock.exists()  # left behind by the killed run ...
    prepare.main(prepare_argv(raw, out, params_file))  # ... and recognised as stale
    assert (out / "manifest.csv").is_file() and not lock.exists()


def test_lock_is_released_when_the_block_fails(tmp_path):
    out = tmp_path / "x"
    with pytest.raises(RuntimeError):
        with output_lock(out):
            raise RuntimeError("boom")
    with output_lock(out):
        pass


def test_guarded_dir_for_stages_that_write_into_their_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "file").write_text("x")
    for out in (data, data / "model", tmp_path, tmp_path / "file"):
        with pytest.raises(UsageError):
            with guarded_dir(out, inputs=[data]):
                pass
    with guarded_dir(tmp_path / "artifacts", inputs=[data]) as out:
        with pytest.raises(UsageError, match="another run"):
            with guarded_dir(out, inputs=[data]):
                pass
    assert (tmp_path / "file").read_text() == "x"


def test_a_symlinked_output_into_the_input_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    with pytest.raises(UsageError, match="same path"):
        with atomic_dir(tmp_path / "link", inputs=[data]):
            pass
    assert data.is_dir() and not any(data.iterdir())


def test_a_report_never_replaces_a_file_it_did_not_write(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("a: 1\n")
    with pytest.raises(UsageError, match="file this project did not write"):
        write_report(params, {"ok": True})
    assert params.read_text() == "a: 1\n"


def test_stale_scratch_is_removed_only_under_the_lock(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / ".tmp-out-abc"
    stale.mkdir()
    with atomic_dir(out):
        assert not stale.exists()
    assert not (tmp_path / ".out.lock").exists()


def test_reports_folders_are_guarded_too(raw, params_file, tmp_path):
    """--reports is an output like --out: never the download, never a folder of the user's."""
    before = tree(tmp_path)
    for reports in (raw, tmp_path / "downloads"):
        message = refusal(prepare.main, [*prepare_argv(raw, tmp_path / "prepared", params_file),
                                         "--reports", str(reports)])
        assert str(reports) in message
        assert tree(tmp_path) == before
    prepare.main([*prepare_argv(raw, tmp_path / "prepared", params_file), "--reports", str(tmp_path / "plots")])
    assert (tmp_path / "plots" / "split_counts.png").is_file() and (tmp_path / "plots" / MARKER).is_file()
