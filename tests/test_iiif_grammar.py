"""IIIF Image API URL grammar as tables: request → canonical form, or the error status.

The rows are the examples of the specifications (IIIF Image API 3.0 §4 and §9,
2.1 §4; their example image is 300×200) plus edge cases, parsed, resolved
against an image and written back canonically (as zimeon/iiif's
test_request_spec_* do), so both directions of the grammar are pinned.
"""

from __future__ import annotations

import pytest

from iipy.errors import BadRequest, NotImplementedFeature
from iipy.models import ImageInfo, Level
from iipy.protocols.iiif_request import (
    canonical,
    decode_identifier,
    parse_image_request,
    resolve,
    split_path,
)

SPEC = ImageInfo("tiff", (Level(300, 200, 256, 256), Level(150, 100, 256, 256)), 3, 8)
ODD = ImageInfo(  # images.rgb_odd: levels rounded down by libvips
    "tiff",
    tuple(Level(w, h, 256, 256) for w, h in ((1410, 793), (705, 396), (352, 198), (176, 99))),
    3,
    8,
)


def canon(path: str, version: int, info: ImageInfo = SPEC, max_size: int = 5000,
          upscaling: bool = True) -> str:
    request = parse_image_request(*path.split("/"), version)
    resolved = resolve(request, info, version, max_size, upscaling)
    return canonical(request, resolved, info, version)


def size_of(path: str, version: int, info: ImageInfo = SPEC, max_size: int = 5000):
    request = parse_image_request(*path.split("/"), version)
    resolved = resolve(request, info, version, max_size, True)
    return resolved.width, resolved.height


V3 = [  # (request, canonical form) on the 300×200 example image
    # 4.1 region
    ("full/max/0/default.jpg", "full/max/0/default.jpg"),
    ("square/max/0/default.jpg", "50,0,200,200/max/0/default.jpg"),
    ("125,15,120,140/max/0/default.jpg", "125,15,120,140/max/0/default.jpg"),
    ("pct:41.6,7.5,40,70/max/0/default.jpg", "125,15,120,140/max/0/default.jpg"),
    ("125,15,200,200/max/0/default.jpg", "125,15,175,185/max/0/default.jpg"),  # cropped
    ("pct:41.6,7.5,66.6,100/max/0/default.jpg", "125,15,175,185/max/0/default.jpg"),
    ("0,0,300,200/max/0/default.jpg", "full/max/0/default.jpg"),
    ("pct:0,0,100,100/max/0/default.jpg", "full/max/0/default.jpg"),
    # 4.2 size
    ("full/150,/0/default.jpg", "full/150,100/0/default.jpg"),
    ("full/,150/0/default.jpg", "full/225,150/0/default.jpg"),
    ("full/pct:50/0/default.jpg", "full/150,100/0/default.jpg"),
    ("full/225,100/0/default.jpg", "full/225,100/0/default.jpg"),
    ("full/!225,100/0/default.jpg", "full/150,100/0/default.jpg"),
    ("full/300,200/0/default.jpg", "full/max/0/default.jpg"),
    ("full/^360,/0/default.jpg", "full/^360,240/0/default.jpg"),
    ("full/^,240/0/default.jpg", "full/^360,240/0/default.jpg"),
    ("full/^pct:120/0/default.jpg", "full/^360,240/0/default.jpg"),
    ("full/^360,360/0/default.jpg", "full/^360,360/0/default.jpg"),
    ("full/^!360,360/0/default.jpg", "full/^360,240/0/default.jpg"),
    ("full/^max/0/default.jpg", "full/max/0/default.jpg"),
    ("full/^150,/0/default.jpg", "full/150,100/0/default.jpg"),  # ^ without upscaling
    ("125,15,120,140/90,/0/default.jpg", "125,15,120,140/90,105/0/default.jpg"),
    # 4.3 rotation
    ("full/max/180/default.jpg", "full/max/180/default.jpg"),
    ("full/max/90/default.jpg", "full/max/90/default.jpg"),
    ("full/max/22.5/default.png", "full/max/22.5/default.png"),
    ("full/max/!0/default.jpg", "full/max/!0/default.jpg"),
    ("full/max/!180/default.jpg", "full/max/!180/default.jpg"),
    ("full/max/22.50/default.jpg", "full/max/22.5/default.jpg"),
    ("full/max/090/default.jpg", "full/max/90/default.jpg"),
    ("full/max/360/default.jpg", "full/max/0/default.jpg"),
    ("full/max/0.5/default.jpg", "full/max/0.5/default.jpg"),
    ("125,15,120,140/90,/!345/gray.jpg", "125,15,120,140/90,105/!345/gray.jpg"),  # 4.6
    # 4.4 quality, 4.5 format
    ("full/max/0/color.jpg", "full/max/0/color.jpg"),
    ("full/max/0/gray.jpg", "full/max/0/gray.jpg"),
    ("full/max/0/grey.jpg", "full/max/0/gray.jpg"),
    ("full/max/0/bitonal.jpg", "full/max/0/bitonal.jpg"),
    ("full/max/0/default.png", "full/max/0/default.png"),
    ("full/max/0/default.tif", "full/max/0/default.tif"),
    ("full/max/0/default.webp", "full/max/0/default.webp"),
    ("full/max/0/default", "full/max/0/default.jpg"),  # no format: JPEG, as iipsrv
]

V2 = [  # 2.1: "full" size, "w," canonical, upscaling without "^"
    ("full/full/0/default.jpg", "full/full/0/default.jpg"),
    ("full/max/0/default.jpg", "full/full/0/default.jpg"),
    ("square/full/0/default.jpg", "50,0,200,200/full/0/default.jpg"),
    ("full/150,/0/default.jpg", "full/150,/0/default.jpg"),
    ("full/,150/0/default.jpg", "full/225,/0/default.jpg"),
    ("full/pct:50/0/default.jpg", "full/150,/0/default.jpg"),
    ("full/150,100/0/default.jpg", "full/150,/0/default.jpg"),
    ("full/225,100/0/default.jpg", "full/225,100/0/default.jpg"),
    ("full/!225,100/0/default.jpg", "full/150,/0/default.jpg"),
    ("full/360,/0/default.jpg", "full/360,/0/default.jpg"),
    ("full/pct:200/0/native.jpg", "full/600,/0/default.jpg"),
    ("pct:41.6,7.5,40,70/full/!90/gray.png", "125,15,120,140/full/!90/gray.png"),
]


@pytest.mark.parametrize(("request_path", "expected"), V3)
def test_iiif3_canonical_form(request_path, expected):
    assert canon(request_path, 3) == expected


@pytest.mark.parametrize(("request_path", "expected"), V2)
def test_iiif2_canonical_form(request_path, expected):
    assert canon(request_path, 2) == expected


@pytest.mark.parametrize(("request_path", "expected"), V3 + V2)
def test_canonical_form_is_a_fixed_point(request_path, expected):
    version = 3 if (request_path, expected) in V3 else 2
    assert canon(expected, version) == expected


BAD = [  # (request, versions) that are 400s
    ("x/max/0/default.jpg", (2, 3)),
    ("0,0,10/max/0/default.jpg", (2, 3)),
    ("0,0,10,10,10/max/0/default.jpg", (2, 3)),
    ("0,0,0,10/max/0/default.jpg", (2, 3)),  # zero width
    ("0,0,10.5,10/max/0/default.jpg", (2, 3)),  # pixels are integers
    ("-1,0,10,10/max/0/default.jpg", (2, 3)),
    ("300,0,10,10/max/0/default.jpg", (2, 3)),  # entirely outside
    ("0,200,10,10/max/0/default.jpg", (2, 3)),
    ("pct:100,0,10,10/max/0/default.jpg", (2, 3)),
    ("pct:0,0,0,10/max/0/default.jpg", (2, 3)),
    ("pct:a,0,10,10/max/0/default.jpg", (2, 3)),
    ("full/0,/0/default.jpg", (2, 3)),
    ("full/,0/0/default.jpg", (2, 3)),
    ("full/,/0/default.jpg", (2, 3)),
    ("full/!100,/0/default.jpg", (2, 3)),
    ("full/!,100/0/default.jpg", (2, 3)),
    ("full/100/0/default.jpg", (2, 3)),
    ("full/pct:0/0/default.jpg", (2, 3)),
    ("full/pct:-5/0/default.jpg", (2, 3)),
    ("full/1.5,/0/default.jpg", (2, 3)),
    ("full/foo/0/default.jpg", (2, 3)),
    ("full/max/-90/default.jpg", (2, 3)),
    ("full/max/361/default.jpg", (2, 3)),
    ("full/max/+90/default.jpg", (2, 3)),
    ("full/max/abc/default.jpg", (2, 3)),
    ("full/max/!!90/default.jpg", (2, 3)),
    ("full/max/0/foo.jpg", (2, 3)),
    ("full/max/0/Default.jpg", (2, 3)),
    ("full/max/0/default.jpeg", (2, 3)),
    ("full/max/0/default.gif", (2, 3)),
    ("full/max/0/default.jp2", (2, 3)),
    ("full/max/0/default.pdf", (2, 3)),
    ("full/max/0/default.JPG", (2, 3)),
    ("full/full/0/default.jpg", (3,)),  # "full" is 2.x only
    ("full/301,/0/default.jpg", (3,)),  # upscaling needs "^" in 3.0
    ("full/,201/0/default.jpg", (3,)),
    ("full/301,200/0/default.jpg", (3,)),
    ("full/pct:101/0/default.jpg", (3,)),
    ("full/!400,300/0/default.jpg", (3,)),  # as iipsrv and the official validator
    ("full/^100,/0/default.jpg", (2,)),  # "^" is 3.0 syntax
    ("full/^max/0/default.jpg", (2,)),
]


@pytest.mark.parametrize(("request_path", "versions"), BAD)
def test_bad_requests_are_400(request_path, versions):
    for version in versions:
        with pytest.raises(BadRequest) as caught:
            canon(request_path, version)
        assert caught.value.status == 400
        assert caught.value.message.startswith("IIIF: ")


def test_sizes_above_the_limit_are_400_but_max_is_bounded():
    with pytest.raises(BadRequest):
        canon("full/^600,/0/default.jpg", 3, max_size=500)
    with pytest.raises(BadRequest):
        canon("full/600,/0/default.jpg", 2, max_size=500)
    assert size_of("full/max/0/default.jpg", 3, max_size=150) == (150, 100)
    assert size_of("full/full/0/default.jpg", 2, max_size=150) == (150, 100)
    assert canon("full/max/0/default.jpg", 3, max_size=150) == "full/max/0/default.jpg"


def test_upscaling_switched_off_is_501():
    with pytest.raises(NotImplementedFeature) as caught:
        canon("full/^600,/0/default.jpg", 3, upscaling=False)
    assert caught.value.status == 501
    with pytest.raises(NotImplementedFeature):
        canon("full/600,/0/default.jpg", 2, upscaling=False)
    assert canon("full/^150,/0/default.jpg", 3, upscaling=False) == "full/150,100/0/default.jpg"


@pytest.mark.parametrize(
    ("request_path", "size"),
    [  # the pyramid's own level sizes, whatever form asks for them
        ("full/705,/0/default.jpg", (705, 396)),  # 396.5 exactly: the level decides
        ("full/,396/0/default.jpg", (705, 396)),
        ("full/pct:50/0/default.jpg", (705, 396)),
        ("full/!705,705/0/default.jpg", (705, 396)),
        ("full/352,/0/default.jpg", (352, 198)),
        ("full/pct:25/0/default.jpg", (352, 198)),
        ("full/176,/0/default.jpg", (176, 99)),
        ("full/pct:12.5/0/default.jpg", (176, 99)),
        ("full/300,/0/default.jpg", (300, 169)),  # not a level: rounded aspect
        ("full/pct:30/0/default.jpg", (423, 238)),
        # OpenSeadragon / Mirador / IIPMooViewer edge tiles at scale 2
        ("0,512,512,281/256,/0/default.jpg", (256, 140)),  # 140.5 rounded would be 141
        ("1024,512,386,281/!193,140/0/default.jpg", (193, 140)),
        ("1024,512,512,512/!193,140/0/default.jpg", (193, 140)),  # past the edge: clipped
    ],
)
def test_odd_sized_pyramid_levels_come_back_at_their_own_size(request_path, size):
    assert size_of(request_path, 3, ODD) == size
    assert size_of(request_path, 2, ODD) == size


@pytest.mark.parametrize(
    ("argument", "identifier", "kind", "params"),
    [
        ("id1/full/max/0/default", "id1", "image", ["full", "max", "0", "default"]),
        ("id1/0,10,100,200/pct:50/90/default.png", "id1", "image",
         ["0,10,100,200", "pct:50", "90", "default.png"]),
        ("ark:%2F12025%2F654xz321/full/max/0/default", "ark:%2F12025%2F654xz321", "image",
         ["full", "max", "0", "default"]),
        ("urn:foo:a123,456/full/max/0/default", "urn:foo:a123,456", "image",
         ["full", "max", "0", "default"]),
        ("images/rgb.tif/full/max/0/default.jpg", "images/rgb.tif", "image",
         ["full", "max", "0", "default.jpg"]),
        ("/images/rgb.tif/info.json", "/images/rgb.tif", "info", []),
        ("rgb.tif/info.json?1700000000", "rgb.tif", "info", []),
        ("rgb.tif", "rgb.tif", "base", []),
        ("rgb.tif/", "rgb.tif", "base", []),
        ("rgb.tif/full/max", "rgb.tif/full/max", "base", []),
    ],
)
def test_identifiers_are_split_from_the_right(argument, identifier, kind, params):
    assert split_path(argument) == (identifier, kind, params)


@pytest.mark.parametrize(
    ("sent", "decoded"),
    [  # IIIF 3.0 §9, decoded once
        ("ark:%2F12025%2F654xz321", "ark:/12025/654xz321"),
        ("urn:foo:a123,456", "urn:foo:a123,456"),
        ("urn:sici:1046-8188(199501)13:1%253C69:FTTHBI%253E2.0.TX;2-4",
         "urn:sici:1046-8188(199501)13:1%3C69:FTTHBI%3E2.0.TX;2-4"),
        ("http:%2F%2Fexample.com%2F%3F54%23a", "http://example.com/?54#a"),
        ("a+b%20c", "a+b c"),
        ("67352ccc%2Dd1b0", "67352ccc-d1b0"),
    ],
)
def test_identifiers_are_percent_decoded_once(sent, decoded):
    assert decode_identifier(sent) == decoded
