import pytest

from iipy.geometry import c_round, choose_level, cvt_output_size, region_box
from iipy.models import ImageInfo, Level

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
