"""The wheel works: built with ``pip wheel``, installed (not editable) into a read-only folder,
its mixers run (numba's cache falls back to the user cache directory) and ``comixup --help``
answers.

The package folder is made read-only by a read-only bind mount in a user namespace
(``unshare``) when the tests run as root (root writes through file modes), by file modes
otherwise.
"""
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

SCRIPT = textwrap.dedent("""
    import sys, pathlib, torch
    site = pathlib.Path(sys.argv[1]).resolve()
    import comixup
    from comixup import mixers
    assert pathlib.Path(comixup.__file__).resolve().is_relative_to(site), comixup.__file__
    try:
        (site / "comixup" / "probe").write_text("x")
    except OSError:
        pass
    else:
        raise SystemExit("the package folder is writable")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = torch.arange(4) % 2
    sal = torch.rand(4, 16, 16, generator=g)
    for name in ("comixup", "puzzlemix"):
        m = mixers.create(name, 2, generator=torch.Generator().manual_seed(0))
        xm, ym = m(x, y, sal)
        assert xm.shape[1:] == x.shape[1:] and torch.isfinite(xm).all(), name
    print("mixed")
""")


def _build_wheel(tmp: Path) -> Path:
    """``pip wheel`` of a copy of the project (the checkout itself stays untouched)."""
    src = tmp / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.nbi", "*.nbc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist")]
    try:  # the venv's own build backend when it is recent enough: no registry needed
        import setuptools
        import wheel  # noqa: F401
        if int(setuptools.__version__.split(".")[0]) >= 68:
            cmd.append("--no-build-isolation")
    except ImportError:
        pass
    proc = subprocess.run(cmd + [str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    wheels = sorted((tmp / "dist").glob("comixup-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_installs_read_only_and_runs(tmp_path):
    whl = _build_wheel(tmp_path)
    site, home = tmp_path / "site", tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                           "-q", "--target", str(site), str(whl)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the wheel carries the presets beside the code
    assert (site / "comixup" / "presets" / "fashion-mnist-cpu.json").is_file()
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               PYTHONDONTWRITEBYTECODE="1")
    run = (f'{sys.executable} {tmp_path / "script.py"} {site} && '
           f'{site / "bin" / "comixup"} --help')
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or subprocess.run(
                ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root without user namespaces: no way to make a folder "
                        "read-only for root")
        cmd = ["unshare", "-rm", "sh", "-c",
               f"mount --bind {site} {site} && mount -o remount,bind,ro {site} && {run}"]
    else:
        for path in [site, *site.rglob("*")]:
            if path.is_dir():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        cmd = ["sh", "-c", run]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mixed" in proc.stdout
    assert "usage: comixup" in proc.stdout
    # numba wrote its cache under the user cache directory, not beside the read-only code
    assert list((home / ".cache").rglob("*.nbi")), "no numba cache in the user cache directory"
    assert not list(site.rglob("*.nbi"))
