"""Installing outside the clone (issue 14, item 1): the production install
(``scripts/install.sh --prefix``) into a temporary prefix, really built and
installed with pip, then run from another directory; the shipped configurations
(``iipy config``); the licence; the policy-rc.d guard of scripts/install.sh."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from servers import free_port, http_get, wait_for_port

from iipy import configs

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "scripts" / "install.sh"


@pytest.fixture(scope="module")
def prefix(production_install) -> tuple[Path, Path]:
    """A production install: (prefix, bindir) (tests/conftest.py)."""
    return production_install


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env={**clean, **env},
                          timeout=120, check=False)


def test_production_install_is_not_the_clone(prefix, tmp_path):
    opt, bindir = prefix
    script = ("import iipy, glymur, packaging, importlib.metadata as m;"
              "print(iipy.__file__); print(m.requires('iipy'))")
    result = _run([str(opt / "bin" / "python"), "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    location, requires = result.stdout.splitlines()
    assert location.startswith(str(opt)) and not location.startswith(str(REPO))
    assert "packaging" in requires  # glymur imports it without declaring it
    version = _run([str(bindir / "iipy"), "--version"], tmp_path)
    assert version.stdout.startswith("iipy ")
    license_files = list(opt.glob("lib/python3*/site-packages/iipy-*.dist-info/licenses/LICENSE"))
    assert license_files and "GNU GENERAL PUBLIC LICENSE" in license_files[0].read_text()


def test_production_install_serves_jpeg2000_and_tiff(prefix, images, jp2_images, image_dir,
                                                     tmp_path):
    opt, bindir = prefix
    port = free_port()
    log = tmp_path / "iipy.log"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    process = subprocess.Popen(
        [str(bindir / "iipy"), "--http", f"127.0.0.1:{port}", "--processes", "1"],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**clean, "FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(log)},
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30, process=process)
        for name in ("jp2_rgb.jp2", "rgb.tif"):
            meta = http_get(f"http://127.0.0.1:{port}/?FIF={name}&OBJ=Max-size")
            assert meta.status == 200, meta.body
            assert meta.body == b"\r\nMax-size:1000 700\r\n"
            tile = http_get(f"http://127.0.0.1:{port}/?FIF={name}&JTL=2,0")
            assert tile.status == 200 and tile.body[:2] == b"\xff\xd8"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    # built with a compiler here: no warning about the C extension
    assert "_dctsplice is not built" not in log.read_text()


@pytest.mark.parametrize("name", ["apache", "lighttpd", "systemd", "environment"])
def test_installed_iipy_prints_the_shipped_configs(prefix, tmp_path, name):
    _, bindir = prefix
    result = _run([str(bindir / "iipy"), "config", name], tmp_path)
    assert result.returncode == 0, result.stderr
    sources = [p for pattern in configs.CONFIGS[name] for p in sorted(REPO.glob(pattern))]
    assert sources and result.stdout == "".join(p.read_text() for p in sources)


def test_every_config_in_the_tree_is_in_the_wheel(prefix):
    opt, _ = prefix
    packaged = next(opt.glob("lib/python3*/site-packages/iipy/configs"))
    for name, patterns in configs.CONFIGS.items():
        for pattern in patterns:
            for source in REPO.glob(pattern):
                copy = packaged / source.relative_to(REPO)
                assert copy.read_bytes() == source.read_bytes(), name


def test_config_command_in_the_clone():
    run = [sys.executable, "-m", "iipy", "config"]
    listing = subprocess.run(run, capture_output=True, text=True, check=False)
    assert listing.returncode == 0 and "apache" in listing.stdout and "systemd" in listing.stdout
    unknown = subprocess.run(run + ["iis"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 2 and "unknown name 'iis'" in unknown.stderr
    apache = subprocess.run(run + ["apache"], capture_output=True, text=True, check=False)
    assert apache.stdout == (REPO / "apache" / "iipy.conf").read_text()


def test_license_is_the_declared_gpl3():
    text = (REPO / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert "license = GPL-3.0-or-later" in (REPO / "setup.cfg").read_text()


# -- scripts/install.sh and an existing policy-rc.d -------------------------------------


def _fake_tools(directory: Path, policy: Path) -> Path:
    """dpkg-query saying nothing is installed; apt-get recording the policy in force, then
    failing (as a broken mirror would) so that the script stops before touching .venv."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    scripts = {
        "dpkg-query": "#!/bin/sh\nexit 1\n",
        "apt-get": (f'#!/bin/sh\nif [ "$1" = install ]; then cat "{policy}" '
                    f'> "{directory}/during"; exit 100; fi\nexit 0\n'),
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


@pytest.mark.parametrize("existing", [b"#!/bin/sh\n# the administrator's\nexit 0\n", None])
def test_install_script_puts_back_policy_rc_d_even_when_apt_fails(tmp_path, existing):
    policy = tmp_path / "policy-rc.d"
    if existing is not None:
        policy.write_bytes(existing)
    bin_dir = _fake_tools(tmp_path, policy)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "IIPY_POLICY_RC_D": str(policy)}
    result = subprocess.run(["bash", str(INSTALL)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 100
    assert (tmp_path / "during").read_text() == "#!/bin/sh\nexit 101\n"
    if existing is None:
        assert not policy.exists()
    else:
        assert policy.read_bytes() == existing


def test_missing_c_extension_is_warned_at_start_up(tmp_path, monkeypatch):
    from iipy import cli
    from iipy.jpeg import markjpeg
    from iipy.serve import logsetup
    from iipy.settings import Settings

    log = tmp_path / "iipy.log"
    logsetup.configure(Settings.from_environ({"LOGFILE": str(log)}))
    try:
        cli.warn_missing_extension()
        assert "_dctsplice" not in log.read_text()  # built here
        monkeypatch.setattr(markjpeg, "_dctsplice", None)
        cli.warn_missing_extension()
        assert "WARNING iipy: the C extension iipy.jpeg._dctsplice is not built" in log.read_text()
    finally:
        logsetup.configure(Settings.from_environ({"LOGFILE": "/dev/null", "VERBOSITY": "0"}))
