"""IIIF as iipsrv 1.3 serves it (issue 15): IIIF_EXTENSIONS qualities, the
physical dimensions service, rights from the file, extraFormats that are
served, scaleFactors that viewers can use, AVIF output.

Expected values come from the IIIF Image API 2.1/3.0 and the physdim annex
(physicalScale = size of one pixel in physicalUnits) and from the equivalent
IIP commands (negative = INV, stretch = CNT=st, equalization = CNT=eq,
log = GAM=log).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from images import make_jp2, make_tiff
from PIL import Image
from wsgi import call, make_app

from iipy.models import ImageInfo, Level, OutputFormat
from iipy.protocols import iiif_info
from iipy.render import encoders
from iipy.render.geometry import scale_factor
from iipy.settings import Settings


def app_for(image_dir, **env):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", **env)


def info(app, name: str, version: int = 3) -> dict:
    result = call(app, f"IIIF={name}/info.json", headers={
        "Accept": f'application/ld+json;profile="http://iiif.io/api/image/{version}/context.json"'})
    assert result.status == 200, result.body
    return json.loads(result.body)


def pixels(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    return np.asarray(image)


# -- IIIF_EXTENSIONS qualities ---------------------------------------------------

EXTENSIONS = {"negative": "INV", "stretch": "CNT=st", "equalization": "CNT=eq",
              "log": "GAM=log"}


@pytest.mark.parametrize(("quality", "iip"), list(EXTENSIONS.items()))
def test_extension_quality_is_the_iip_command(image_dir, images, quality, iip):
    app = app_for(image_dir, IIIF_EXTENSIONS="1")
    iiif = call(app, f"IIIF=rgb.tif/full/250,/0/{quality}.png")
    assert iiif.status == 200
    reference = call(app, f"FIF=rgb.tif&{iip}&WID=250&CVT=png")
    assert np.array_equal(pixels(iiif.body), pixels(reference.body))
    plain = pixels(call(app, "IIIF=rgb.tif/full/250,/0/default.png").body)
    assert not np.array_equal(pixels(iiif.body), plain)


def test_negative_is_the_inverse(image_dir, images):
    app = app_for(image_dir, IIIF_EXTENSIONS="1")
    plain = pixels(call(app, "IIIF=rgb.tif/full/250,/0/default.png").body).astype(int)
    negative = pixels(call(app, "IIIF=rgb.tif/full/250,/0/negative.png").body).astype(int)
    assert np.abs(negative - (255 - plain)).max() <= 1


@pytest.mark.parametrize("quality", list(EXTENSIONS))
def test_extension_qualities_are_400_when_off(image_dir, images, quality):
    app = app_for(image_dir)
    assert call(app, f"IIIF=rgb.tif/full/250,/0/{quality}.jpg").status == 400


def test_extension_qualities_advertised_only_when_on(image_dir, images):
    on, off = app_for(image_dir, IIIF_EXTENSIONS="1"), app_for(image_dir)
    assert info(on, "rgb.tif")["extraQualities"] == [
        "color", "gray", "bitonal", "negative", "stretch", "equalization", "log"]
    assert info(off, "rgb.tif")["extraQualities"] == ["color", "gray", "bitonal"]
    v2 = info(on, "rgb.tif", 2)["profile"][1]["qualities"]
    assert set(EXTENSIONS) <= set(v2)


def test_extension_quality_on_a_tile_request(image_dir, images):
    # one stored tile: the tile path, processed (not the pass-through bytes)
    app = app_for(image_dir, IIIF_EXTENSIONS="1")
    tile = call(app, "IIIF=rgb.tif/0,0,256,256/256,/0/negative.jpg").body
    stored = call(app, "IIIF=rgb.tif/0,0,256,256/256,/0/default.jpg").body
    difference = pixels(tile).astype(int) - (255 - pixels(stored).astype(int))
    assert np.abs(difference).mean() < 3


# -- physical dimensions -------------------------------------------------------


def physdim(doc: dict) -> dict | None:
    services = [s for s in doc.get("service", []) if s.get("profile") ==
                "http://iiif.io/api/annex/services/physdim"]
    return services[0] if services else None


@pytest.mark.parametrize("version", [2, 3])
def test_physdim_in_inches(image_dir, images, version):
    service = physdim(info(app_for(image_dir), "meta.tif", version))  # 300 dpi
    assert service["@context"] == "http://iiif.io/api/annex/services/physdim/1/context.json"
    assert service["physicalUnits"] == "in"
    assert service["physicalScale"] == pytest.approx(1 / 300, rel=1e-9)
    if version == 3:  # every 3.0 service has an id and a type (legacy @id/@type here)
        assert service["@id"].endswith("meta.tif#physdim") and service["@type"]


def test_physdim_in_centimetres(image_dir):
    make_tiff(image_dir / "cm13.tif", 300, 200, resolution=(40, 40, "cm"))
    service = physdim(info(app_for(image_dir), "cm13.tif"))
    assert service["physicalUnits"] == "cm"
    assert service["physicalScale"] == pytest.approx(0.025, rel=1e-9)


def test_no_physdim_without_a_unit(image_dir):
    # iipsrv 1.3 assumes centimetres here
    make_tiff(image_dir / "nounit13.tif", 300, 200, resolution=(40, 40, "none"))
    assert physdim(info(app_for(image_dir), "nounit13.tif")) is None


# -- rights ----------------------------------------------------------------------


def test_file_copyright_wins_over_setting(image_dir, images):
    app = app_for(image_dir, COPYRIGHT="https://creativecommons.org/licenses/by/4.0/")
    doc = info(app, "meta.tif")  # Copyright tag "(c) Test Owner"
    assert "rights" not in doc
    assert doc["requiredStatement"]["value"] == {"none": ["(c) Test Owner"]}
    assert doc["requiredStatement"]["label"] == {"en": ["Attribution"]}
    v2 = info(app, "meta.tif", 2)
    assert v2["attribution"] == "(c) Test Owner" and "license" not in v2


def test_setting_used_when_the_file_has_none(image_dir, images):
    uri = "https://creativecommons.org/licenses/by/4.0/"
    doc = info(app_for(image_dir, COPYRIGHT=uri), "rgb.tif")
    assert doc["rights"] == uri and "requiredStatement" not in doc
    assert info(app_for(image_dir, COPYRIGHT=uri), "rgb.tif", 2)["license"] == uri
    text = info(app_for(image_dir, COPYRIGHT="Some Museum"), "rgb.tif")
    assert text["requiredStatement"]["value"] == {"none": ["Some Museum"]}
    assert "rights" not in text


def test_file_copyright_uri_is_rights(image_dir):
    uri = "http://rightsstatements.org/vocab/InC/1.0/"
    make_tiff(image_dir / "uri13.tif", 300, 200, tags={"copyright": uri})
    doc = info(app_for(image_dir, COPYRIGHT="Other"), "uri13.tif")
    assert doc["rights"] == uri and "requiredStatement" not in doc


# -- formats -------------------------------------------------------------------

MAGIC = {"jpg": b"\xff\xd8", "png": b"\x89PNG", "tif": b"II*\0", "webp": b"RIFF",
         "avif": b"ftyp"}


def test_every_listed_format_is_served(image_dir, images):
    app = app_for(image_dir)
    doc = info(app, "rgb.tif")
    formats = ["jpg", "png", *doc["extraFormats"]]
    assert "avif" in formats
    for fmt in formats:
        result = call(app, f"IIIF=rgb.tif/full/200,/0/default.{fmt}")
        assert result.status == 200, fmt
        assert MAGIC[fmt] in result.body[:12], fmt
    v2 = info(app, "rgb.tif", 2)["profile"][1]["formats"]
    assert v2 == formats


def test_unavailable_format_is_neither_listed_nor_served(image_dir, images, monkeypatch):
    # an installation whose Pillow lacks AVIF
    monkeypatch.setattr(encoders, "_AVAILABLE", frozenset(set(OutputFormat) -
                                                          {OutputFormat.AVIF}))
    app = app_for(image_dir)
    assert "avif" not in info(app, "rgb.tif")["extraFormats"]
    assert call(app, "IIIF=rgb.tif/full/200,/0/default.avif").status == 501


def test_iiif_avif_pixels(image_dir, images):
    app = app_for(image_dir)
    result = call(app, "IIIF=rgb.tif/full/250,/0/default.avif")
    assert result.header("Content-Type") == "image/avif"
    png = pixels(call(app, "IIIF=rgb.tif/full/250,/0/default.png").body).astype(int)
    assert np.abs(pixels(result.body).astype(int) - png).mean() < 6


# -- scaleFactors ----------------------------------------------------------------


def ceil_levels(width: int, height: int, count: int, tile: int = 256) -> ImageInfo:
    levels = tuple(Level(-(-width // 2 ** k), -(-height // 2 ** k), tile, tile)
                   for k in range(count))
    return ImageInfo("jp2", levels, 3, 8)


def test_scale_factors_fit_ceil_levels_of_a_20000_wide_jp2():
    image = ceil_levels(20000, 15000, 8)
    factors = [scale_factor(image, k) for k in range(8)]
    assert factors == [1, 2, 4, 8, 16, 32, 64, 128]  # rounding gave 127 for the last
    for level, factor in zip(image.levels, factors, strict=True):
        assert math.ceil(20000 / factor) == level.width
        assert math.ceil(15000 / factor) == level.height
    doc = iiif_info.info_document(image, "x", 3, Settings(), {})
    assert doc["tiles"][0]["scaleFactors"] == factors


def test_scale_factors_of_floor_pyramids_stay():
    levels = tuple(Level(w, h, 256, 256) for w, h in
                   ((1410, 793), (705, 396), (352, 198), (176, 99)))
    image = ImageInfo("tiff", levels, 3, 8)
    assert [scale_factor(image, k) for k in range(4)] == [1, 2, 4, 8]


def test_scale_factors_of_a_real_20000_wide_jp2(image_dir):
    # OpenJPEG's levels are ceil(20000 / 2^k): the last is 157 wide, and
    # rounding 20000 / 157 gives 127, for which viewers ask 158 pixels
    make_jp2(image_dir / "sf13.jp2", 20000, 128, bands=1, tile=None, precincts=None)
    app = app_for(image_dir)
    factors = info(app, "sf13.jp2")["tiles"][0]["scaleFactors"]
    assert factors == [1, 2, 4, 8, 16, 32, 64, 128]
    sizes = call(app, "FIF=sf13.jp2&OBJ=Resolutions").body.decode()
    widths = sorted(int(p.split()[0]) for p in sizes.split(":", 1)[1].split(","))
    assert sorted(math.ceil(20000 / f) for f in factors) == widths
    # the smallest level as OpenSeadragon asks for it at that factor
    result = call(app, f"IIIF=sf13.jp2/full/{math.ceil(20000 / 128)},/0/default.png")
    assert result.status == 200 and pixels(result.body).shape[:2] == (1, 157)
