"""Fetching the standard datasets with their published checksums: :func:`download`.

``download(name, root)`` makes sure dataset ``name`` is under ``root`` in the layout its loader
reads (``docs/data.md``) and returns the root to pass to :func:`~comixup.data.build_dataset`:

* a dataset already in place is used as it is (the loaders' own format checks apply) and
  nothing is fetched, so a second run is offline; for Fashion-MNIST and MNIST only the missing
  files of the four are fetched;
* otherwise each file is fetched with ``pooch`` into a temporary file beside its final name,
  checked against its published checksum (:data:`SOURCES`), and only then renamed; an archive
  is then unpacked by :func:`comixup.data.archive.unpack` (members checked, the directory
  renamed into place whole) and deleted;
* ``root=None`` is :func:`default_root`: the per-user cache :func:`default_data_dir`
  (``$COMIXUP_DATA_DIR``, else ``$XDG_CACHE_HOME/comixup/datasets``, else
  ``~/.cache/comixup/datasets``), and for Fashion-MNIST Debian's directory when it holds the
  files;
* a mirror (``mirror=`` or ``$COMIXUP_DATA_MIRROR``) serves every file as ``<mirror>/<file name>``
  instead of its upstream address, checked against the same checksums.

Every failure is a :class:`DownloadError` (a ValueError) whose message names the URL or the
file: no network or a refused connection (with where to put the files by hand), an HTTP error,
a broken-off transfer, a checksum mismatch (both hashes; the bad file is not kept), a directory
that cannot be written. ImageNet cannot be downloaded (its licence): its error points to the
layout in ``docs/data.md``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .._errors import InputError
from .archive import MARKER, unpack

__all__ = [
    "SOURCES",
    "DownloadError",
    "RemoteFile",
    "Source",
    "default_data_dir",
    "default_root",
    "download",
    "is_present",
]


class DownloadError(InputError):
    """A dataset could not be fetched (no network, an HTTP error, a checksum mismatch, a
    directory that cannot be written): the message names the URL or the file and what to do.
    An :class:`~comixup._errors.InputError`, so a ValueError."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its ``name`` (also its name under a mirror), upstream ``url`` and
    ``hash`` (``"md5:<hex>"`` or ``"sha256:<hex>"``)."""

    name: str
    url: str
    hash: str


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from.

    Attributes:
        files: the published files.
        archive_dir: for an archive, the dataset directory it becomes under the root (the
            loader's directory name); ``None``: the files are the dataset directory's content.
        subdir: the archive's top directory that becomes ``archive_dir`` (``None``: the whole
            archive does).
        markers: the files (relative to the dataset directory) whose presence means the dataset
            is in place.
        cited: where the checksums come from.
    """

    files: tuple[RemoteFile, ...]
    archive_dir: str | None
    subdir: str | None
    markers: tuple[str, ...]
    cited: str


def _idx_files(base: str, hashes: tuple[str, str, str, str]) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(RemoteFile(n, base + n, "md5:" + h) for n, h in zip(names, hashes))


#: Every downloadable dataset. The checksums are the published ones: torchvision's dataset
#: sources list the MD5s of MNIST, Fashion-MNIST (the same as Zalando's fashion-mnist README)
#: and CIFAR (``torchvision/datasets/mnist.py``, ``cifar.py``); Tiny-ImageNet's MD5 is the one
#: the loaders of the cs231n archive check (e.g. ContinualAI/avalanche,
#: ``benchmarks/datasets/tiny_imagenet``); Speech Commands v0.01's SHA-256 is torchaudio's
#: (``torchaudio/datasets/speechcommands.py``).
SOURCES: dict[str, Source] = {
    "fashion-mnist": Source(
        _idx_files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
        None, None, (), "torchvision/datasets/mnist.py (FashionMNIST.resources)"),
    "mnist": Source(
        _idx_files("https://ossci-datasets.s3.amazonaws.com/mnist/",
                   ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
        None, None, (), "torchvision/datasets/mnist.py (MNIST.resources)"),
    "cifar10": Source(
        (RemoteFile("cifar-10-python.tar.gz",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "md5:c58f30108f718f92721af3b95e74349a"),),
        "cifar-10-batches-py", "cifar-10-batches-py", ("data_batch_1", "test_batch"),
        "torchvision/datasets/cifar.py (CIFAR10.tgz_md5)"),
    "cifar100": Source(
        (RemoteFile("cifar-100-python.tar.gz",
                    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                    "md5:eb9058c3a382ffc7106e4002c42a8d85"),),
        "cifar-100-python", "cifar-100-python", ("train", "test"),
        "torchvision/datasets/cifar.py (CIFAR100.tgz_md5)"),
    "tiny-imagenet": Source(
        (RemoteFile("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                    "md5:90528d7ca1a48142e341f4ef8d21d0de"),),
        "tiny-imagenet-200", "tiny-imagenet-200", ("wnids.txt", "val/val_annotations.txt"),
        "ContinualAI/avalanche benchmarks/datasets/tiny_imagenet (md5 of the cs231n zip)"),
    "speech-commands": Source(
        (RemoteFile("speech_commands_v0.01.tar.gz",
                    "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
                    "sha256:743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"),),
        "speech_commands", None, ("validation_list.txt", "testing_list.txt"),
        "torchaudio/datasets/speechcommands.py (_CHECKSUMS)"),
}

#: The Debian directories read before the cache when no root is given.
_DEBIAN = {"fashion-mnist": "/usr/share/datasets/fashion-mnist",
           "mnist": "/usr/share/datasets/mnist"}
_NOT_DOWNLOADABLE = {
    "imagenet": "ImageNet cannot be downloaded (its licence does not allow redistribution): "
                "get it from image-net.org, arrange it in the layout of docs/data.md (section "
                "imagenet) and pass its root with --data-dir",
}


def default_data_dir() -> Path:
    """The per-user dataset cache: ``$COMIXUP_DATA_DIR``, else
    ``$XDG_CACHE_HOME/comixup/datasets``, else ``~/.cache/comixup/datasets``."""
    if os.environ.get("COMIXUP_DATA_DIR"):
        return Path(os.path.expanduser(os.environ["COMIXUP_DATA_DIR"]))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.path.expanduser(cache)) / "comixup" / "datasets"


def _source(name: str) -> Source:
    if name in _NOT_DOWNLOADABLE:
        raise DownloadError(_NOT_DOWNLOADABLE[name])
    if name not in SOURCES:
        raise InputError(f"name must be one of the downloadable datasets {list(SOURCES)}, "
                         f"got {name!r}")
    return SOURCES[name]


def _idx_missing(base: Path, src: Source) -> list[RemoteFile]:
    """The IDX files absent from ``base`` (each may be there gzipped or not)."""
    return [f for f in src.files
            if not ((base / f.name).is_file() or (base / f.name[:-3]).is_file())]


def is_present(name: str, root) -> bool:
    """Whether dataset ``name`` is under ``root`` in its layout (for an archive's dataset: in
    ``root/<its directory>`` or in ``root`` itself, as the loaders look for it)."""
    src, root = _source(name), Path(os.path.expanduser(str(root)))
    if src.archive_dir is None:
        return not _idx_missing(root, src)
    return any(all((base / m).is_file() for m in src.markers)
               for base in (root / src.archive_dir, root))


def default_root(name: str) -> Path:
    """The root used when none is given: for Fashion-MNIST and MNIST, Debian's directory when it
    holds the four files, else ``<cache>/<name>``; for the others the cache itself
    (:func:`default_data_dir`)."""
    src = _source(name)
    if src.archive_dir is not None:
        return default_data_dir()
    debian = Path(_DEBIAN[name])
    if debian.is_dir() and not _idx_missing(debian, src):
        return debian
    return default_data_dir() / name


def _writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{directory}: cannot be created ({exc.strerror or exc}); pass "
                            "another --data-dir or set COMIXUP_DATA_DIR") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DownloadError(f"{directory}: not writable; pass another --data-dir or set "
                            "COMIXUP_DATA_DIR")


def _fetch(f: RemoteFile, directory: Path, mirror: str | None, progress: bool, log) -> Path:
    """Fetch ``f`` into ``directory`` (checked, then renamed into place)."""
    try:
        import pooch
        import requests
    except ImportError:
        raise ImportError("downloading needs pooch, from the training extra: pip install "
                          f"'comixup[train]' (or put the files in {directory} by hand, see "
                          "docs/data.md)", name="pooch") from None
    url = f"{mirror.rstrip('/')}/{f.name}" if mirror else f.url
    log(f"fetching {url} -> {directory / f.name}")
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # comixup prints its own line; pooch's INFO would go to stderr
    try:
        pooch.retrieve(url, f.hash, fname=f.name, path=directory, progressbar=progress)
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        status = f"{response.status_code} {response.reason}" if response is not None else exc
        raise DownloadError(f"{url}: HTTP error {status}") from None
    except requests.exceptions.ConnectionError as exc:
        raise DownloadError(
            f"cannot connect to fetch {url} ({_short(exc)}): with no network, put {f.name} "
            f"in {directory} by hand (or the dataset in its layout, docs/data.md), or set a "
            "mirror with --data-mirror or COMIXUP_DATA_MIRROR") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"{url}: the transfer broke off ({_short(exc)}); nothing was kept, "
                            "run again") from None
    except ValueError as exc:  # pooch's checksum mismatch: the temporary file is deleted
        got = re.search(r"does not match the known hash: expected \S+ but got (\w+)", str(exc))
        if got is None:
            raise
        algorithm = f.hash.split(":")[0]
        raise DownloadError(
            f"{directory / f.name}: checksum mismatch: expected {f.hash}, got "
            f"{algorithm}:{got.group(1)} (from {url}); the file was not "
            "kept") from None
    except OSError as exc:
        raise DownloadError(f"{directory / f.name}: cannot be written "
                            f"({exc.strerror or exc})") from None
    finally:
        logger.setLevel(level)
    return directory / f.name


def _short(reason) -> str:
    text = str(reason)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return match.group(0) if match else text.splitlines()[0][:200]


def download(name: str, root=None, *, mirror: str | None = None, progress: bool = True,
             log=None) -> Path:
    """Make sure dataset ``name`` is under ``root``, fetching what is missing.

    Args:
        name: a key of :data:`SOURCES` (``"imagenet"`` raises a :class:`DownloadError` that
            says why and where its layout is documented).
        root: the dataset root as :func:`~comixup.data.build_dataset` takes it (for
            Fashion-MNIST and MNIST the directory of the four files); ``None``:
            :func:`default_root`.
        mirror: base URL serving every file under its file name; ``None``:
            ``$COMIXUP_DATA_MIRROR`` when set, else the upstream addresses.
        progress: show pooch's progress bars.
        log: a function of one line of text for the "fetching" notes (default: print).

    Returns:
        The root to pass to ``build_dataset``.

    Raises:
        DownloadError: the dataset cannot be fetched (module docstring).
    """
    src = _source(name)
    root = default_root(name) if root is None else Path(os.path.expanduser(str(root)))
    if is_present(name, root):
        return root
    mirror = mirror if mirror is not None else os.environ.get("COMIXUP_DATA_MIRROR") or None
    log = log or (lambda text: print(f"comixup: {text}", flush=True))
    _writable(root)
    if src.archive_dir is None:
        for f in _idx_missing(root, src):
            _fetch(f, root, mirror, progress, log)
        return root
    (archive_file,) = src.files
    target = root / src.archive_dir
    if target.exists():
        detail = ("an interrupted extraction? remove it" if not (target / MARKER).exists()
                  else "its files are damaged? remove it")
        raise DownloadError(f"{target} exists but does not hold {name} ({', '.join(src.markers)} "
                            f"missing; {detail} and run again)")
    archive = _fetch(archive_file, root, mirror, progress, log)
    log(f"unpacking {archive}")
    try:
        unpack(archive, target, subdir=src.subdir)
    except OSError as exc:
        raise DownloadError(f"{archive}: cannot be unpacked into {root} "
                            f"({exc.strerror or exc})") from None
    archive.unlink()
    return root
