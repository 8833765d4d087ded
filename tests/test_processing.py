"""Processing commands on known inputs (iip-protocol.md §2.12-2.22): the float
pipeline's numbers, parsing, and the order iipsrv applies them in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iipy.errors import BadRequest
from iipy.models import ColourSpace, ImageInfo, Level, Processing, SampleFormat
from iipy.protocols import iipproc
from iipy.render import floatops
from iipy.render.transforms import equalize, histogram_bounds, to_8bit

GRADIENT = np.arange(0, 256, 51, dtype=np.uint8)[None, :, None]  # 0 51 102 153 204 255


def info(bands=1, bits=8, fmt=SampleFormat.UINT, lo=0.0, hi=255.0, colour=ColourSpace.GREY):
    return ImageInfo("tiff", (Level(6, 1, 256, 256),), bands, bits, fmt, colour,
                     min_values=(lo,) * bands, max_values=(hi,) * bands)


def run(processing, pixels=GRADIENT, image=None, hist=None):
    return to_8bit(pixels, image or info(pixels.shape[2]), processing, hist)[0, :, :]


def parse(**commands):
    p = Processing()
    for name, argument in commands.items():
        p = iipproc.SETTERS[name](p, argument)
    return p


def test_gamma_on_a_gradient():
    # v^2 * 255, truncated: 0, 0.04*255=10.2, 0.16*255=40.8, 91.8, 163.2, 255
    assert run(parse(gam="2"))[:, 0].tolist() == [0, 10, 40, 91, 163, 255]


def test_log_on_a_gradient():
    expected = [int(math.log1p(v) / math.log(256) * 255) for v in (0, 51, 102, 153, 204, 255)]
    assert run(parse(gam="log"))[:, 0].tolist() == expected == [0, 181, 213, 231, 244, 255]


def test_contrast_multiplies_and_clips():
    assert run(parse(cnt="1.5"))[:, 0].tolist() == [0, 76, 153, 229, 255, 255]
    assert run(parse(cnt="0.5"))[:, 0].tolist() == [0, 25, 51, 76, 102, 127]


def test_minmax_overrides_the_range_zero_based_and_for_all():
    # band 0 normalised between 51 and 153: 0, 0, 127.5, 255, 255, 255
    assert run(parse(minmax="0:51,153"))[:, 0].tolist() == [0, 0, 127, 255, 255, 255]
    rgb = np.repeat(GRADIENT, 3, axis=2)
    out = run(parse(minmax="1:0,510"), rgb, info(3))
    assert out[:, 0].tolist() == [0, 51, 102, 153, 204, 255]  # band 0 untouched
    assert out[:, 1].tolist() == [0, 25, 51, 76, 102, 127]  # band 1 halved
    assert (run(parse(minmax="-:0,510"), rgb, info(3)) == out[:, 1:2]).all()
    # a band the image does not have is ignored
    assert run(parse(minmax="5:0,1"))[:, 0].tolist() == [0, 51, 102, 153, 204, 255]


def test_minmax_overrides_sixteen_bit_range():
    pixels = np.array([[[0], [1000], [1500], [2000], [65535]]], dtype=np.uint16)
    image = info(bits=16, hi=65535.0)
    assert run(Processing(), pixels, image)[:, 0].tolist() == [0, 3, 5, 7, 255]
    assert run(parse(minmax="0:1000,2000"), pixels, image)[:, 0].tolist() == [0, 0, 127, 255,
                                                                                255]


def test_invert_then_contrast():
    # float32 arithmetic truncates 1 - 0.6 = 0.39999998 → 101.99 → 101 (as iipsrv's floats)
    assert run(parse(inv="1"))[:, 0].tolist() == [255, 204, 153, 101, 50, 0]


def test_order_is_gamma_then_invert_then_contrast():
    # (1 - v^2) * 255 * 0.5
    out = run(parse(gam="2", inv="1", cnt="0.5"))[:, 0].tolist()
    assert out == [127, 122, 107, 81, 45, 0]


def test_stretch_uses_the_histogram_bounds():
    hist = np.zeros(256, int)
    hist[51] = hist[153] = 10
    assert histogram_bounds(hist) == (51, 153)
    out = run(parse(cnt="st"), hist=hist)[:, 0].tolist()
    assert out == [0, 0, 127, 255, 255, 255]


def test_equalization_maps_through_the_cumulative_histogram():
    hist = np.zeros(256, int)
    hist[[10, 20, 30, 40]] = [1, 1, 1, 1]
    pixels = np.array([[[10], [20], [30], [40]]], dtype=np.uint8)
    # cdf 1,2,3,4; (cdf-1)/3*255 = 0, 85, 170, 255
    assert equalize(pixels, hist)[0, :, 0].tolist() == [0, 85, 170, 255]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("hot", [0.0, 1 / 6, 0.5, 5 / 6, 1.0],
         [(0, 0, 0), (127, 0, 0), (255, 127, 0), (255, 255, 127), (255, 255, 255)]),
        ("cold", [0.0, 1 / 6, 0.5, 5 / 6, 1.0],
         [(0, 0, 0), (0, 0, 127), (0, 127, 255), (127, 255, 255), (255, 255, 255)]),
        ("jet", [0.0, 0.0625, 0.25, 0.5, 0.75, 0.9375, 1.0],
         [(0, 0, 127), (0, 0, 191), (0, 127, 255), (127, 255, 127), (255, 127, 0), (191, 0, 0),
          (127, 0, 0)]),
        ("red", [0.2, 0.6], [(51, 0, 0), (153, 0, 0)]),
        ("green", [0.2, 0.6], [(0, 51, 0), (0, 153, 0)]),
        ("blue", [0.2, 0.6], [(0, 0, 51), (0, 0, 153)]),
    ],
)
def test_colour_maps(name, values, expected):
    pixels = np.array([[[v] for v in values]], dtype=np.float32)
    image = info(fmt=SampleFormat.FLOAT, bits=32, hi=1.0)
    out = run(parse(cmp=name), pixels, image)
    assert [tuple(p) for p in out.tolist()] == expected


def test_colour_twist_on_a_known_matrix():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [51, 102, 153]]], np.uint8)
    # rows are output bands: swap R and B, grey average, and a 2-row (2-band) output
    swap = run(parse(ctw="[0,0,1;0,1,0;1,0,0]"), pixels, info(3))
    assert swap.tolist() == [[0, 0, 255], [0, 255, 0], [255, 0, 0], [153, 102, 51]]
    mean = run(parse(ctw="%5B0.5,0.5,0%5D"), pixels, info(3))  # URL-encoded brackets
    assert mean[:, 0].tolist() == [127, 127, 0, 76]
    two = run(parse(ctw="[1,0,0;0,0,2]"), pixels, info(3))
    assert two.shape == (4, 2)
    assert two.tolist() == [[255, 0], [0, 0], [0, 255], [51, 255]]


def test_colour_twist_ignores_extra_columns_and_pads_short_rows():
    pixels = np.array([[[100]]], np.uint8)
    assert run(parse(ctw="[2,5,5;0.5]"), pixels, info(1)).tolist() == [[200, 50]]


def test_hill_shading_of_surface_normals():
    # iipsrv decodes a normal as o = -(v - 0.5) * 2 and puts the light at
    # (sin h, cos h, -sin v): blue 255 → o_z = -1 faces a light from straight above
    flat_up = [127.5, 127.5, 255.0]
    toward = [127.5, 0.0, 127.5]  # o_y = 1: faces the light at azimuth 0, elevation 0
    away = [127.5, 255.0, 127.5]  # o_y = -1
    pixels = np.array([[flat_up, toward, away, [0, 0, 0]]], np.float32)
    out = run(parse(shd="0,0"), pixels, info(3, fmt=SampleFormat.FLOAT, bits=32, hi=255.0))
    # light (0, 1, 0): dot/2 clamped → flat 0, toward 0.5 → 127, away 0, all-zero pixel 0
    assert out[:, 0].tolist() == [0, 127, 0, 0]
    assert out.shape == (4, 1)
    # elevation 90: light (0, 1, -1)/√2 (the azimuth part stays): o = (0, 0, -1) gives
    # 0.5 · 0.7071 · 255 = 90.1 → 90
    above = run(parse(shd="0,90"), pixels, info(3, fmt=SampleFormat.FLOAT, bits=32, hi=255.0))
    assert above[:, 0].tolist() == [90, 90, 0, 0]


def test_convolution_named_and_custom_kernels():
    ramp = np.array([[[0], [60], [120], [180], [240]]] * 3, np.uint8)
    image = ImageInfo("tiff", (Level(5, 3, 256, 256),), 1, 8, min_values=(0.0,),
                      max_values=(255.0,))
    blur = to_8bit(ramp, image, parse(cnv="gaussian"), None)
    # edge replicated: first column (0*3 + 0 + 60) / 4 = 15; last (180 + 3*240) / 4 = 225,
    # which float32 lands a hair below (224.99998 → 224, truncated as iipsrv)
    assert blur[1, :, 0].tolist() == [15, 60, 120, 180, 224]
    sharp = to_8bit(ramp, image, parse(cnv="sharpen"), None)
    # 5c - l - r - up - down on a linear ramp = c (interior; float32 makes 180 179.99),
    # clipped at the ends
    assert sharp[1, :, 0].tolist() == [0, 60, 120, 179, 255]
    box = to_8bit(ramp, image, parse(cnv="[1,1,1,1,1,1,1,1,1]"), None)
    assert box[1, :, 0].tolist() == [20, 60, 120, 180, 220]
    sobel = to_8bit(ramp, image, parse(cnv="sobel"), None)  # sum 0: not divided
    assert sobel[1, 1:4, 0].tolist() == [255, 255, 255]


def test_cielab_to_srgb_known_colours():
    lab = np.array([[[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.2408, 80.0925, 67.2032],
                     [87.7347, -86.1827, 83.1793], [50.0, 0.0, 0.0]]], np.float32)
    image = info(3, colour=ColourSpace.CIELAB, fmt=SampleFormat.FLOAT, bits=32)
    out = run(Processing(), lab, image)
    assert all(254 <= v <= 255 for v in out[0].tolist())
    assert out[1].tolist() == [0, 0, 0]
    assert abs(int(out[2, 0]) - 255) <= 1 and out[2, 1] <= 1 and out[2, 2] <= 1  # red
    assert out[3, 0] <= 1 and abs(int(out[3, 1]) - 255) <= 1 and out[3, 2] <= 1  # green
    assert abs(int(out[4, 0]) - 118) <= 1  # L 50 grey ≈ sRGB 119


@pytest.mark.parametrize(
    ("name", "argument"),
    [("cmp", "purple"), ("rot", "45"), ("rot", "abc"), ("col", "sepia"), ("cnt", "abc"),
     ("gam", "x"), ("ctw", "[a,b]"), ("ctw", ""), ("minmax", "0:1"), ("minmax", "x:0,1"),
     ("shd", "1"), ("cnv", "[1,2,3,4]"), ("cnv", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]"),
     ("cnv", "blurry")],
)
def test_bad_processing_arguments_are_400(name, argument):
    with pytest.raises(BadRequest):
        iipproc.SETTERS[name](Processing(), argument)


@pytest.mark.parametrize(
    ("argument", "rotation", "mirror"),
    [("0", 0, False), ("90", 90, False), ("180.0", 180, False), ("270", 270, False),
     ("360", 0, False), ("-90", 270, False), ("!0", 0, True), ("!180", 180, True)],
)
def test_rotation_parsing(argument, rotation, mirror):
    p = iipproc.rotation(Processing(), argument)
    assert (p.rotation, p.mirror) == (rotation, mirror)


def test_processing_flags():
    assert not Processing().floating
    assert parse(minmax="-:0,1").floating  # 1.2+: MINMAX forces the float pipeline
    assert parse(cnv="sharpen").floating
    assert not parse(col="grey").floating
    assert parse(col="binary").needs_histogram and parse(cnt="eq").needs_histogram
    assert not parse(cnt="2").needs_histogram


def test_colormap_unknown_name_raises_in_floatops_too():
    with pytest.raises(BadRequest):
        floatops.colormap(np.zeros((1, 1, 1), np.float32), "nope")
