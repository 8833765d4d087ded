"""The end-to-end harness itself, exercised against Debian's iipsrv 1.1.

If these pass, the FastCGI client, the server helpers and the shipped lighttpd/Apache
configurations work, so an iipy end-to-end failure is iipy's fault, not the harness's.
The expected values are the test vectors of iip-protocol.md §14.

Nothing is skipped when iipsrv, lighttpd or Apache is missing: CI installs them, and a
missing component must fail loudly (the helpers raise ServerStartError saying what to
install).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import pyvips
from fcgi_client import cgi_params, encode_params, fcgi_request, parse_cgi_output
from PIL import Image
from servers import (
    APACHE_TEMPLATE,
    IIPSRV_BINARY,
    LIGHTTPD_TEMPLATE,
    Server,
    ServerStartError,
    Spawn,
    have_apache,
    have_iipsrv,
    have_lighttpd,
    iipy_argv,
    iipy_environment,
    render_apache_conf,
    render_lighttpd_conf,
    start_apache,
    start_fcgi_command,
    start_iipsrv,
    start_lighttpd,
)

WIDTH, HEIGHT = 1000, 700
OBJ_QUERY = "OBJ=IIP,1.0&OBJ=Max-size"
OBJ_BODY = b"IIP:1.0\r\nMax-size:1000 700\r\n"


def _status_note() -> str:
    """Which components are installed, for failure messages."""
    return f"iipsrv={have_iipsrv()} lighttpd={have_lighttpd()} apache+fcgid={have_apache()}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def harness_dir() -> Iterator[Path]:
    """A world-readable directory: Apache's children run as www-data when tests run as root,
    and pytest's tmp_path (under a 0700 directory) is invisible to them."""
    directory = Path(tempfile.mkdtemp(prefix="iipy-harness-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def rgb_tiff(harness_dir: Path) -> Path:
    """1000x700 RGB pyramidal TIFF, 256x256 JPEG tiles (Q90), as in iip-protocol.md §14."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([xs % 256, ys % 256, (xs // 64 * 37 + ys // 64 * 11) % 256], axis=-1)
    path = harness_dir / "rgb.tif"
    pyvips.Image.new_from_array(pixels.astype(np.uint8)).tiffsave(
        str(path),
        tile=True,
        tile_width=256,
        tile_height=256,
        pyramid=True,
        compression="jpeg",
        Q=90,
    )
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def iipsrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """iipsrv 1.1 standing alone on a TCP port (``--bind``)."""
    server = start_iipsrv({"VERBOSITY": "5"}, workdir=tmp_path_factory.mktemp("iipsrv"))
    yield server
    server.stop()


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Pixel size of a JPEG (and proof that it decodes)."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        image.load()
        return image.size


# --------------------------------------------------------------------------- (a) direct FastCGI


def test_direct_fastcgi_obj_answers_max_size(iipsrv: Server, rgb_tiff: Path) -> None:
    response = iipsrv.request(f"FIF={rgb_tiff}&{OBJ_QUERY}")
    assert response.status == 200, _status_note()
    assert response.body == OBJ_BODY
    assert response.headers.get("content-type") == "application/vnd.netfpx"
    assert response.headers.get("Server") == "iipsrv/1.1"
    assert response.raw == response.header_block + b"\r\n\r\n" + response.body
    assert response.app_status == 0 and response.stderr == b""


def test_direct_fastcgi_tile_is_a_256px_jpeg(iipsrv: Server, rgb_tiff: Path) -> None:
    response = iipsrv.request(f"FIF={rgb_tiff}&JTL=2,0")
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert int(response.header("Content-Length") or -1) == len(response.body)
    assert _jpeg_size(response.body) == (256, 256)


def test_direct_fastcgi_edge_tile_is_cropped(iipsrv: Server, rgb_tiff: Path) -> None:
    response = iipsrv.request(f"FIF={rgb_tiff}&JTL=2,11")
    assert _jpeg_size(response.body) == (232, 188)


def test_direct_fastcgi_missing_tile_is_404(iipsrv: Server, rgb_tiff: Path) -> None:
    response = iipsrv.request(f"FIF={rgb_tiff}&JTL=2,12")
    assert response.status == 404
    assert response.status_line == "404 Not Found"
    assert response.body == b"Asked for non-existent tile: 12"


def test_direct_fastcgi_large_body_spans_many_records(iipsrv: Server, rgb_tiff: Path) -> None:
    """CVT output is written in 8 KB FastCGI records; the client must reassemble them."""
    response = iipsrv.request(f"FIF={rgb_tiff}&WID=2000&CVT=jpeg")
    assert len(response.body) > 65535
    assert _jpeg_size(response.body) == (2000, 1400)
    assert response.header("Content-Disposition") == 'inline;filename="rgb.jpg"'


def test_direct_fastcgi_long_params_use_four_byte_lengths(iipsrv: Server, rgb_tiff: Path) -> None:
    params = cgi_params(f"FIF={rgb_tiff}&{OBJ_QUERY}", extra={"HTTP_X_PADDING": "x" * 70000})
    response = fcgi_request(iipsrv.address, params)
    assert response.body == OBJ_BODY


def test_iipsrv_obj_without_fif_ends_headers_early(iipsrv: Server) -> None:
    """iipsrv quirk (§3.1, §16 #1): the empty Last-Modified slot ends the header block,
    so Content-Type becomes body text; the raw bytes stay available."""
    response = iipsrv.request("OBJ=IIP,1.0")
    assert response.header("Content-Type") is None
    assert response.body == b"Content-Type: application/vnd.netfpx\r\n\r\nIIP:1.0\r\n"
    assert response.header_block.endswith(b"Cache-Control: max-age=86400")


def test_fastcgi_over_unix_socket(harness_dir: Path, rgb_tiff: Path) -> None:
    path = harness_dir / "iipsrv.sock"
    with start_fcgi_command([str(IIPSRV_BINARY)], {}, unix_socket=path) as server:
        response = fcgi_request(str(path), cgi_params(f"FIF={rgb_tiff}&{OBJ_QUERY}"))
        assert response.body == OBJ_BODY
        assert server.running


# --------------------------------------------------------------------------- (b) lighttpd proxy


def test_lighttpd_proxies_to_standalone_iipsrv(
    iipsrv: Server, rgb_tiff: Path, tmp_path: Path
) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with start_lighttpd(iipsrv, tmp_path) as web:
        with opener.open(web.url(f"FIF={rgb_tiff}&{OBJ_QUERY}"), timeout=10) as reply:
            assert reply.status == 200
            assert reply.headers["Server"] == "iipsrv/1.1"
            assert reply.read() == OBJ_BODY
        with opener.open(web.url(f"FIF={rgb_tiff}&JTL=2,0"), timeout=10) as reply:
            assert reply.headers["Content-Type"] == "image/jpeg"
            assert _jpeg_size(reply.read()) == (256, 256)


def test_lighttpd_passes_status_codes_through(iipsrv: Server, rgb_tiff: Path) -> None:
    with start_lighttpd(iipsrv) as web:
        assert web.get(f"FIF={rgb_tiff}&JTL=2,12").status == 404
        advert = web.get("")
        assert advert.status == 400
        assert advert.header("Content-Type") == "text/html"


# --------------------------------------------------------------------------- (c) lighttpd spawns


def test_lighttpd_spawns_iipsrv_with_filesystem_prefix(rgb_tiff: Path, tmp_path: Path) -> None:
    backend = Spawn(
        [str(IIPSRV_BINARY)],
        {"FILESYSTEM_PREFIX": f"{rgb_tiff.parent}/", "VERBOSITY": "5"},
        processes=2,
    )
    web = start_lighttpd(backend, tmp_path, mounts=("/fcgi-bin/iipsrv.fcgi", "/iiif"))
    with web:
        children = web.children()
        assert len(children) == 2, f"max-procs=2 should give 2 iipsrv processes: {children}"
        assert web.get(f"FIF=rgb.tif&{OBJ_QUERY}").body == OBJ_BODY
        assert web.get(f"FIF=rgb.tif&{OBJ_QUERY}", path="/iiif").body == OBJ_BODY
        assert _jpeg_size(web.get("FIF=rgb.tif&JTL=2,0").body) == (256, 256)
        log = (tmp_path / "backend.log").read_text()
        assert f"Setting filesystem prefix to '{rgb_tiff.parent}/'" in log
    assert not web.running
    assert not any(os.path.exists(f"/proc/{pid}") and _not_zombie(pid) for pid in children)


def _not_zombie(pid: int) -> bool:
    """A zombie is dead for our purposes (nobody may reap orphans in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --------------------------------------------------------------------------- (d) Apache mod_fcgid


def test_apache_mod_fcgid_spawns_iipsrv(rgb_tiff: Path) -> None:
    backend = Spawn([str(IIPSRV_BINARY)], {"VERBOSITY": "5"}, processes=2)
    with start_apache(backend, readable_paths=[rgb_tiff]) as web:
        obj = web.get(f"FIF={rgb_tiff}&{OBJ_QUERY}")
        assert obj.status == 200
        assert obj.body == OBJ_BODY
        assert "mod_fcgid" in (obj.header("Server") or "")
        assert obj.header("X-Powered-By") == "IIPImage"
        tile = web.get(f"FIF={rgb_tiff}&JTL=2,0")
        assert _jpeg_size(tile.body) == (256, 256)
        assert web.get(f"FIF={rgb_tiff}&JTL=2,12").status == 404
        workdir = web.workdir
    assert not workdir.exists(), "an Apache work dir the helper created must be removed"


# --------------------------------------------------------------------------- the iipy side


def test_iipy_bind_answers_like_iipsrv(iipsrv: Server, rgb_tiff: Path, tmp_path: Path) -> None:
    """The same helper drives iipy's standalone mode (``iipy --bind``, preforked)."""
    env = iipy_environment({"VERBOSITY": "5"})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path, extra_args=["--processes", "2"])
    with server:
        query = f"FIF={rgb_tiff}&{OBJ_QUERY}"
        assert server.request(query).body == iipsrv.request(query).body == OBJ_BODY
        assert _jpeg_size(server.request(f"FIF={rgb_tiff}&JTL=2,0").body) == (256, 256)
        workers = server.children()
    assert not any(_not_zombie(pid) for pid in workers), "stop() must end forked workers"


def test_lighttpd_spawns_iipy_on_fd0(rgb_tiff: Path, tmp_path: Path) -> None:
    """lighttpd's bin-path hands iipy the listening socket on fd 0, as it does iipsrv."""
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{rgb_tiff.parent}/"})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), tmp_path) as web:
        assert web.get(f"FIF=rgb.tif&{OBJ_QUERY}").body == OBJ_BODY
        assert _jpeg_size(web.get("FIF=rgb.tif&JTL=2,0").body) == (256, 256)


# --------------------------------------------------------------------------- failures, configs


def test_server_that_dies_reports_its_output() -> None:
    with pytest.raises(ServerStartError, match="boom") as info:
        start_fcgi_command(["/bin/sh", "-c", "echo boom >&2; exit 3", "sh"], {})
    assert info.value.exited


def test_lighttpd_backend_that_dies_is_reported_quickly(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match="lighttpd did not start"):
        start_lighttpd(Spawn(["/bin/false"]), tmp_path, timeout=10)


def test_user_lighttpd_config_is_valid_as_shipped(tmp_path: Path) -> None:
    conf = tmp_path / "lighttpd.conf"
    conf.write_text(
        f'server.document-root = "{tmp_path}"\nserver.port = 1\ninclude "{LIGHTTPD_TEMPLATE}"\n'
    )
    result = subprocess.run(
        ["lighttpd", "-tt", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_user_apache_config_is_valid_as_shipped(tmp_path: Path) -> None:
    conf = tmp_path / "httpd.conf"
    modules = "/usr/lib/apache2/modules"
    conf.write_text(
        f'ServerRoot "{tmp_path}"\nListen 127.0.0.1:1\nDefaultRuntimeDir "{tmp_path}"\n'
        f"PidFile {tmp_path}/pid\nErrorLog {tmp_path}/error.log\n"
        + "".join(
            f"LoadModule {m}_module {modules}/mod_{m}.so\n"
            for m in ("mpm_event", "authz_core", "alias", "mime", "fcgid")
        )
        + f'TypesConfig /etc/mime.types\nInclude "{APACHE_TEMPLATE}"\n'
    )
    result = subprocess.run(
        ["apache2", "-t", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _unmarked_lines(text: str) -> list[str]:
    """The lines outside the @...-begin/@...-end blocks."""
    kept, inside = [], False
    for line in text.splitlines():
        if "-begin" in line and line.lstrip().startswith("# @"):
            inside = True
        elif "-end" in line and line.lstrip().startswith("# @"):
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def test_harness_configs_differ_from_shipped_ones_only_in_marked_blocks(tmp_path: Path) -> None:
    spawn = Spawn(["/usr/bin/iipy"], {"VERBOSITY": "2"}, processes=3)
    settings = {"VERBOSITY": "2", "CORS": 'a "quoted" value'}
    variants = [
        (LIGHTTPD_TEMPLATE, render_lighttpd_conf(spawn, settings, command="/usr/bin/iipy",
                                                 socket_path=tmp_path / "s")),
        (LIGHTTPD_TEMPLATE, render_lighttpd_conf(("127.0.0.1", 9000), {})),
        (APACHE_TEMPLATE, render_apache_conf(Path("/usr/bin/iipy"), settings, 3)),
    ]  # fmt: skip
    for template, rendered in variants:
        assert _unmarked_lines(rendered) == _unmarked_lines(template.read_text())
    assert "var.iipy_processes = 3" in variants[0][1]
    assert '"CORS" => "a \\"quoted\\" value"' in variants[0][1]
    assert '"host" => "127.0.0.1", "port" => 9000' in variants[1][1]
    assert 'FcgidInitialEnv CORS "a \\"quoted\\" value"' in variants[2][1]


# --------------------------------------------------------------------------- client unit tests


def test_cgi_params_look_like_a_web_server() -> None:
    params = cgi_params(
        "FIF=a.tif&OBJ=IIP,1.0",
        host="example.org:8080",
        headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
    )
    assert params["QUERY_STRING"] == "FIF=a.tif&OBJ=IIP,1.0"
    assert params["REQUEST_URI"] == "/fcgi-bin/iipsrv.fcgi?FIF=a.tif&OBJ=IIP,1.0"
    assert params["SCRIPT_NAME"] == "/fcgi-bin/iipsrv.fcgi"
    assert params["REQUEST_METHOD"] == "GET"
    assert (params["SERVER_NAME"], params["SERVER_PORT"]) == ("example.org", "8080")
    assert params["HTTP_HOST"] == "example.org:8080"
    assert params["HTTP_IF_MODIFIED_SINCE"].startswith("Sat")
    assert params["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert cgi_params("", uri="/iiif/a.tif/info.json")["REQUEST_URI"] == "/iiif/a.tif/info.json"
    assert cgi_params(uri="/x?IIIF=a")["QUERY_STRING"] == "IIIF=a"


def test_encode_params_uses_short_and_long_lengths() -> None:
    assert encode_params({"A": "b"}) == b"\x01\x01Ab"
    long = encode_params({"K": "v" * 200})
    assert long[:5] == b"\x01\x80\x00\x00\xc8"


def test_parse_cgi_output_variants() -> None:
    lf = parse_cgi_output(b"Status: 304 Not Modified\nX-A: 1\n\nbody\r\n\r\nmore")
    assert (lf.status, lf.headers.get("x-a"), lf.body) == (304, "1", b"body\r\n\r\nmore")
    no_blank = parse_cgi_output(b"just text")
    assert not no_blank.headers_complete and no_blank.body == b"just text"
    empty_status = parse_cgi_output(b"Status: \r\nContent-Type: text/plain\r\n\r\nx")
    assert empty_status.status == 200 and empty_status.status_line == ""
    repeated = parse_cgi_output(b"Vary: a\r\nvary: b\r\n\r\n")
    assert repeated.headers.get_all("VARY") == ["a", "b"] and repeated.headers.has("vary")
