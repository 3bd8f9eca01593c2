"""--download through a loopback HTTP server: fetch, offline reuse, every failure, the CLI."""

import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from comixup._errors import InputError
from comixup.cli import main
from comixup.data import build_dataset
from comixup.data import download as dl
from comixup.data.archive import MARKER

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


class _Server:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` (name -> bytes): a name in
    ``truncate`` is sent with its full Content-Length but cut half-way (``truncate[name]`` more
    times); any other name is a 404."""

    def __init__(self):
        self.files, self.truncate, self.requests = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.truncate.get(name, 0) > 0:
                    server.truncate[name] -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


@pytest.fixture
def closed_port():
    """The URL of a port nothing listens on (the connection is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mirror"


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def _publish(monkeypatch, server, name, payloads: dict):
    """Serve ``payloads`` (file name -> bytes) and make them the published files of ``name``."""
    src = dl.SOURCES[name]
    files = tuple(dataclasses.replace(f, hash=_md5(payloads[f.name])) for f in src.files)
    monkeypatch.setitem(dl.SOURCES, name, dataclasses.replace(src, files=files))
    server.files.update({f"mirror/{k}": v for k, v in payloads.items()})


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _mnist_payloads(n_train=20, n_test=10) -> dict:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(np.arange(n_test) % 10),
    }


def _publish_altered(monkeypatch, server, name):
    """Publish tiny Fashion-MNIST files, but serve ``name`` with one byte altered."""
    payloads = _mnist_payloads()
    _publish(monkeypatch, server, "fashion-mnist", payloads)
    altered = bytearray(payloads[name])
    altered[-5] ^= 0xFF  # in the gzip trailer: the bytes differ, the file still decompresses
    server.files[f"mirror/{name}"] = bytes(altered)
    return payloads, bytes(altered)


def _tar_of(directory: Path, arcname: str) -> bytes:
    out = directory.parent / f"{directory.name}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(directory, arcname=arcname)
    return out.read_bytes()


def _zip_of(directory: Path) -> bytes:
    out = directory.parent / f"{directory.name}.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(directory.rglob("*")):
            zf.write(p, p.relative_to(directory.parent).as_posix())
    return out.read_bytes()


@pytest.fixture
def archives(cifar_root, tiny_root, speech_root):
    """The tiny datasets of conftest as their published archives: name -> (file, bytes)."""
    return {
        "cifar10": ("cifar-10-python.tar.gz",
                    _tar_of(cifar_root / "cifar-10-batches-py", "cifar-10-batches-py")),
        "cifar100": ("cifar-100-python.tar.gz",
                     _tar_of(cifar_root / "cifar-100-python", "cifar-100-python")),
        "tiny-imagenet": ("tiny-imagenet-200.zip", _zip_of(tiny_root / "tiny-imagenet-200")),
        "speech-commands": ("speech_commands_v0.01.tar.gz",
                            _tar_of(speech_root / "speech_commands", ".")),
    }


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "tiny-imagenet", "speech-commands"])
def test_archive_download_then_offline_reuse(tmp_path, server, closed_port, monkeypatch,
                                             archives, name):
    file, payload = archives[name]
    _publish(monkeypatch, server, name, {file: payload})
    root = tmp_path / "data"
    assert dl.download(name, root, mirror=server.url, progress=False, log=lambda _: None) == root
    assert server.requests == [f"mirror/{file}"]
    target = root / dl.SOURCES[name].archive_dir
    assert (target / MARKER).is_file()
    assert sorted(p.name for p in root.iterdir()) == [target.name]  # the archive was deleted
    assert len(build_dataset(name, root=root, split="test")) > 0
    # a second time: in place, nothing is fetched (the mirror is a closed port)
    assert dl.download(name, root, mirror=closed_port, progress=False) == root
    assert server.requests == [f"mirror/{file}"]


def test_idx_download_fetches_only_the_missing_files_then_is_offline(tmp_path, server,
                                                                      closed_port, monkeypatch):
    payloads = _mnist_payloads()
    _publish(monkeypatch, server, "mnist", payloads)
    root = tmp_path / "mnist"
    root.mkdir()
    (root / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(
        payloads["train-labels-idx1-ubyte.gz"]))  # one already in place, uncompressed
    dl.download("mnist", root, mirror=server.url, progress=False, log=lambda _: None)
    assert sorted(server.requests) == sorted(
        f"mirror/{n}" for n in payloads if n != "train-labels-idx1-ubyte.gz")
    assert len(build_dataset("mnist", root=root, split="train")) == 20
    dl.download("mnist", root, mirror=closed_port, progress=False)
    assert len(server.requests) == 3


def test_the_environment_sets_the_cache_and_the_mirror(tmp_path, server, monkeypatch, archives):
    file, payload = archives["cifar10"]
    _publish(monkeypatch, server, "cifar10", {file: payload})
    monkeypatch.setenv("COMIXUP_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COMIXUP_DATA_MIRROR", server.url + "/")
    assert dl.default_data_dir() == tmp_path / "cache"
    assert dl.download("cifar10", progress=False, log=lambda _: None) == tmp_path / "cache"
    # build_dataset without a root reads the cache
    assert len(build_dataset("cifar10", split="test")) == 4
    monkeypatch.delenv("COMIXUP_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.default_data_dir() == tmp_path / "xdg" / "comixup" / "datasets"


def test_checksum_mismatch_names_the_file_and_both_hashes_and_keeps_nothing(
        tmp_path, server, monkeypatch):
    payloads, altered = _publish_altered(monkeypatch, server, "train-images-idx3-ubyte.gz")
    root = tmp_path / "fm"
    with pytest.raises(dl.DownloadError) as err:
        dl.download("fashion-mnist", root, mirror=server.url, progress=False, log=lambda _: None)
    message = str(err.value)
    assert str(root / "train-images-idx3-ubyte.gz") + ": checksum mismatch" in message
    assert _md5(payloads["train-images-idx3-ubyte.gz"]) in message
    assert _md5(altered) in message
    assert list(root.iterdir()) == []  # neither under its name nor as a temporary file


def test_truncated_transfer_keeps_nothing_and_a_retry_completes(tmp_path, server, monkeypatch,
                                                                archives):
    file, payload = archives["cifar10"]
    _publish(monkeypatch, server, "cifar10", {file: payload})
    server.truncate[f"mirror/{file}"] = 1
    root = tmp_path / "data"
    with pytest.raises(dl.DownloadError, match=rf"/mirror/{file}: the transfer broke off"):
        dl.download("cifar10", root, mirror=server.url, progress=False, log=lambda _: None)
    assert list(root.iterdir()) == [] and not dl.is_present("cifar10", root)
    dl.download("cifar10", root, mirror=server.url, progress=False, log=lambda _: None)
    assert dl.is_present("cifar10", root) and len(server.requests) == 2


def test_an_interrupted_download_leaves_nothing_taken_for_complete(tmp_path, server,
                                                                   monkeypatch, archives):
    import requests

    file, payload = archives["cifar10"]
    _publish(monkeypatch, server, "cifar10", {file: payload})
    real = requests.models.Response.iter_content

    def interrupted(self, *args, **kwargs):
        for i, chunk in enumerate(real(self, *args, **kwargs)):
            if i:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(requests.models.Response, "iter_content", interrupted)
    root = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        dl.download("cifar10", root, mirror=server.url, progress=False, log=lambda _: None)
    assert list(root.iterdir()) == []
    monkeypatch.setattr(requests.models.Response, "iter_content", real)
    dl.download("cifar10", root, mirror=server.url, progress=False, log=lambda _: None)
    assert len(build_dataset("cifar10", root=root, split="train")) == 30


def test_http_error_names_the_url(tmp_path, server):
    with pytest.raises(dl.DownloadError,
                       match=rf"{server.url}/cifar-10-python.tar.gz: HTTP error 404"):
        dl.download("cifar10", tmp_path, mirror=server.url, progress=False, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_refused_connection_says_where_to_put_the_files(tmp_path, closed_port):
    with pytest.raises(dl.DownloadError, match=r"Connection refused.*put "
                       rf"cifar-100-python.tar.gz in {tmp_path} by hand"):
        dl.download("cifar100", tmp_path, mirror=closed_port, progress=False, log=lambda _: None)


def test_unwritable_directory_imagenet_and_a_stale_partial_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(dl.DownloadError, match=r"file/data: cannot be created"):
        dl.download("cifar10", tmp_path / "file" / "data")
    with pytest.raises(dl.DownloadError, match=r"ImageNet cannot be downloaded.*docs/data.md"):
        dl.download("imagenet", tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(dl.DownloadError, match=r"cifar-10-batches-py exists but does not hold "
                                               r"cifar10 .*remove it"):
        dl.download("cifar10", tmp_path)


def test_a_directory_in_place_is_used_as_it_is(cifar_root, closed_port):
    """Files not downloaded by comixup (no marker, any bytes) are read as today."""
    assert dl.download("cifar10", cifar_root, mirror=closed_port) == cifar_root
    assert dl.download("cifar100", cifar_root / "cifar-100-python",
                       mirror=closed_port) == cifar_root / "cifar-100-python"


def test_debian_fashion_mnist_is_the_default_root_and_never_fetched(closed_port):
    if not all((DEBIAN / f.name).is_file() for f in dl.SOURCES["fashion-mnist"].files):
        pytest.skip(f"no Fashion-MNIST in {DEBIAN} (apt-get install dataset-fashion-mnist)")
    assert dl.default_root("fashion-mnist") == DEBIAN
    assert dl.download("fashion-mnist", mirror=closed_port) == DEBIAN
    assert dl.download("fashion-mnist", DEBIAN, mirror=closed_port) == DEBIAN


# -- through the command line ---------------------------------------------------------------------


def _train(root, mirror, tmp_path, *extra):
    return ["train", "--preset", "fashion-mnist-cpu", "--method", "vanilla", "--download",
            "--data-dir", str(root), "--data-mirror", mirror, "--epochs", "1",
            "--limit-train", "20", "--limit-test", "10", "--batch-size", "10",
            "--arch-opt", "initial_channels=2", "--data-opt", "labels_per_class=2",
            "--out", str(tmp_path / "run"), "--no-progress", *extra]


def _one_error_line(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("comixup: error: "), err
    return lines[0]


def test_cli_downloads_then_trains_offline(tmp_path, server, closed_port, monkeypatch, capsys):
    _publish(monkeypatch, server, "fashion-mnist", _mnist_payloads())
    root = tmp_path / "fm"
    assert main(_train(root, server.url, tmp_path)) == 0
    assert "comixup: fetching" in capsys.readouterr().out
    assert (tmp_path / "run" / "summary.json").is_file()
    # files in place: trains with the mirror unreachable
    assert main(_train(root, closed_port, tmp_path / "again")) == 0
    assert "fetching" not in capsys.readouterr().out
    assert len(server.requests) == 4


def test_cli_altered_fashion_mnist_is_refused_naming_the_file(tmp_path, server, monkeypatch,
                                                             capsys):
    _publish_altered(monkeypatch, server, "t10k-labels-idx1-ubyte.gz")
    root = tmp_path / "fm"
    line = _one_error_line(_train(root, server.url, tmp_path), capsys)
    assert f"{root / 't10k-labels-idx1-ubyte.gz'}: checksum mismatch" in line
    assert not (root / "t10k-labels-idx1-ubyte.gz").exists()


def test_cli_debian_files_differ_from_the_published_bytes(tmp_path, server, capsys):
    """Debian recompressed Fashion-MNIST: its .gz files do not have the published MD5s, so a
    mirror serving them is refused (the files in place are still read, see above)."""
    name = "t10k-labels-idx1-ubyte.gz"
    if not (DEBIAN / name).is_file():
        pytest.skip(f"no Fashion-MNIST in {DEBIAN} (apt-get install dataset-fashion-mnist)")
    root = tmp_path / "fm"
    root.mkdir()
    for f in dl.SOURCES["fashion-mnist"].files:  # all but one in place: a small transfer
        if f.name != name:
            os.symlink(DEBIAN / f.name, root / f.name)
    server.files[f"mirror/{name}"] = (DEBIAN / name).read_bytes()
    line = _one_error_line(_train(root, server.url, tmp_path), capsys)
    assert f"{root / name}: checksum mismatch: expected md5:bb300cfdad3c16e7a12a480ee83cd310" \
           in line


def test_cli_404_and_closed_port_are_one_line_each(tmp_path, server, closed_port, capsys):
    line = _one_error_line(_train(tmp_path / "a", server.url, tmp_path), capsys)
    assert f"{server.url}/train-images-idx3-ubyte.gz: HTTP error 404" in line
    line = _one_error_line(_train(tmp_path / "b", closed_port, tmp_path), capsys)
    assert "cannot connect" in line and "by hand" in line


def test_cli_imagenet_download_points_to_the_docs(capsys):
    line = _one_error_line(["train", "--preset", "imagenet-resnet50", "--download"], capsys)
    assert "ImageNet cannot be downloaded" in line and "docs/data.md" in line


def test_cli_study_downloads_once_and_passes_the_root_to_every_run(tmp_path, server,
                                                                  monkeypatch, capsys):
    import comixup.study

    _publish(monkeypatch, server, "fashion-mnist", _mnist_payloads())
    seen = {}

    def fake_study(preset, methods, seeds, *, train_args, **kwargs):
        seen["train_args"] = train_args
        return {"report": None, "failed": []}

    monkeypatch.setattr(comixup.study, "run_study", fake_study)
    monkeypatch.setenv("COMIXUP_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "_DEBIAN", {"fashion-mnist": str(tmp_path / "no-debian")})
    argv = ["study", "--preset", "fashion-mnist-cpu", "--methods", "vanilla", "--download",
            "--data-mirror", server.url, "--no-progress", "--", "--epochs", "1"]
    assert main(argv) == 0
    assert seen["train_args"] == ["--epochs", "1", "--data-dir",
                                  str(tmp_path / "cache" / "fashion-mnist")]
    assert len(server.requests) == 4


def test_cli_eval_downloads_the_checkpoints_dataset(tmp_path, server, monkeypatch, capsys):
    import comixup.checkpoint
    import comixup.evaluate.suite

    _publish(monkeypatch, server, "fashion-mnist", _mnist_payloads())
    monkeypatch.setattr(comixup.checkpoint, "load",
                        lambda path: {"config": {"data": "fashion-mnist", "data_dir": None}})
    seen = {}

    def fake_evaluate(checkpoint, *, data_dir, **kwargs):
        seen["data_dir"] = data_dir
        raise InputError("stop here")  # a user's error: one line

    monkeypatch.setattr(comixup.evaluate.suite, "evaluate_checkpoint", fake_evaluate)
    root = tmp_path / "fm"
    line = _one_error_line(["eval", "--checkpoint", str(tmp_path / "last.pt"), "--download",
                            "--data-dir", str(root), "--data-mirror", server.url,
                            "--no-progress"], capsys)
    assert line == "comixup: error: stop here" and seen["data_dir"] == str(root)
    assert sorted(p.name for p in root.iterdir()) == sorted(_mnist_payloads())
