"""The libjpeg-turbo fast paths (simplejpeg): tile decoding from the stored
bytes and JPEG encoding must give what libvips and Pillow give."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import pattern_array, srgb_profile
from PIL import Image

from iipy.decoders import decoder_for
from iipy.decoders.base import Decoder
from iipy.models import OutputFormat
from iipy.render.encoders import Density, encode

simplejpeg = pytest.importorskip("simplejpeg")


@pytest.mark.parametrize("name", ["rgb", "rgb_ycbcr", "grey8", "rgb_odd", "rect_tiles"])
def test_stored_tile_decode_matches_libvips(images, name):
    decoder = decoder_for(str(images[name]))
    for level, lv in enumerate(decoder.info.levels):
        for column, row in {(0, 0), (lv.columns - 1, lv.rows - 1), (lv.columns // 2, 0)}:
            fast = decoder.read_tile(level, column, row)
            slow = Decoder.read_tile(decoder, level, column, row)  # libvips region
            assert fast.shape == slow.shape, (name, level, column, row)
            assert np.abs(fast.astype(int) - slow).max() <= 2, (name, level, column, row)


def test_fast_jpeg_carries_density_and_icc():
    pixels = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    icc = srgb_profile()
    density = Density(150.4 / 0.0254, 72.0 / 0.0254)  # pixels per metre
    data = encode(pixels, OutputFormat.JPEG, 80, icc=icc, density=density)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (80, 64)
    assert image.info["icc_profile"] == icc
    assert image.info["dpi"] == (150, 72)
    grey = encode(pixels[:, :, :1], OutputFormat.JPEG, 80)
    assert Image.open(io.BytesIO(grey)).mode == "L"


def test_fast_jpeg_equals_pillows_quality(images):
    pixels = pattern_array(300, 200)
    ours = Image.open(io.BytesIO(encode(pixels, OutputFormat.JPEG, 75)))
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=75)
    pillow = Image.open(io.BytesIO(out.getvalue()))
    assert ours.quantization == pillow.quantization  # same tables
    assert ours.layer == pillow.layer  # same 4:2:0 subsampling
    diff = np.abs(np.asarray(ours).astype(int) - np.asarray(pillow))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 5
