"""Pixel operations with numeric expectations on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from iipy.models import ImageInfo, Level, OutputFormat, Processing, SampleFormat
from iipy.render.transforms import (
    flatten_for,
    histogram,
    orient,
    otsu_threshold,
    rotate_arbitrary,
    to_8bit,
    to_binary,
    to_grey,
)

LEVELS = (Level(4, 1, 256, 256),)


def info(bits=8, fmt=SampleFormat.UINT, bands=1, lo=0.0, hi=None):
    hi = hi if hi is not None else {8: 255.0, 16: 65535.0, 32: 1.0}[bits]
    return ImageInfo("tiff", LEVELS, bands, bits, fmt, min_values=(lo,) * bands,
                     max_values=(hi,) * bands)


def test_eight_bit_without_processing_is_untouched():
    pixels = np.array([[[0], [10], [200], [255]]], dtype=np.uint8)
    assert to_8bit(pixels, info(), Processing()) is pixels


def test_sixteen_bit_is_normalised_by_min_max():
    pixels = np.array([[[0], [257], [32768], [65535]]], dtype=np.uint16)
    assert to_8bit(pixels, info(16), Processing())[0, :, 0].tolist() == [0, 1, 127, 255]
    narrow = info(16, lo=1000, hi=2000)
    pixels = np.array([[[0], [1000], [1500], [4000]]], dtype=np.uint16)
    assert to_8bit(pixels, narrow, Processing())[0, :, 0].tolist() == [0, 0, 127, 255]


def test_float_with_non_finite_values():
    pixels = np.array([[[0.5], [np.nan], [np.inf], [2.0]]], dtype=np.float32)
    assert to_8bit(pixels, info(32, SampleFormat.FLOAT), Processing())[0, :, 0].tolist() == [
        127, 0, 0, 255,
    ]


def test_gamma_contrast_and_invert_on_a_gradient():
    pixels = np.array([[[0], [64], [128], [255]]], dtype=np.uint8)
    gam = to_8bit(pixels, info(), Processing(gamma=2.0))[0, :, 0].tolist()
    assert gam == [0, int((64 / 255) ** 2 * 255), int((128 / 255) ** 2 * 255), 255]
    cnt = to_8bit(pixels, info(), Processing(contrast=2.0))[0, :, 0].tolist()
    assert cnt == [0, 128, 255, 255]
    inv = to_8bit(pixels, info(), Processing(invert=True))[0, :, 0].astype(int)
    assert np.abs(inv - np.array([255, 191, 127, 0])).max() <= 1  # float32 truncation


def test_grey_uses_iipsrv_weights():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert to_grey(rgb)[0, :, 0].tolist() == [76, 149, 29, 255]  # weights sum to 2**22


def test_otsu_separates_two_populations_and_binary_thresholds():
    values = np.array([[[20]] * 50 + [[200]] * 50], dtype=np.uint8).reshape(10, 10, 1)
    threshold = otsu_threshold(histogram(values))
    assert 20 < threshold <= 200
    pixels = np.array([[[10], [threshold - 1], [threshold], [250]]], dtype=np.uint8)
    assert to_binary(pixels, threshold)[0, :, 0].tolist() == [0, 0, 255, 255]


@pytest.mark.parametrize(
    ("rotation", "mirror", "expected"),
    [
        (0, False, [[1, 2, 3], [4, 5, 6]]),
        (90, False, [[4, 1], [5, 2], [6, 3]]),
        (180, False, [[6, 5, 4], [3, 2, 1]]),
        (270, False, [[3, 6], [2, 5], [1, 4]]),
        (0, True, [[3, 2, 1], [6, 5, 4]]),
        (180, True, [[4, 5, 6], [1, 2, 3]]),  # ROT=!180: vertical flip
        (90, True, [[6, 3], [5, 2], [4, 1]]),
    ],
)
def test_orient_mirrors_then_rotates_clockwise(rotation, mirror, expected):
    pixels = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)[:, :, None]
    assert orient(pixels, rotation, mirror)[:, :, 0].tolist() == expected


def test_flatten_for_formats():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert flatten_for(rgba, OutputFormat.JPEG).shape[2] == 3
    assert flatten_for(rgba, OutputFormat.PNG).shape[2] == 4
    grey_alpha = np.zeros((2, 2, 2), dtype=np.uint8)
    assert flatten_for(grey_alpha, OutputFormat.JPEG).shape[2] == 1
    assert flatten_for(grey_alpha, OutputFormat.WEBP).shape[2] == 4


def test_arbitrary_rotation_grows_the_canvas_and_fills_the_corners():
    pixels = np.full((100, 200, 3), 100, dtype=np.uint8)
    jpeg = rotate_arbitrary(pixels, 30, OutputFormat.JPEG)
    # bounding box of the rotated rectangle: w·cos + h·sin by h·cos + w·sin
    assert abs(jpeg.shape[1] - (200 * 0.866 + 100 * 0.5)) <= 2
    assert abs(jpeg.shape[0] - (100 * 0.866 + 200 * 0.5)) <= 2
    assert jpeg.shape[2] == 3 and tuple(jpeg[0, 0]) == (255, 255, 255)
    assert tuple(jpeg[jpeg.shape[0] // 2, jpeg.shape[1] // 2]) == (100, 100, 100)
    png = rotate_arbitrary(pixels, 30, OutputFormat.PNG)
    assert png.shape[2] == 4 and png[0, 0, 3] == 0
    assert tuple(png[png.shape[0] // 2, png.shape[1] // 2]) == (100, 100, 100, 255)


def test_arbitrary_rotation_is_clockwise():
    pixels = np.zeros((50, 100, 1), dtype=np.uint8)
    pixels[:, 90:] = 255  # a bright right edge
    turned = rotate_arbitrary(pixels, 80, OutputFormat.JPEG)[:, :, 0]
    rows = np.nonzero(turned[:, turned.shape[1] // 2] > 200)[0]
    assert rows.mean() > turned.shape[0] * 0.6  # clockwise: the right edge goes down


def test_arbitrary_rotation_of_grey_adds_alpha_where_the_format_has_it():
    grey = np.full((10, 20, 1), 7, dtype=np.uint8)
    assert rotate_arbitrary(grey, 45, OutputFormat.PNG).shape[2] == 2
    assert rotate_arbitrary(grey, 45, OutputFormat.JPEG).shape[2] == 1
