import pytest

from iipy.models import ImageInfo, Level
from iipy.render.geometry import (
    c_round,
    choose_level,
    cvt_output_size,
    exact_tile,
    level_box,
    region_box,
    scale_factor,
)

INFO = ImageInfo(
    "tiff",
    (Level(1000, 700, 256, 256), Level(500, 350, 256, 256), Level(250, 175, 256, 256)),
    3,
    8,
)
FULL = (0.0, 0.0, 1.0, 1.0)


def test_c_round_rounds_halves_away_from_zero():
    assert [c_round(v) for v in (0.5, 1.5, 2.5, -0.5, 2.4999)] == [1, 2, 3, -1, 2]


@pytest.mark.parametrize(
    ("region", "wid", "hei", "max_cvt", "expected"),
    [  # iip-protocol.md §14 test vectors (1.3 where 1.1 is off by one)
        (FULL, 0, 0, 5000, (1000, 700)),
        (FULL, 300, 0, 5000, (300, 210)),
        (FULL, 0, 300, 5000, (429, 300)),
        (FULL, 300, 300, 5000, (300, 210)),
        (FULL, 2000, 0, 5000, (2000, 1400)),
        (FULL, 6000, 0, 5000, (5000, 3500)),
        ((0.25, 0.25, 0.5, 0.5), 0, 0, 5000, (1000, 700)),
        ((0.25, 0.25, 0.5, 0.5), 100, 0, 5000, (100, 70)),
        (FULL, 6000, 0, -1, (6000, 4200)),
    ],
)
def test_cvt_output_size(region, wid, hei, max_cvt, expected):
    assert cvt_output_size(INFO, region, wid, hei, max_cvt, True) == expected


def test_no_upscaling_bounds_each_side():
    assert cvt_output_size(INFO, FULL, 2000, 0, 5000, False) == (1000, 700)


@pytest.mark.parametrize(
    ("width", "height", "level"),
    [(1000, 700, 0), (300, 210, 1), (250, 175, 2), (260, 182, 1), (100, 70, 2), (501, 1, 0)],
)
def test_choose_level_is_smallest_that_is_large_enough(width, height, level):
    assert choose_level(INFO, FULL, width, height) == level


def test_region_box_is_clamped_inside_the_level():
    assert region_box(INFO, 0, (0.25, 0.25, 0.5, 0.5)) == (250, 175, 500, 350)
    assert region_box(INFO, 2, (0.9, 0.9, 0.5, 0.5)) == (225, 158, 25, 17)
    assert region_box(INFO, 2, (0.0, 0.0, 0.0001, 0.0001)) == (0, 0, 1, 1)


ODD = ImageInfo(  # images.rgb_odd: libvips rounds each halving down
    "tiff",
    tuple(Level(w, h, 256, 256) for w, h in ((1410, 793), (705, 396), (352, 198), (176, 99))),
    3,
    8,
)


def test_scale_factors_are_integers_whatever_the_rounding():
    assert [scale_factor(ODD, level) for level in range(4)] == [1, 2, 4, 8]
    up = ImageInfo("tiff", (Level(1410, 793, 256, 256), Level(705, 397, 256, 256),
                            Level(353, 199, 256, 256)), 3, 8)  # rounded up instead
    assert [scale_factor(up, level) for level in range(3)] == [1, 2, 4]


@pytest.mark.parametrize(("level", "box", "expected"), [
    (1, (0, 0, 1410, 793), (0, 0, 705, 396)),  # the full image is the whole level
    (3, (0, 0, 1410, 793), (0, 0, 176, 99)),
    (1, (1024, 512, 386, 281), (512, 256, 193, 140)),  # the corner tile's remainder
    (1, (1024, 512, 512, 512), (512, 256, 193, 140)),  # past the edge: clamped
    (2, (1024, 0, 386, 793), (256, 0, 96, 198)),
    (0, (5, 5, 0.2, 0.2), (5, 5, 1, 1)),  # at least one pixel
])
def test_level_box(level, box, expected):
    assert level_box(ODD, level, box) == expected


def test_level_box_stays_on_the_tile_grid_where_proportions_drift():
    """A level 0.94 px short of H/16: proportional rounding would put row 4 at 1023."""
    info = ImageInfo("tiff", (Level(4096, 20479, 256, 256), Level(256, 1279, 256, 256)), 3, 8)
    assert level_box(info, 1, (0, 16384, 4096, 4095)) == (0, 1024, 256, 255)


@pytest.mark.parametrize(("box", "size", "tile"), [
    ((0, 0, 1024, 793), (256, 198), (2, 0, 0)),
    ((1024, 512, 386, 281), (193, 140), (1, 2, 1)),
    ((0, 0, 1410, 793), (176, 99), (3, 0, 0)),
    ((1280, 768, 130, 25), (130, 25), (0, 5, 3)),
    ((0, 0, 1024, 793), (256, 199), None),  # not the level's size
    ((0, 0, 1024, 793), (128, 99), None),  # a size between levels
    ((100, 0, 512, 512), (256, 256), None),  # off the grid
    ((0, 0, 512, 512), (256, 256), (1, 0, 0)),
])
def test_exact_tile(box, size, tile):
    assert exact_tile(ODD, box, *size) == tile
