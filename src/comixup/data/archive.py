"""Safe unpacking of the dataset archives (tar, tar.gz, zip): :func:`unpack`.

Every member is checked before anything is written. Refused, with an :class:`UnsafeArchiveError`
naming the archive and the member:

* absolute paths (``/etc/x``, ``C:\\x``) and paths with a ``..`` component;
* symbolic and hard links whose target is absolute or leaves the extraction directory, and
  members (or link targets) whose path goes through a symbolic link of the archive;
* devices and FIFOs (tar), and any member that is not a file, a directory or a link.

The archive is extracted into a fresh temporary directory beside the target (in the target's
parent), the completion marker :data:`MARKER` is written last, and only then is the directory
renamed to the target: an interrupted or failed extraction never leaves anything under the
target's name, and a directory with the marker was extracted whole.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .._errors import InputError

__all__ = ["MARKER", "UnsafeArchiveError", "unpack"]

#: The file written into a directory once its archive is completely extracted.
MARKER = ".comixup-complete"


class UnsafeArchiveError(InputError):
    """An archive member that could write outside the extraction directory, or a device (an
    :class:`~comixup._errors.InputError`, so a ValueError)."""


def _normalize(archive: Path, name: str) -> str:
    """``name`` as a relative POSIX path; absolute paths and ``..`` are refused."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: refused member {name!r}: absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: refused member {name!r}: '..' in its path")
    return "/".join(parts)


def _through_link(path: str, links: set[str]) -> bool:
    """Whether a proper prefix of the relative ``path`` is a symbolic link of the archive."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in links for i in range(1, len(parts)))


def _check_link(archive: Path, name: str, target: str, base: str, links: set[str]) -> None:
    """Refuse a link named ``name`` whose ``target`` (relative to ``base``) leaves the root."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: refused member {name!r}: link to the absolute path {target!r}")
    joined = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        raise UnsafeArchiveError(
            f"{archive}: refused member {name!r}: link to {target!r} leaves the target directory")
    walked = posixpath.join(base, target.replace("\\", "/")).split("/")
    for i in range(1, len(walked)):
        if "/".join(p for p in walked[:i] if p not in ("", ".")) in links:
            raise UnsafeArchiveError(
                f"{archive}: refused member {name!r}: link to {target!r} goes through a link")


def _tar_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    names = {id(m): _normalize(archive, m.name) for m in members}
    links = {names[id(m)] for m in members if m.issym()}
    for m in members:
        name = names[id(m)]
        if m.isdev():
            kind = "FIFO" if m.isfifo() else "device"
            raise UnsafeArchiveError(f"{archive}: refused member {m.name!r}: a {kind}")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise UnsafeArchiveError(f"{archive}: refused member {m.name!r}: not a file, a "
                                     "directory or a link")
        if _through_link(name, links):
            raise UnsafeArchiveError(
                f"{archive}: refused member {m.name!r}: its path goes through a link")
        if m.issym():
            _check_link(archive, m.name, m.linkname, posixpath.dirname(name), links)
        elif m.islnk():  # a hard link's target is a path from the archive's root
            _check_link(archive, m.name, m.linkname, "", links)
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> None:
    infos = zf.infolist()

    def is_link(info):
        return stat.S_ISLNK(info.external_attr >> 16)

    names = {id(i): _normalize(archive, i.filename) for i in infos}
    links = {names[id(i)] for i in infos if is_link(i)}
    for info in infos:
        name = names[id(info)]
        if _through_link(name, links):
            raise UnsafeArchiveError(
                f"{archive}: refused member {info.filename!r}: its path goes through a link")
        if is_link(info):
            target = zf.read(info).decode("utf-8", "replace")
            _check_link(archive, info.filename, target, posixpath.dirname(name), links)


def _extract(archive: Path, into: Path) -> None:
    """Check every member of ``archive``, then extract it into the directory ``into``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _zip_members(archive, zf)
                zf.extractall(into)
            return
        with tarfile.open(archive, "r:*") as tar:
            members = _tar_members(archive, tar)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(into, members=members, **extra)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{archive}: damaged or not a tar/zip archive ({exc})") from None


def unpack(archive, target, *, subdir: str | None = None) -> Path:
    """Extract ``archive`` safely and move the result to ``target``.

    Args:
        archive: a ``.tar``, ``.tar.gz``/``.tgz`` or ``.zip`` file.
        target: the directory to create; it must not exist yet.
        subdir: the archive's top directory that becomes ``target`` (e.g.
            ``"cifar-10-batches-py"``); ``None``: the whole content of the archive does.

    Returns:
        ``target``, holding the extracted files and :data:`MARKER`.

    Raises:
        UnsafeArchiveError: a refused member (module docstring); nothing is written.
        InputError: a damaged archive, or one without ``subdir`` (a ValueError).
        FileExistsError: ``target`` already exists.
        OSError: the target's parent cannot be written (a full disk, no permission).
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists: remove it or unpack elsewhere")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        _extract(archive, tmp)
        src = tmp / subdir if subdir else tmp
        if not src.is_dir():
            raise InputError(f"{archive}: holds no top directory {subdir}/")
        (src / MARKER).write_text(f"extracted from {archive.name}\n")
        os.rename(src, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
