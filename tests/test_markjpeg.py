"""The DCT-domain watermark (iipy/jpeg/markjpeg.py + iipy/jpeg/_dctsplice.c).

Checked against the ordinary path: decode the stored JPEG, apply the formula,
encode at the same quality.  Pixels away from the mark must be untouched (the
blocks are copied), pixels under it must be as close to the formula as a
re-encode gets, and anything that is not a plain baseline JPEG must be refused
(None), never crash.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from iipy.jpeg import markjpeg

MARK_H, MARK_W = 32, 64


def _tile(seed: int, noise: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.stack([xx, yy, (xx + yy) // 2], -1)
    return np.clip(img + rng.integers(-noise, noise + 1, img.shape), 0, 255).astype(np.uint8)


def _amount(bands: int) -> np.ndarray:
    amount = np.zeros((MARK_H, MARK_W, bands), np.float32)
    amount[4:28, 4:60, 0] = 127
    if bands == 3:
        amount[10:20, 10:50, 2] = 60
    return amount


def _stamp(amount: np.ndarray):
    """The formula with ``amount`` (the mark's own arithmetic is
    tests/test_watermark.py's business): min(src + amount, 255)."""
    add = amount.astype(np.uint8)

    def stamp(window: np.ndarray) -> None:
        h, w, bands = window.shape
        np.minimum(window, 255 - add[:h, :w, :bands], out=window)
        window += add[:h, :w, :bands]

    return stamp


def _encode(pixels: np.ndarray, quality: int, sub: str) -> bytes:
    if sub == "gray":
        return simplejpeg.encode_jpeg(pixels[:, :, :1].copy(), quality=quality, colorspace="GRAY")
    return simplejpeg.encode_jpeg(pixels, quality=quality, colorsubsampling=sub)


def _decode(data: bytes, sub: str) -> np.ndarray:
    return simplejpeg.decode_jpeg(data, colorspace="GRAY" if sub == "gray" else "RGB",
                                  strict=True).astype(int)


@pytest.mark.parametrize("sub", ["420", "422", "444", "gray"])
@pytest.mark.parametrize("quality", [50, 85, 95])
def test_mark_matches_decode_mark_encode(sub: str, quality: int) -> None:
    jpeg = _encode(_tile(quality), quality, sub)
    base = _decode(jpeg, sub)
    bands = 1 if sub == "gray" else 3
    amount = _amount(bands)
    rnd = random.Random(quality)
    ours_err, ref_err = [], []
    for _ in range(12):
        x, y = rnd.randrange(256 - MARK_W + 1), rnd.randrange(256 - MARK_H + 1)
        out, _ = markjpeg.mark_jpeg(jpeg, _stamp(amount), x, y, MARK_W, MARK_H)
        assert out is not None
        got = _decode(out, sub)  # strict: no libjpeg warning either
        expected = base.copy()
        window = (slice(y, y + MARK_H), slice(x, x + MARK_W))
        expected[window] = np.minimum(expected[window] + amount.astype(int), 255)
        # away from the covered MCUs (and their chroma upsampling) nothing moves
        far = np.ones((256, 256), bool)
        far[max(0, y - 24) : y + MARK_H + 24, max(0, x - 24) : x + MARK_W + 24] = False
        assert np.array_equal(got[far], base[far])
        ref = _decode(_encode(expected.astype(np.uint8), quality, sub), sub)
        ours_err.append(((got[window] - expected[window]) ** 2).mean())
        ref_err.append(((ref[window] - expected[window]) ** 2).mean())
    # as close to the formula as decoding, marking and re-encoding at that quality
    assert np.mean(ours_err) <= np.mean(ref_err) * 1.1 + 0.5


def test_extension_is_built() -> None:
    # scripts/install.sh installs a compiler and Python's headers; without the
    # extension every marked tile silently takes the slow path
    assert markjpeg.available()


@pytest.mark.parametrize("sub", ["420", "444", "gray"])
def test_stamp_sees_the_decoded_pixels(sub: str) -> None:
    jpeg = _encode(_tile(7), 85, sub)
    base = _decode(jpeg, sub)
    seen = []
    out, _ = markjpeg.mark_jpeg(jpeg, lambda w: seen.append(w.copy()), 40, 50, MARK_W, MARK_H)
    window = seen[0].astype(int)
    assert window.shape == (MARK_H, MARK_W, base.shape[2])
    diff = np.abs(window - base[50 : 50 + MARK_H, 40 : 40 + MARK_W])
    # float IDCT vs libjpeg's integer one; 4:2:0 chroma replicated, not interpolated
    assert diff.mean() < (2.0 if sub == "420" else 0.5)
    assert diff.max() <= (24 if sub == "420" else 2)
    assert out == jpeg  # a stamp that changes nothing leaves the tile as it is


def test_mcu_index_gives_the_same_result() -> None:
    jpeg = _encode(_tile(2), 85, "420")
    stamp = _stamp(_amount(3))
    cold, index = markjpeg.mark_jpeg(jpeg, stamp, 10, 200, MARK_W, MARK_H)
    assert index is not None
    # a mark lower down parses on from what the index knows; one higher up
    # decodes only its own MCUs: both as without an index
    for x, y in [(150, 224), (10, 200), (70, 3)]:
        fresh, _ = markjpeg.mark_jpeg(jpeg, stamp, x, y, MARK_W, MARK_H)
        warm, again = markjpeg.mark_jpeg(jpeg, stamp, x, y, MARK_W, MARK_H, index)
        assert warm == fresh
        assert again is index


def test_index_of_another_tile_is_refused_or_harmless() -> None:
    stamp = _stamp(_amount(3))
    _, index = markjpeg.mark_jpeg(_encode(_tile(8), 85, "420"), stamp, 0, 224, MARK_W, MARK_H)
    other = _encode(_tile(9, noise=60), 85, "420")
    out, _ = markjpeg.mark_jpeg(other, stamp, 100, 100, MARK_W, MARK_H, index)
    assert out is None
    grey = _encode(_tile(9), 85, "gray")  # another MCU count
    assert markjpeg.mark_jpeg(grey, stamp, 5, 5, MARK_W, MARK_H, index)[0] is None
    assert markjpeg.mark_jpeg(other, stamp, 5, 5, MARK_W, MARK_H, bytearray(5))[0] is None


def test_noisy_tile_without_padding_room_still_valid() -> None:
    # dense blocks everywhere: the run cannot be padded and the tail is shifted
    jpeg = _encode(_tile(3, noise=127), 95, "444")
    base = _decode(jpeg, "444")
    out, _ = markjpeg.mark_jpeg(jpeg, _stamp(_amount(3)), 33, 41, MARK_W, MARK_H)
    assert out is not None
    got = _decode(out, "444")
    assert np.array_equal(got[120:], base[120:])


def _pil(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [{"progressive": True}, {"restart_marker_blocks": 4}])
def test_refuses_what_it_does_not_handle(options: dict) -> None:
    try:
        jpeg = _pil(_tile(4), quality=85, **options)
    except TypeError:
        pytest.skip("this Pillow cannot write that variant")
    out, _ = markjpeg.mark_jpeg(jpeg, _stamp(_amount(3)), 20, 20, MARK_W, MARK_H)
    assert out is None


def test_corrupt_data_never_crashes() -> None:
    jpeg = bytearray(_encode(_tile(6), 85, "420"))
    rnd = random.Random(6)
    stamp = _stamp(_amount(3))
    for trial in range(300):
        data = bytearray(jpeg)
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        if trial % 5 == 0:
            data = data[: rnd.randrange(len(data))]
        out, _ = markjpeg.mark_jpeg(bytes(data), stamp, rnd.randrange(192), rnd.randrange(224),
                                    MARK_W, MARK_H)
        assert out is None or out[:2] == b"\xff\xd8"
