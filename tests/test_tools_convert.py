"""`iipy convert` and `iipy check` run as a user runs them (``python -m iipy …``).

A photograph-sized JPEG (10000x8000, tests/toolimages.py) is converted to a pyramidal
TIFF and to JPEG 2000, both are served by iipy behind lighttpd, and served tiles are
compared with the source's pixels; a strip TIFF fails `check` and passes after
`convert`; a convert killed half-way leaves nothing under the final name.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import toolimages
from PIL import Image
from servers import REPO_ROOT, Spawn, iipy_argv, iipy_environment, start_lighttpd

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "IIPY_PROGRESS": "0"}


def iipy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iipy", *args], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 * 255 / mse)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def photo(work) -> Path:
    return toolimages.photo(work / "photo.jpg")


@pytest.fixture(scope="module")
def source_pixels(photo) -> np.ndarray:
    import pyvips

    image = pyvips.Image.new_from_file(str(photo))
    return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                      shape=(image.height, image.width, 3)).astype(np.float64)


@pytest.fixture(scope="module")
def converted(work, photo) -> dict[str, Path]:
    out = {}
    for fmt in ("tiff", "jp2"):
        target = work / f"photo.{'tif' if fmt == 'tiff' else 'jp2'}"
        result = iipy("convert", str(photo), str(target), "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert f"-> {target}" in result.stdout and "checked" in result.stdout
        out[fmt] = target
    return out


@pytest.fixture(scope="module")
def web(work, converted):
    env = iipy_environment({"FILESYSTEM_PREFIX": str(work) + "/", "MAX_CVT": "12000"})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), work / "web",
                        mounts=("/fcgi-bin/iipsrv.fcgi", "/iiif")) as server:
        yield server


@pytest.mark.parametrize("fmt", ["tiff", "jp2"])
def test_converted_photo_served_through_lighttpd_matches_the_source(
        web, converted, source_pixels, fmt):
    name = converted[fmt].name
    info = json.loads(web.get(path=f"/iiif/{name}/info.json").body)
    assert (info["width"], info["height"]) == toolimages.PHOTO_SIZE
    factors = info["tiles"][0]["scaleFactors"]
    assert max(factors) >= 32  # levels down to one 256 tile of 10000x8000
    height, width = source_pixels.shape[:2]
    for x, y in ((0, 0), (4864, 3840), (9984, 7936)):  # a corner, the middle, the last tile
        w, h = min(256, width - x), min(256, height - y)
        response = web.get(path=f"/iiif/{name}/{x},{y},{w},{h}/{w},{h}/0/default.jpg")
        assert response.status == 200, response.body[:200]
        got = pixels(response.body)
        assert got.shape == (h, w, 3)
        assert psnr(got, source_pixels[y:y + h, x:x + w]) > 30
    # a reduced level: 1/8 of the image against the source box-averaged 8x8
    response = web.get(path=f"/iiif/{name}/0,0,2048,2048/256,256/0/default.jpg")
    expected = source_pixels[:2048, :2048].reshape(256, 8, 256, 8, 3).mean(axis=(1, 3))
    assert psnr(pixels(response.body), expected) > 28


def test_check_describes_the_converted_files(converted):
    result = iipy("check", "--json", str(converted["tiff"]), str(converted["jp2"]))
    assert result.returncode == 0, result.stdout + result.stderr
    tiff, jp2 = json.loads(result.stdout)
    assert tiff["servable"] and not tiff["problems"]
    assert tiff["compression"] == "jpeg" and tuple(tiff["tile"]) == (256, 256)
    assert tiff["levels"] == tiff["levels_needed"] == 7
    assert tiff["tile_ms"] is not None and tiff["tile_ms"] >= 0
    assert jp2["servable"] and not jp2["problems"]
    assert jp2["format"] == "jp2"  # a JP2 file, not a bare codestream (glymur goes by suffix)
    coding = jp2["jpeg2000"]
    assert coding["progression"] == "RPCL"
    assert coding["code_block"] == [64, 64]
    assert coding["precincts"] and all(p == [256, 256] for p in coding["precincts"])
    assert coding["resolutions"] == 7  # 10000 / 2^6 = 157 <= 256
    assert coding["tiles"] == [1024, 1024]


def test_tiff_tiles_are_ycbcr_420(converted):
    """Colour JPEG tiles are stored YCbCr 4:2:0 (component 1 sampled 2x2)."""
    from iipy.decoders import decoder_for

    decoder = decoder_for(str(converted["tiff"]))
    try:
        tile = decoder.raw_tile(0, 5, 5)
    finally:
        decoder.close()
    sof = tile.index(b"\xff\xc0")
    components = tile[sof + 9]
    assert components == 3 and tile[sof + 11] == 0x22


def test_strip_tiff_has_problems_in_check_then_passes_after_convert(tmp_path):
    strip = toolimages.strip_tiff(tmp_path / "scan.tif")
    before = iipy("check", str(strip))
    assert before.returncode == 0  # served (levels decoded whole), with a problem said
    assert "serves, with problems" in before.stdout and "not tiled" in before.stdout
    assert f"fix: iipy convert {strip}" in before.stdout
    target = tmp_path / "scan-tiled.tif"
    result = iipy("convert", str(strip), str(target))
    assert result.returncode == 0, result.stderr
    after = iipy("check", str(target))
    assert after.returncode == 0 and f"{target}: ok" in after.stdout
    from iipy.decoders import decoder_for

    decoder = decoder_for(str(target))
    try:  # baseline text tags carried over (libvips keeps only ImageDescription)
        assert decoder.info.metadata["creator"] == "Ada Lovelace"
        assert decoder.info.metadata["rights"] == "CC BY 4.0 Example Museum"
        assert decoder.info.metadata["description"].startswith("A strip TIFF")
    finally:
        decoder.close()


def test_check_json_and_exit_codes(tmp_path):
    assert iipy("check").returncode == 2  # usage error
    missing = iipy("check", "--json", str(tmp_path / "nothing.tif"))
    assert missing.returncode == 1
    assert json.loads(missing.stdout)[0]["problems"] == ["no such file"]


def test_refuses_to_overwrite_and_reports_each_failed_file(tmp_path):
    good = toolimages.strip_tiff(tmp_path / "good.tif", 600, 400)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    result = iipy("convert", str(good), str(bad), str(out), "--jobs", "2")
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "bad.jpg" in failed[0]
    assert (out / "good.tif").exists() and not (out / "bad.tif").exists()
    before = (out / "good.tif").stat().st_mtime_ns
    again = iipy("convert", str(good), str(out / "good.tif"))
    assert again.returncode == 1 and "--force" in again.stderr
    assert (out / "good.tif").stat().st_mtime_ns == before
    forced = iipy("convert", str(good), str(out / "good.tif"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert [p.name for p in out.iterdir()] == ["good.tif"]  # no temporary left


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_convert_leaves_no_file_under_the_final_name(work, photo, tmp_path, sig):
    target = tmp_path / "killed.jp2"
    proc = subprocess.Popen([sys.executable, "-m", "iipy", "convert", str(photo), str(target),
                             "--format", "jp2"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    partial: list[Path] = []
    while time.monotonic() < deadline and not partial:
        partial = [p for p in tmp_path.iterdir() if ".part" in p.name
                   and p.stat().st_size > 0]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    assert partial, "no temporary file appeared"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert not target.exists()
    left = [p.name for p in tmp_path.iterdir()]
    if sig == signal.SIGTERM:  # caught: the temporary is removed too
        assert left == [] and proc.returncode == 128 + sig
    else:  # nothing can run on SIGKILL: only the hidden temporary remains
        assert left == [partial[0].name] and left[0].startswith(".killed.jp2.")


def test_sixteen_bit_kept_losslessly_and_icc_kept(tmp_path):
    """16-bit samples stay 16-bit (JPEG cannot hold them: deflate); ICC reaches TIFF and JP2."""
    import pyvips

    x = pyvips.Image.xyz(700, 500)
    deep = (x[0] * 90).bandjoin([x[1] * 120, (x[0] + x[1]) * 40]).cast("ushort")
    deep.copy(interpretation="rgb16").pngsave(str(tmp_path / "deep.png"))
    tagged = toolimages.picture(700, 500).icc_transform("srgb", input_profile="srgb")
    assert tagged.get_typeof("icc-profile-data")
    tagged.jpegsave(str(tmp_path / "tagged.jpg"), Q=90)
    for args in (("deep.png", "deep.tif"), ("tagged.jpg", "tagged.tif"),
                 ("tagged.jpg", "tagged.jp2", "--format", "jp2")):
        result = iipy("convert", str(tmp_path / args[0]), str(tmp_path / args[1]), *args[2:])
        assert result.returncode == 0, result.stderr
    report = iipy("check", "--json", "--no-timing", *(str(tmp_path / n) for n in (
        "deep.tif", "tagged.tif", "tagged.jp2")))
    deep_tif, tagged_tif, tagged_jp2 = json.loads(report.stdout)
    assert deep_tif["bits"] == 16 and deep_tif["compression"] == "deflate"
    assert tagged_tif["icc"] and tagged_jp2["icc"]


@pytest.mark.parametrize("compression", ["deflate", "lzw", "webp", "zstd", "none"])
def test_every_compression_is_servable(tmp_path, compression):
    source = toolimages.strip_tiff(tmp_path / "scan.tif", 900, 600)
    target = tmp_path / "out.tif"
    result = iipy("convert", str(source), str(target), "--compression", compression,
                  "--bigtiff", "yes" if compression == "none" else "auto")
    if compression == "zstd" and not _libvips_writes_zstd():
        # the libvips in use was built without it: one line saying so, and no output
        assert result.returncode == 1 and "ZSTD" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not target.exists()
        return
    assert result.returncode == 0, result.stderr
    report = json.loads(iipy("check", "--json", str(target)).stdout)[0]
    assert report["servable"] and report["compression"] == compression
    assert report["format"] == ("bigtiff" if compression == "none" else "tiff")
    assert report["levels"] == 3 and report["tile_ms"] is not None


def _libvips_writes_zstd() -> bool:
    import pyvips

    try:
        pyvips.Image.black(16, 16).tiffsave_buffer(compression="zstd")
    except pyvips.Error:
        return False
    return True


def test_exif_text_of_a_jpeg_becomes_tiff_tags(tmp_path):
    """libvips writes no EXIF into a TIFF: Artist and Copyright of a JPEG become TIFF tags."""
    import pyvips

    image = toolimages.picture(640, 480)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Ada Lovelace")
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Copyright", "CC BY 4.0 Example Museum")
    image.jpegsave(str(tmp_path / "camera.jpg"))
    result = iipy("convert", str(tmp_path / "camera.jpg"), str(tmp_path / "camera.tif"))
    assert result.returncode == 0, result.stderr
    from iipy.decoders import decoder_for

    decoder = decoder_for(str(tmp_path / "camera.tif"))
    try:
        assert decoder.info.metadata["creator"] == "Ada Lovelace"
        assert decoder.info.metadata["rights"] == "CC BY 4.0 Example Museum"
    finally:
        decoder.close()


def test_check_flags_a_tiled_tiff_without_levels(tmp_path):
    flat = tmp_path / "flat.tif"
    toolimages.picture(3000, 2000).tiffsave(str(flat), tile=True, tile_width=256,
                                             tile_height=256, compression="jpeg", Q=85)
    result = iipy("check", str(flat))
    assert result.returncode == 0  # iipy serves it (slowly at small sizes)
    assert "serves, with problems" in result.stdout
    assert "too few levels: 1 of 5" in result.stdout
    assert f"fix: iipy convert {flat}" in result.stdout


@pytest.mark.parametrize("bigtiff", ["no", "yes"])
def test_exif_ifd_of_a_jpeg_is_kept_and_reaches_exports(tmp_path, bigtiff):
    """libvips writes no EXIF IFD into a TIFF: convert appends the source's EXIF and GPS
    IFDs (in the file's layout), so an export of the pyramid carries the camera's EXIF."""
    import struct

    from metaread import exif_fields, jpeg_exif
    from wsgi import call, make_app

    from iipy.decoders import decoder_for
    from iipy.decoders.exif import build_exif

    exif = build_exif(">", [(271, 2, 4, b"Cam\0")],  # big-endian, as many cameras write
                      [(33434, 5, 1, struct.pack(">II", 1, 250)), (34855, 3, 1, b"\x01\x90"),
                       (36867, 2, 20, b"2024:05:06 07:08:09\0")],
                      [(1, 2, 2, b"N\0"), (2, 5, 3, struct.pack(">6I", 48, 1, 51, 1, 29, 1))])
    out = io.BytesIO()
    Image.fromarray(np.asarray(toolimages.picture(640, 480).numpy())).save(
        out, "JPEG", exif=b"Exif\0\0" + exif)
    (tmp_path / "camera.jpg").write_bytes(out.getvalue())
    result = iipy("convert", str(tmp_path / "camera.jpg"), str(tmp_path / "camera.tif"),
                  "--bigtiff", bigtiff)
    assert result.returncode == 0, result.stderr
    ours = decoder_for(str(tmp_path / "camera.tif")).info.exif
    source, kept = exif_fields(exif), exif_fields(ours)
    # same entries; values now in the TIFF's (little-endian) byte order
    assert sorted(kept["exif"]) == sorted(source["exif"]) == [33434, 34855, 36867]
    assert struct.unpack("<II", kept["exif"][33434][2]) == (1, 250)
    assert struct.unpack("<H", kept["exif"][34855][2]) == (400,)
    assert kept["exif"][36867] == source["exif"][36867]
    assert struct.unpack("<6I", kept["gps"][2][2]) == (48, 1, 51, 1, 29, 1)
    export = call(make_app(FILESYSTEM_PREFIX=f"{tmp_path}/"), "FIF=camera.tif&WID=200&CVT=jpeg")
    assert jpeg_exif(export.body) == ours
    # a TIFF source's EXIF IFD (which libvips does not read) is carried too
    again = iipy("convert", str(tmp_path / "camera.tif"), str(tmp_path / "again.tif"))
    assert again.returncode == 0, again.stderr
    assert exif_fields(decoder_for(str(tmp_path / "again.tif")).info.exif)["exif"] == kept["exif"]
    # JPEG 2000 output: the EXIF in a JpgTiffExif->JP2 UUID box, as the source has it
    jp2 = iipy("convert", str(tmp_path / "camera.jpg"), str(tmp_path / f"camera{bigtiff}.jp2"),
               "--format", "jp2")
    assert jp2.returncode == 0, jp2.stderr
    in_jp2 = exif_fields(decoder_for(str(tmp_path / f"camera{bigtiff}.jp2")).info.exif)
    assert in_jp2["exif"] == source["exif"] and in_jp2["gps"] == source["gps"]


def test_check_says_a_plain_jpeg_is_served_slowly_and_how_to_convert_it(tmp_path):
    import pyvips

    path = tmp_path / "photo.jpg"
    pyvips.Image.black(600, 400, bands=3).jpegsave(str(path))
    result = iipy("check", str(path))
    assert result.returncode == 0
    assert "serves, with problems" in result.stdout and "untiled JPEG" in result.stdout
    assert f"fix: iipy convert {path}" in result.stdout and ".jp2" not in result.stdout


def test_check_counts_a_stacks_pages_not_its_directories(tmp_path):
    """A pyramid's levels are directories too: ``pages`` is what SDS can select."""
    import pyvips
    from stacks import make_stack

    stack = make_stack(tmp_path / "stack.tif", 600, 400, pages=3)
    target = tmp_path / "pyramid.tif"  # levels as following top-level directories
    pyvips.Image.black(2000, 1500, bands=3).tiffsave(str(target), tile=True, pyramid=True,
                                                      compression="jpeg")
    result = iipy("check", "--json", str(stack), str(target))
    assert result.returncode == 0, result.stdout + result.stderr
    stack_report, pyramid_report = json.loads(result.stdout)
    assert stack_report["pages"] == 3
    assert pyramid_report["pages"] == 1 and pyramid_report["levels"] > 1
