"""Zip reading in place: member listing, provenance, and the guards against unsafe archives."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from pipeline.formats import archive
from pipeline.errors import DatasetError


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 50 MB member of zeros that deflates to about 50 KB (ratio ~1000)."""
    return make_zip(tmp_path_factory.mktemp("bomb") / "bomb.zip", [("data/zeros.bin", bytes(50 << 20))])


def test_list_members_skips_directories_and_macos_decoys(tmp_path):
    path = make_zip(tmp_path / "a.zip", [
        ("top/", b""), ("top/1.png", b"x"), ("top/._1.png", b"junk"), ("__MACOSX/top/._1.png", b"junk"),
        ("top/sub/2.json", b"{}"),
    ])
    with archive.open_archive(path) as zf:
        assert archive.list_members(zf) == ["top/1.png", "top/sub/2.json"]
        assert archive.read_member(zf, "top/sub/2.json") == b"{}"


def test_provenance_round_trip_and_read_source(tmp_path):
    path = make_zip(tmp_path / "a.zip", [("d/x.txt", b"hello")])
    source = archive.provenance(path, "d/x.txt")
    assert source == f"{path}::d/x.txt"
    assert archive.split_provenance(source) == (path, "d/x.txt")
    assert archive.split_provenance(str(path)) == (path, None)
    assert archive.read_source(source) == b"hello"
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"plain")
    assert archive.read_sources([source, str(plain), source]) == [b"hello", b"plain", b"hello"]


def test_list_sources_finds_zips_recursively_or_the_extracted_tree(tmp_path):
    (tmp_path / "sub").mkdir()
    make_zip(tmp_path / "sub" / "A.ZIP", [("m/1.png", b"1")])
    assert archive.list_sources(tmp_path) == [f"{tmp_path / 'sub' / 'A.ZIP'}::m/1.png"]
    tree = tmp_path / "tree"
    (tree / "c").mkdir(parents=True)
    (tree / "c" / "1.png").write_bytes(b"1")
    (tree / "c" / "._1.png").write_bytes(b"decoy")
    assert archive.list_sources(tree) == [str(tree / "c" / "1.png")]
    with pytest.raises(DatasetError, match="no such file or folder"):
        archive.list_sources(tmp_path / "missing")


def test_refuses_parent_directory_entry(tmp_path):
    path = make_zip(tmp_path / "evil.zip", [("ok.png", b"1"), ("a/../../etc/passwd", b"x")])
    with pytest.raises(DatasetError, match=r"evil\.zip.*'a/\.\./\.\./etc/passwd': '\.\.' path component"):
        archive.open_archive(path)


def test_refuses_absolute_path_entry(tmp_path):
    path = make_zip(tmp_path / "abs.zip", [("ok.png", b"1"), ("/etc/cron.d/x", b"x")])
    with pytest.raises(DatasetError, match=r"abs\.zip.*'/etc/cron\.d/x': absolute path"):
        archive.open_archive(path)


def test_refuses_symlink_entry(tmp_path):
    link = zipfile.ZipInfo("data/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = make_zip(tmp_path / "link.zip", [("data/1.png", b"1"), (link, b"/etc/passwd")])
    with pytest.raises(DatasetError, match=r"link\.zip.*'data/link\.png': symbolic link entry"):
        archive.open_archive(path)


def test_zip_bomb_refused_by_ratio_before_reading(bomb):
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DatasetError, match=r"bomb\.zip.*'data/zeros\.bin': compression ratio \d+ exceeds max_ratio=200"):
        archive.open_archive(bomb)


def test_zip_bomb_refused_by_member_size_and_total(bomb):
    with pytest.raises(DatasetError, match="exceeds max_member_bytes=1000000"):
        archive.open_archive(bomb, max_ratio=1e6, max_member_bytes=1_000_000)
    with pytest.raises(DatasetError, match="total uncompressed size 52428800 bytes exceeds max_total_bytes"):
        archive.open_archive(bomb, max_ratio=1e6, max_total_bytes=10 << 20)


def test_read_member_checks_limits_before_decompressing(bomb, monkeypatch):
    with archive.open_archive(bomb, max_ratio=1e6) as zf:
        monkeypatch.setattr(zf, "open", lambda *a, **k: pytest.fail("decompressed a refused member"))
        with pytest.raises(DatasetError, match=r"bomb\.zip::data/zeros\.bin: refusing member.*ratio"):
            archive.read_member(zf, "data/zeros.bin")
    with archive.open_archive(bomb, max_ratio=1e6) as zf:
        assert len(archive.read_member(zf, "data/zeros.bin", max_ratio=1e6)) == 50 << 20


def test_empty_archive(tmp_path):
    with pytest.raises(DatasetError, match="empty archive"):
        archive.open_archive(make_zip(tmp_path / "empty.zip", []))
    with pytest.raises(DatasetError, match="empty archive"):
        archive.open_archive(make_zip(tmp_path / "dirs.zip", [("top/", b""), ("__MACOSX/._x", b"j")]))


def test_truncated_and_not_a_zip(tmp_path):
    whole = make_zip(tmp_path / "whole.zip", [("a.bin", bytes(range(256)) * 400)])
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"cut\.zip: truncated or damaged zip"):
        archive.open_archive(cut)
    text = tmp_path / "notes.zip"
    text.write_text("these are not the files you are looking for")
    with pytest.raises(DatasetError, match=r"notes\.zip: not a zip archive"):
        archive.open_archive(text)
    with pytest.raises(DatasetError, match="no such archive"):
        archive.open_archive(tmp_path / "missing.zip")


def test_damaged_member_data(tmp_path):
    payload = bytes(range(256)) * 400
    path = make_zip(tmp_path / "bad.zip", [("a.bin", payload)])
    raw = bytearray(path.read_bytes())
    middle = raw.find(b"a.bin") + 5 + 200  # inside the compressed data of the first local entry
    raw[middle:middle + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    with archive.open_archive(path) as zf:
        with pytest.raises(DatasetError, match=r"bad\.zip::a\.bin: damaged member"):
            archive.read_member(zf, "a.bin")
        with pytest.raises(DatasetError, match="no such member"):
            archive.read_member(zf, "b.bin")


def test_read_sources_keeps_archives_open_but_sees_a_rewritten_file(tmp_path):
    path = make_zip(tmp_path / "c.zip", [("a.txt", b"one")])
    source = archive.provenance(path, "a.txt")
    assert archive.read_sources([source]) == [b"one"]
    assert archive.cached_archive(path) is archive.cached_archive(path)
    make_zip(path, [("a.txt", b"second version")])
    assert archive.read_sources([source]) == [b"second version"]
    with pytest.raises(DatasetError, match="no such archive"):
        archive.read_sources([archive.provenance(tmp_path / "gone.zip", "a.txt")])


@pytest.mark.parametrize("patch, problem", [
    ("encrypted", r"cannot read member \(.*encrypted.*\); repack the archive as a plain, unencrypted zip"),
    ("deflate64", r"cannot read member \(That compression method is not supported\); repack"),
])
def test_encrypted_or_unsupported_member_is_a_dataset_error(tmp_path, patch, problem):
    """Python's zipfile raises RuntimeError / NotImplementedError for these, not BadZipFile."""
    path = make_zip(tmp_path / "a.zip", [("case/1.png", b"\x89PNG\r\n\x1a\n" + bytes(64))])
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    if patch == "encrypted":  # general-purpose flag bit 0 in both headers
        data[local + 6] |= 1
        data[central + 8] |= 1
    else:  # compression method 9 (Deflate64)
        data[local + 8:local + 10] = (9).to_bytes(2, "little")
        data[central + 10:central + 12] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with archive.open_archive(path) as zf, pytest.raises(DatasetError, match=problem) as err:
        archive.read_member(zf, "case/1.png")
    assert err.value.path.endswith("a.zip::case/1.png")
