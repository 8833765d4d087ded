"""CVT exports: sizes, level choice, headers, metadata, rotation, resampling,
strip assembly and bad input (iip-protocol.md §5)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import SAMPLE_XMP, make_tiff, pattern_array
from PIL import Image
from wsgi import call, make_app

from iipy.models import ImageInfo, Level, OutputFormat, Processing
from iipy.render import export, resample


@pytest.fixture(scope="module")
def app(image_dir, images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")


@pytest.fixture(scope="module")
def lossless(image_dir):
    path = image_dir / "cvt_lossless.tif"
    if not path.exists():
        make_tiff(path, 1000, 700, compression="deflate")
    return path


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def pixels(body: bytes) -> np.ndarray:
    array = np.asarray(decode(body))
    return array[:, :, None] if array.ndim == 2 else array


@pytest.mark.parametrize(
    ("query", "size"),
    [  # iip-protocol.md §14 (1.3 sizes where 1.1 is off by one)
        ("CVT=jpeg", (1000, 700)),
        ("WID=300&CVT=jpeg", (300, 210)),
        ("HEI=300&CVT=jpeg", (429, 300)),
        ("WID=300&HEI=300&CVT=jpeg", (300, 210)),
        ("WID=2000&CVT=jpeg", (2000, 1400)),
        ("WID=6000&CVT=jpeg", (5000, 3500)),
        ("RGN=0.25,0.25,0.5,0.5&CVT=jpeg", (1000, 700)),
        ("RGN=0.25,0.25,0.5,0.5&WID=100&CVT=jpeg", (100, 70)),
        ("WID=500&ROT=90&CVT=jpeg", (350, 500)),
        ("WID=500&ROT=270&CVT=png", (350, 500)),
        ("WID=500&ROT=180&CVT=webp", (500, 350)),
        ("WID=500&ROT=!90&CVT=tiff", (350, 500)),
        ("WID=300&CVT=JPG", (300, 210)),
    ],
)
def test_output_sizes(app, query, size):
    result = call(app, "FIF=rgb.tif&" + query)
    assert result.status == 200, result.body[:200]
    assert decode(result.body).size == size


def test_formats_and_mime_types(app):
    for arg, mime, fmt in (("jpeg", "image/jpeg", "JPEG"), ("png", "image/png", "PNG"),
                           ("webp", "image/webp", "WEBP"), ("tif", "image/tiff", "TIFF"),
                           ("tiff", "image/tiff", "TIFF")):
        result = call(app, f"FIF=rgb.tif&WID=100&CVT={arg}")
        assert result.header("Content-Type") == mime
        assert decode(result.body).format == fmt


def test_max_cvt_bounds_output_and_minus_one_means_no_limit(image_dir, images):
    small = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_CVT="400")
    assert decode(call(small, "FIF=rgb.tif&CVT=jpeg").body).size == (400, 280)
    unlimited = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_CVT="-1")
    assert decode(call(unlimited, "FIF=rgb.tif&WID=5200&CVT=jpeg").body).size == (5200, 3640)


def test_max_cvt_is_applied_before_any_decoding(image_dir, images, monkeypatch):
    """The size is bounded before the renderer runs: reads never exceed the level box."""
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_CVT="300")
    calls = []
    original = export.render_region

    def spy(job):
        calls.append((job.box, job.width, job.height))
        return original(job)

    monkeypatch.setattr("iipy.render.renderer.render_region", spy)
    result = call(app, "FIF=rgb.tif&WID=90000&CVT=jpeg")
    assert decode(result.body).size == (300, 210)
    assert calls == [((0, 0, 500, 350), 300, 210)]  # level 500×350, not the full image


def test_no_upscaling_keeps_the_aspect(image_dir, images):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", ALLOW_UPSCALING="0")
    assert decode(call(app, "FIF=rgb.tif&WID=2000&CVT=jpeg").body).size == (1000, 700)
    wide = call(app, "FIF=rgb.tif&RGN=0,0,1,0.1&WID=2000&CVT=jpeg")
    assert decode(wide.body).size == (1000, 70)


@pytest.mark.parametrize(
    ("query", "box"),
    [
        ("WID=300&CVT=jpeg", (0, 0, 500, 350)),
        ("WID=250&CVT=jpeg", (0, 0, 250, 175)),
        ("WID=260&CVT=jpeg", (0, 0, 500, 350)),
        ("CVT=jpeg", (0, 0, 1000, 700)),
        ("RGN=0.5,0.5,0.5,0.5&WID=250&CVT=jpeg", (250, 175, 250, 175)),
        ("RGN=0.5,0.5,0.5,0.5&WID=100&CVT=jpeg", (125, 88, 125, 87)),
    ],
)
def test_region_is_read_from_the_smallest_sufficient_level(app, monkeypatch, query, box):
    seen = []
    original = export.render_region

    def spy(job):
        seen.append(job.box)
        return original(job)

    monkeypatch.setattr("iipy.render.renderer.render_region", spy)
    assert call(app, "FIF=rgb.tif&" + query).status == 200
    assert seen == [box]


def test_region_pixels_match_the_source(app, lossless):
    """A lossless region at full resolution is the source's own pixels."""
    result = call(app, "FIF=cvt_lossless.tif&RGN=0.1,0.2,0.3,0.4&WID=300&CVT=png")
    out = pixels(result.body)
    assert out.shape == (280, 300, 3)
    source = pattern_array(1000, 700)[140:420, 100:400]
    assert np.array_equal(out, source)


def test_rotation_and_mirror_of_an_export(app, lossless):
    base = pixels(call(app, "FIF=cvt_lossless.tif&WID=200&CVT=png").body)
    for rot, expected in (
        ("90", np.rot90(base, -1)),
        ("180", base[::-1, ::-1]),
        ("270", np.rot90(base, 1)),
        ("!0", base[:, ::-1]),
        ("!180", base[::-1]),
        ("!90", np.rot90(base[:, ::-1], -1)),
    ):
        out = pixels(call(app, f"FIF=cvt_lossless.tif&WID=200&ROT={rot}&CVT=png").body)
        assert np.array_equal(out, expected), rot


def test_content_disposition(app, image_dir):
    get = call(app, "FIF=rgb.tif&WID=100&CVT=png")
    assert get.header("Content-Disposition") == 'inline;filename="rgb.png"'
    post = call(app, "", method="POST", body=b"FIF=rgb.tif&WID=100&CVT=jpeg")
    assert post.header("Content-Disposition") == 'attachment;filename="rgb.jpg"'
    from iipy.protocols.iip import content_disposition

    assert content_disposition("inline", "a/b/na\u00efve \"x\".tif", "jpg") == (
        'inline;filename="na_ve _x_.jpg"; filename*=UTF-8\'\'na%C3%AFve%20%22x%22.jpg'
    )
    assert content_disposition("inline", "noext", "png") == 'inline;filename="noext.png"'


def test_xmp_icc_and_dpi_are_embedded(app, images):
    result = call(app, "FIF=meta.tif&WID=500&CVT=jpeg")
    image = decode(result.body)
    assert SAMPLE_XMP in result.body
    assert image.info.get("icc_profile")
    # 300 dpi at 1000 px wide, exported at 500 px: 150 dpi
    assert [round(v) for v in image.info["dpi"]] == [150, 150]
    png = call(app, "FIF=meta.tif&WID=250&CVT=png")
    assert SAMPLE_XMP in png.body
    assert [round(v) for v in decode(png.body).info["dpi"]] == [75, 75]


def test_icc_is_dropped_when_pixels_no_longer_match_it(app, images):
    grey = decode(call(app, "FIF=meta.tif&WID=100&COL=grey&CVT=jpeg").body)
    assert grey.mode == "L"
    assert not grey.info.get("icc_profile")
    hot = decode(call(app, "FIF=meta.tif&WID=100&CMP=hot&CVT=jpeg").body)
    assert not hot.info.get("icc_profile")


def test_icc_embedding_follows_max_icc_and_embed_icc(image_dir, images):
    for env, expected in (({"MAX_ICC": "0"}, False), ({"EMBED_ICC": "0"}, False),
                          ({"MAX_ICC": "100"}, False), ({"MAX_ICC": "-1"}, True), ({}, True)):
        app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", **env)
        image = decode(call(app, "FIF=meta.tif&WID=100&CVT=jpeg").body)
        assert bool(image.info.get("icc_profile")) is expected, env


def test_interpolation_methods(image_dir, lossless):
    outputs = {}
    for value in ("0", "1", "2", "3"):
        app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", INTERPOLATION=value)
        out = pixels(call(app, "FIF=cvt_lossless.tif&WID=333&CVT=png").body)
        assert out.shape == (233, 333, 3)
        outputs[value] = out.astype(int)
    # nearest is iipsrv's floor(i * in / out) on the 500×350 level
    level = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    half = pixels(call(level, "FIF=cvt_lossless.tif&WID=500&CVT=png").body)
    xs = np.floor(np.arange(333) * (500 / 333)).astype(int)
    ys = np.floor(np.arange(233) * (350 / 233)).astype(int)
    assert np.array_equal(outputs["0"], half[ys][:, xs])
    # the smoothing methods agree with each other closely, and differ from nearest
    for value in ("1", "2", "3"):
        assert np.abs(outputs[value] - outputs["1"]).mean() < 2.0
    assert not np.array_equal(outputs["0"], outputs["1"])


@pytest.mark.parametrize("method", [resample.NEAREST, resample.BILINEAR, resample.LANCZOS,
                                    resample.AREA])
@pytest.mark.parametrize("processing", [Processing(), Processing(convolution=(0, -1, 0, -1, 5,
                                                                              -1, 0, -1, 0))])
def test_strips_give_the_same_pixels_as_one_pass(method, processing):
    source = pattern_array(300, 217)
    info = ImageInfo("tiff", (Level(300, 217, 256, 256),), 3, 8)
    reads = []

    def read(left, top, width, height):
        reads.append(height)
        return source[top : top + height, left : left + width]

    def job(strip_pixels):
        return export.RegionJob(read, info, (10, 7, 280, 200), 123, 88, processing,
                                OutputFormat.PNG, method, strip_pixels=strip_pixels)

    whole = export.render_region(job(10**9))
    reads.clear()
    strips = export.render_region(job(280 * 20))
    assert len(reads) > 5  # really done in bands
    assert max(reads) < 60
    if method == resample.NEAREST:
        assert np.array_equal(whole, strips)
    else:  # Pillow's fixed-point weights may round a strip's rows 1 level apart
        assert np.abs(whole.astype(int) - strips).max() <= 1


def test_large_export_memory_is_bounded_by_the_output(image_dir):
    """A 2000×1500 export from a 4000×3000 level is assembled in bands: numpy's
    peak stays near the output array, far below the decoded level (36 MB)."""
    import tracemalloc

    path = image_dir / "cvt_big.tif"
    if not path.exists():
        make_tiff(path, 4000, 3000, compression="jpeg", pyramid=False)
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    tracemalloc.start()
    try:
        result = call(app, "FIF=cvt_big.tif&WID=2000&CVT=jpeg")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decode(result.body).size == (2000, 1500)
    output = 2000 * 1500 * 3
    assert peak < output + 20 * 2**20, peak  # output + about two bands, not 36 MB of level


@pytest.mark.parametrize(
    "query",
    [
        "WID=abc&CVT=jpeg", "HEI=x&CVT=jpeg", "WID=-5&CVT=jpeg", "RGN=2,2,1,1&CVT=jpeg",
        "RGN=0.1,0.1&CVT=jpeg", "RGN=a,b,c,d&CVT=jpeg", "RGN=1,1,0.5,0.5&CVT=jpeg",
        "ROT=45&CVT=jpeg", "CMP=purple&CVT=jpeg", "CVT=bmp", "CVT=gif", "COL=sepia&CVT=png",
        "CTW=[x]&CVT=jpeg", "CNV=[1,2]&CVT=jpeg", "MINMAX=0&CVT=jpeg", "SHD=1&CVT=jpeg",
        "SHD=0,0&CVT=jpeg",  # a 3-band image is fine, but rgb.tif's normals are nonsense: 200
    ],
)
def test_bad_input_is_a_clean_4xx_never_a_500(app, query):
    result = call(app, "FIF=rgb.tif&" + query)
    if query.startswith("SHD=0,0"):
        assert result.status == 200
        return
    assert result.status == 400, (query, result.status, result.body[:200])
    assert b"Traceback" not in result.body
    # the worker is still fine
    assert call(app, "FIF=rgb.tif&WID=50&CVT=jpeg").status == 200


def test_shading_a_grey_image_is_400(app):
    result = call(app, "FIF=grey8.tif&SHD=30,30&CVT=jpeg")
    assert result.status == 400
    assert b"SHD" in result.body


def test_processing_reaches_exports(app, lossless):
    plain = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&CVT=png").body).astype(int)
    inverted = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&INV=1&CVT=png").body).astype(int)
    assert np.abs(inverted - (255 - plain)).max() <= 1
    grey = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&COL=gray&CVT=png").body)
    assert grey.shape == (70, 100, 1)
    binary = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&COL=binary&CVT=png").body)
    assert set(np.unique(binary).tolist()) == {0, 255}
    hot = pixels(call(app, "FIF=grey16.tif&WID=100&CMP=hot&CVT=png").body)
    assert hot.shape == (70, 100, 3)
    two = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&CTW=[1,0,0;0,1,0]&CVT=png").body)
    assert two.shape == (70, 100, 2)  # PNG carries 2 bands (grey + alpha)
    eq = pixels(call(app, "FIF=cvt_lossless.tif&WID=100&CNT=eq&CVT=png").body)
    assert eq.min() == 0 and eq.max() >= 250
