"""Safe unpacking: malicious members are refused, and only a whole extraction reaches the target."""

import io
import stat
import tarfile
import zipfile

import pytest

from comixup.data.archive import MARKER, UnsafeArchiveError, unpack


def _tar(path, members):
    """Write a tar.gz of ``members``: ``(name, kind, data_or_link)`` with kind file/dir/sym/lnk/
    chr/fifo."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
             "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
            else:
                if kind in ("sym", "lnk"):
                    info.linkname = value
                tar.addfile(info)
    return path


def _zip(path, members):
    """Write a zip of ``(name, data, is_symlink)`` members (a symlink's data is its target)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, link in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = ((stat.S_IFLNK | 0o777) if link else (stat.S_IFREG | 0o644)) << 16
            zf.writestr(info, data)
    return path


GOOD = [("top", "dir", None), ("top/a.txt", "file", b"a"), ("top/sub", "dir", None),
        ("top/sub/b.txt", "file", b"bb"), ("top/link", "sym", "sub/b.txt"),
        ("top/hard", "lnk", "top/a.txt")]


def test_a_good_tar_is_extracted_whole_with_its_marker(tmp_path):
    archive = _tar(tmp_path / "good.tar.gz", GOOD)
    out = unpack(archive, tmp_path / "data" / "top", subdir="top")
    assert (out / "a.txt").read_bytes() == b"a" and (out / "sub" / "b.txt").read_bytes() == b"bb"
    assert (out / "link").read_bytes() == b"bb" and (out / "hard").read_bytes() == b"a"
    assert (out / MARKER).is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["top"]  # no partial left
    with pytest.raises(FileExistsError, match="top already exists"):
        unpack(archive, out, subdir="top")


def test_a_good_zip_without_subdir(tmp_path):
    archive = _zip(tmp_path / "good.zip", [("x/wnids.txt", b"n01\n", False),
                                           ("x/val/ann.txt", b"f n01\n", False)])
    out = unpack(archive, tmp_path / "t")
    assert (out / "x" / "wnids.txt").read_bytes() == b"n01\n" and (out / MARKER).is_file()


TAR_ATTACKS = {
    "absolute path": [("{tmp}/evil-abs", "file", b"x")],  # {tmp}: the test's directory
    "dotdot": [("top/../../evil", "file", b"x")],
    "symlink to an absolute path": [("top/l", "sym", "/etc")],
    "symlink leaving": [("top/l", "sym", "../../evil")],
    "path through a symlink": [("top/l", "sym", "."), ("top/l/f", "file", b"x")],
    "symlink through a symlink": [("top/x", "dir", None), ("top/x/l", "sym", ".."),
                                  ("top/y", "sym", "x/l/../..")],
    "hard link leaving": [("top/h", "lnk", "../evil")],
    "device": [("top/dev", "chr", None)],
    "fifo": [("top/fifo", "fifo", None)],
}


@pytest.mark.parametrize("kind", list(TAR_ATTACKS))
def test_malicious_tar_members_are_refused_and_nothing_is_written(tmp_path, kind):
    members = [(n.format(tmp=tmp_path), k, v) for n, k, v in TAR_ATTACKS[kind]]
    bad = members[-1][0]
    archive = _tar(tmp_path / "evil.tar.gz", [("top", "dir", None), ("top/ok", "file", b"1")]
                   + members)
    parent = tmp_path / "deep" / "data"
    with pytest.raises(UnsafeArchiveError, match=rf"evil\.tar\.gz: refused member '{bad}'"):
        unpack(archive, parent / "top", subdir="top")
    assert list(parent.iterdir()) == []  # neither the target nor a partial directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "evil.tar.gz"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["data"]


ZIP_ATTACKS = {
    "absolute path": [("{tmp}/evil-abs", b"x", False)],
    "dotdot": [("top/../../evil", b"x", False)],
    "symlink leaving": [("top/l", b"../../evil", True)],
    "path through a symlink": [("top/l", b"sub", True), ("top/l/f", b"x", False)],
}


@pytest.mark.parametrize("kind", list(ZIP_ATTACKS))
def test_malicious_zip_members_are_refused_and_nothing_is_written(tmp_path, kind):
    members = [(n.format(tmp=tmp_path), d, link) for n, d, link in ZIP_ATTACKS[kind]]
    archive = _zip(tmp_path / "evil.zip", [("top/ok", b"1", False)] + members)
    parent = tmp_path / "deep" / "data"
    with pytest.raises(UnsafeArchiveError, match=rf"evil\.zip: refused member '{members[-1][0]}'"):
        unpack(archive, parent / "top", subdir="top")
    assert list(parent.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "evil.zip"]


def test_an_interrupted_extraction_leaves_nothing_then_a_retry_completes(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "good.tar.gz", GOOD)
    real = tarfile.TarFile.extract

    def stop_after_first(self, member, path="", **kw):
        real(self, member, path, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall",
                        lambda self, path, members=None, **kw: stop_after_first(
                            self, members[1], path, **kw))
    with pytest.raises(KeyboardInterrupt):
        unpack(archive, tmp_path / "data" / "top", subdir="top")
    assert list((tmp_path / "data").iterdir()) == []
    monkeypatch.undo()
    assert (unpack(archive, tmp_path / "data" / "top", subdir="top") / MARKER).is_file()


def test_damaged_archive_and_missing_subdir_name_the_archive(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match=r"bad\.tar\.gz: damaged"):
        unpack(bad, tmp_path / "out")
    archive = _tar(tmp_path / "good.tar.gz", GOOD)
    with pytest.raises(ValueError, match=r"good\.tar\.gz: holds no top directory other/"):
        unpack(archive, tmp_path / "out", subdir="other")
    assert not (tmp_path / "out").exists()
