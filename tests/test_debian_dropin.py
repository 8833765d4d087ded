"""Debian drop-in (issue 14, item 2): Debian's own iipimage-server Apache configuration
(/etc/apache2/mods-available/iipsrv.conf: ScriptAlias /iipsrv/, the FcgidInitialEnv block,
/iipsrv/iipsrv.fcgi URLs) serves iipy when its program path, and nothing else, is changed
to the production install's fcgi-bin/ directory (scripts/install.sh --prefix)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from servers import start_apache_site

DEBIAN_CONF = Path("/etc/apache2/mods-available/iipsrv.conf")  # package iipimage-server
DEBIAN_PROGRAM_DIR = '"/usr/lib/iipimage-server/"'
OBJ = "OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number"
OBJ_BODY = b"IIP:1.0\r\nMax-size:1000 700\r\nTile-size:256 256\r\nResolution-number:3\r\n"


def switched(text: str, fcgi_bin: Path) -> str:
    """Debian's configuration with the one change the README asks for."""
    assert text.count(DEBIAN_PROGRAM_DIR) == 1, "Debian's iipsrv.conf changed shape"
    return text.replace(DEBIAN_PROGRAM_DIR, f'"{fcgi_bin}/"')


@pytest.fixture
def public(images):
    directory = Path(tempfile.mkdtemp(prefix="iipy-debian-"))
    directory.chmod(0o755)
    shutil.copy(images.rgb, directory / "rgb.tif")
    (directory / "rgb.tif").chmod(0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_debian_iipsrv_conf_serves_iipy_with_only_the_program_path_changed(
    production_install, public
):
    prefix, _ = production_install
    debian = DEBIAN_CONF.read_text()
    # the configuration really is Debian's: its shape, untouched but for the path
    assert re.search(r'^ScriptAlias /iipsrv/ "/usr/lib/iipimage-server/"$', debian, re.M)
    assert "FcgidInitialEnv VERBOSITY" in debian and "AddHandler fcgid-script .fcgi" in debian
    site = switched(debian, prefix / "fcgi-bin")
    diff = [(a, b) for a, b in zip(debian.splitlines(), site.splitlines(), strict=True) if a != b]
    assert len(diff) == 1
    image = public / "rgb.tif"
    with start_apache_site(site, public / "apache", mount="/iipsrv/iipsrv.fcgi",
                           executables=[prefix / "fcgi-bin" / "iipsrv.fcgi"],
                           readable_paths=[image]) as web:
        meta = web.get(f"FIF={image}&{OBJ}")  # no FILESYSTEM_PREFIX in Debian's block
        assert meta.status == 200 and meta.body == OBJ_BODY
        assert meta.header("Server", "").startswith("Apache")  # Apache's own in front
        tile = web.get(f"FIF={image}&JTL=2,0")
        assert tile.status == 200 and tile.body[:2] == b"\xff\xd8"
        assert web.get(f"FIF={public}/missing.tif&JTL=0,0").status == 404
        health = web.get("", path="/iipsrv/iipsrv.fcgi/health")
        assert health.header("Content-Type") == "application/json"
    # the running program was the production install's iipy
    assert '"server": "iipy/' in health.body.decode()
