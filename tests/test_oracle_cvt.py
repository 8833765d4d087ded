"""Oracle: CVT exports and processed tiles against Debian's iipsrv 1.1.

Both servers read the same generated images; sizes must match exactly where
1.1 is right, and pixels closely (PSNR), since resamplers and JPEG encoders
differ.  Where 1.1 is wrong iipy follows iipsrv 1.3 (README, compatibility),
and those cases are checked against the 1.3 rule instead.

The FastCGI client is a small one kept here until the shared harness lands.
Skipped only when the iipsrv 1.1 binary is not installed.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from images import make_tiff
from PIL import Image
from wsgi import call, make_app

IIPSRV = "/usr/lib/iipimage-server/iipsrv.fcgi"

pytestmark = pytest.mark.skipif(not os.access(IIPSRV, os.X_OK), reason="iipsrv 1.1 not installed")


# -- a minimal FastCGI client -------------------------------------------------------------


def _record(kind: int, request_id: int, content: bytes) -> bytes:
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), 0) + content


def _params(params: dict[str, str]) -> bytes:
    out = b""
    for name, value in params.items():
        n, v = name.encode(), value.encode()
        for length in (len(n), len(v)):
            out += bytes([length]) if length < 128 else struct.pack(">I", length | 1 << 31)
        out += n + v
    return out


def fcgi_get(port: int, query: str) -> tuple[dict[str, str], bytes]:
    """One GET through FastCGI → (CGI headers, body)."""
    params = {"QUERY_STRING": query, "REQUEST_METHOD": "GET", "REQUEST_URI": "/iipsrv?" + query,
              "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost"}
    message = (
        _record(1, 1, struct.pack(">HB5x", 1, 0))
        + _record(4, 1, _params(params)) + _record(4, 1, b"")
        + _record(5, 1, b"")
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(message)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    stdout = b""
    pos = 0
    while pos + 8 <= len(data):
        _, kind, _, length, padding = struct.unpack(">BBHHB", data[pos : pos + 7])
        content = data[pos + 8 : pos + 8 + length]
        if kind == 6:
            stdout += content
        pos += 8 + length + padding
    head, _, body = stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("oracle")
    make_tiff(d / "rgb.tif", 1000, 700, Q=95)
    make_tiff(d / "lossless.tif", 1000, 700, compression="deflate")
    make_tiff(d / "grey16.tif", 1000, 700, bands=1, dtype="uint16", compression="deflate")
    return d


@pytest.fixture(scope="module")
def iipsrv(oracle_dir):
    port = _free_port()
    env = {"FILESYSTEM_PREFIX": str(oracle_dir) + "/", "VERBOSITY": "0",
           "LOGFILE": "/dev/null", "MAX_CVT": "5000", "JPEG_QUALITY": "95",
           "MEMCACHED_SERVERS": "127.0.0.1:1", "PATH": os.environ.get("PATH", "")}
    proc = subprocess.Popen([IIPSRV, "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def app(oracle_dir):
    return make_app(FILESYSTEM_PREFIX=str(oracle_dir) + "/", JPEG_QUALITY="95")


def image(body: bytes) -> np.ndarray:
    array = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(np.float64)
    return array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


# -- exports --------------------------------------------------------------------------------

SAME_SIZE = [
    "FIF=rgb.tif&CVT=jpeg",
    "FIF=rgb.tif&WID=300&CVT=jpeg",
    "FIF=rgb.tif&HEI=300&CVT=jpeg",
    "FIF=rgb.tif&WID=300&HEI=300&CVT=jpeg",
    "FIF=rgb.tif&WID=2000&CVT=jpeg",
    "FIF=rgb.tif&WID=500&ROT=90&CVT=jpeg",
    "FIF=rgb.tif&WID=500&ROT=180&CVT=jpeg",
    "FIF=rgb.tif&RGN=0,0,0.5,0.5&WID=250&CVT=jpeg",
    "FIF=rgb.tif&RGN=0.25,0.25,0.5,0.5&CVT=jpeg",
    "FIF=lossless.tif&WID=400&CVT=jpeg",
    "FIF=lossless.tif&WID=400&CNT=1.5&CVT=jpeg",
    "FIF=lossless.tif&WID=400&GAM=2&CVT=jpeg",
    "FIF=lossless.tif&WID=400&INV=1&CVT=jpeg",
    "FIF=lossless.tif&WID=400&CTW=[0,0,1;0,1,0;1,0,0]&CVT=jpeg",
    "FIF=grey16.tif&WID=400&CVT=jpeg",
    "FIF=grey16.tif&WID=400&CMP=hot&CVT=jpeg",
    "FIF=grey16.tif&WID=400&CMP=jet&CVT=jpeg",
]


@pytest.mark.parametrize("query", SAME_SIZE)
def test_export_matches_iipsrv_1_1(iipsrv, app, query):
    headers, theirs = fcgi_get(iipsrv, query)
    assert headers.get("content-type") == "image/jpeg", (headers, theirs[:200])
    ours = call(app, query)
    assert ours.status == 200
    a, b = image(ours.body), image(theirs)
    assert a.shape == b.shape, query
    # JPEG Q95 both sides, different resamplers (iipsrv: corner-aligned bilinear)
    print("PSNR", query, round(psnr(a, b), 1))
    assert psnr(a, b) > 30, (query, psnr(a, b))
    assert ours.header("Content-Disposition") == headers.get("content-disposition")


def test_region_size_follows_1_3_where_1_1_is_off_by_one(iipsrv, app):
    query = "FIF=rgb.tif&RGN=0.25,0.25,0.5,0.5&WID=100&CVT=jpeg"
    _, theirs = fcgi_get(iipsrv, query)
    assert Image.open(io.BytesIO(theirs)).size == (99, 70)  # 1.1's rounding
    assert Image.open(io.BytesIO(call(app, query).body)).size == (100, 70)  # 1.3


def test_iipsrv_1_1_crashes_a_worker_on_a_bad_region_iipy_answers_400(app):
    result = call(app, "FIF=rgb.tif&RGN=2,2,1,1&CVT=jpeg")
    assert result.status == 400


@pytest.mark.parametrize(
    "query",
    [
        "FIF=lossless.tif&CNT=2&JTL=1,0",
        "FIF=lossless.tif&GAM=0.5&JTL=1,0",
        "FIF=lossless.tif&INV=1&JTL=1,1",
        "FIF=lossless.tif&ROT=90&JTL=1,1",
        "FIF=grey16.tif&JTL=2,5",
        "FIF=grey16.tif&CMP=cold&JTL=1,0",
    ],
)
def test_processed_tiles_match_iipsrv_1_1(iipsrv, app, query):
    _, theirs = fcgi_get(iipsrv, query)
    ours = call(app, query)
    a, b = image(ours.body), image(theirs)
    assert a.shape == b.shape
    print("PSNR", query, round(psnr(a, b), 1))
    assert psnr(a, b) > 35, (query, psnr(a, b))


# -- watermark -----------------------------------------------------------------------------


def test_watermark_adds_what_iipsrv_1_1_adds(oracle_dir):
    """A 64×32 red mark at opacity 0.5: +127 on red in a 64×32 box, on both servers."""
    import pyvips

    red = np.zeros((32, 64, 3), np.uint8)
    red[..., 0] = 255
    mark = oracle_dir / "red_mark.tif"
    pyvips.Image.new_from_memory(red.tobytes(), 64, 32, 3, "uchar").copy(
        interpretation="srgb").tiffsave(str(mark))
    make_tiff(oracle_dir / "black.tif", 512, 512, compression="deflate",
              pattern=np.zeros((512, 512, 3), np.uint8))
    port = _free_port()
    env = {"FILESYSTEM_PREFIX": str(oracle_dir) + "/", "VERBOSITY": "0", "LOGFILE": "/dev/null",
           "WATERMARK": str(mark), "WATERMARK_OPACITY": "0.5", "JPEG_QUALITY": "100",
           "MEMCACHED_SERVERS": "127.0.0.1:1"}
    proc = subprocess.Popen([IIPSRV, "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        _, theirs = fcgi_get(port, "FIF=black.tif&JTL=1,0")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    app = make_app(FILESYSTEM_PREFIX=str(oracle_dir) + "/", WATERMARK=str(mark),
                   WATERMARK_OPACITY="0.5", JPEG_QUALITY="100")
    ours = image(call(app, "FIF=black.tif&JTL=1,0").body)
    for out in (ours, image(theirs)):
        marked = out[:, :, 0] > 90
        assert abs(int(marked.sum()) - 64 * 32) < 0.1 * 64 * 32
        assert abs(float(np.median(out[:, :, 0][marked])) - 127) <= 3
        assert out[:, :, 1:].max() < 40  # JPEG chroma ringing only
