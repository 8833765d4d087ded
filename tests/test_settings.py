import pytest

from iipy.errors import ConfigError
from iipy.settings import MEGABYTE, Settings


def test_defaults_are_iipsrvs():
    s = Settings.from_environ({})
    assert s.jpeg_quality == 75
    assert s.max_cvt == 5000
    assert s.max_image_cache_bytes == 10 * MEGABYTE
    assert s.max_metadata_cache_size == 1000
    assert s.cache_control == "max-age=86400"
    assert s.filename_pattern == "_pyr_"
    assert s.allow_upscaling is True
    assert s.codec_passthrough is True
    assert s.verbosity == 1
    assert s.logfile == "/tmp/iipsrv.log"
    assert s.uri_map is None
    assert s.iiif_version == 3


@pytest.mark.parametrize(
    ("env", "attr", "expected"),
    [
        ({"JPEG_QUALITY": "150"}, "jpeg_quality", 100),
        ({"JPEG_QUALITY": "0"}, "jpeg_quality", 1),
        ({"PNG_QUALITY": "12"}, "png_quality", 9),
        ({"WEBP_QUALITY": "-5"}, "webp_quality", -1),
        ({"MAX_CVT": "-1"}, "max_cvt", -1),  # 1.2+: no limit (1.1 turned it into 64)
        ({"MAX_CVT": "0"}, "max_cvt", 5000),
        ({"MAX_CVT": "-7"}, "max_cvt", 1),
        ({"MAX_IMAGE_CACHE_SIZE": "2.5"}, "max_image_cache_bytes", int(2.5 * MEGABYTE)),
        ({"MAX_IMAGE_METADATA_CACHE_SIZE": "7"}, "max_metadata_cache_size", 7),
        ({"MAX_METADATA_CACHE_SIZE": "9", "MAX_IMAGE_METADATA_CACHE_SIZE": "7"},
         "max_metadata_cache_size", 9),
        ({"WATERMARK_OPACITY": "3"}, "watermark_opacity", 1.0),
        ({"WATERMARK_PROBABILITY": "-1"}, "watermark_probability", 0.0),
        ({"ALLOW_UPSCALING": "0"}, "allow_upscaling", False),
        ({"CODEC_PASSTHROUGH": "0"}, "codec_passthrough", False),
        ({"VERBOSITY": "-3"}, "verbosity", 0),
        ({"URI_MAP": "iiif=>IIIF"}, "uri_map", ("iiif", "iiif")),
        ({"URI_MAP": "images=>iip"}, "uri_map", ("images", "fif")),
        ({"CACHE_CONTROL": "no-store"}, "cache_control", "no-store"),
        ({"IIIF_VERSION": "0"}, "iiif_version", 3),
    ],
)
def test_parsing_and_ranges(env, attr, expected):
    assert getattr(Settings.from_environ(env), attr) == expected


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"JPEG_QUALITY": "high"}, "JPEG_QUALITY"),
        ({"MAX_CVT": "lots"}, "MAX_CVT"),
        ({"MAX_IMAGE_CACHE_SIZE": "-1"}, "MAX_IMAGE_CACHE_SIZE"),
        ({"WATERMARK_OPACITY": "half"}, "WATERMARK_OPACITY"),
        ({"URI_MAP": "iiif"}, "URI_MAP"),
        ({"URI_MAP": "x=>gopher"}, "URI_MAP"),
        ({"IIIF_VERSION": "4"}, "IIIF_VERSION"),
    ],
)
def test_bad_value_names_the_variable(env, name):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ(env)
    assert name in info.value.message


def test_settings_are_frozen_and_hashable():
    s = Settings.from_environ({})
    with pytest.raises(AttributeError):
        s.jpeg_quality = 5  # type: ignore[misc]
    assert hash(s) == hash(Settings.from_environ({}))
