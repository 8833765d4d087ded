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
        ({"MAX_CVT": "-1"}, "max_cvt", -1),  # 1.2+: no limit (1.1 turned it into 64)
        ({"MAX_IMAGE_CACHE_SIZE": "2.5"}, "max_image_cache_bytes", int(2.5 * MEGABYTE)),
        ({"MAX_IMAGE_METADATA_CACHE_SIZE": "7"}, "max_metadata_cache_size", 7),
        ({"MAX_METADATA_CACHE_SIZE": "9", "MAX_IMAGE_METADATA_CACHE_SIZE": "7"},
         "max_metadata_cache_size", 9),
        ({"ALLOW_UPSCALING": "0"}, "allow_upscaling", False),
        ({"CODEC_PASSTHROUGH": "0"}, "codec_passthrough", False),
        ({"URI_MAP": "iiif=>IIIF"}, "uri_map", ("iiif", "iiif")),
        ({"URI_MAP": "images=>iip"}, "uri_map", ("images", "fif")),
        ({"CACHE_CONTROL": "no-store"}, "cache_control", "no-store"),
        ({"IIIF_VERSION": "0"}, "iiif_version", 3),
        # the ends of every range are accepted
        ({"JPEG_QUALITY": "100"}, "jpeg_quality", 100),
        ({"JPEG_QUALITY": "1"}, "jpeg_quality", 1),
        ({"PNG_QUALITY": "9"}, "png_quality", 9),
        ({"WEBP_QUALITY": "-1"}, "webp_quality", -1),
        ({"WATERMARK_OPACITY": "0"}, "watermark_opacity", 0.0),
        ({"WATERMARK_PROBABILITY": "1"}, "watermark_probability", 1.0),
        ({"INTERPOLATION": "3"}, "interpolation", 3),
        ({"TIFF_COMPRESSION": "5"}, "tiff_compression", 5),
        ({"MAX_LAYERS": "-1"}, "max_layers", -1),
        ({"MAX_ICC": "-1"}, "max_icc", -1),
        ({"MAX_METADATA_CACHE_SIZE": "-1"}, "max_metadata_cache_size", -1),
        ({"VERBOSITY": "0"}, "verbosity", 0),
        ({"IIPY_READ_TIMEOUT": "0.25"}, "read_timeout", 0.25),
        ({}, "read_timeout", 5.0),
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
        # out of range: iipsrv clamps silently (MAX_CVT=-5 made every export 1x1)
        ({"JPEG_QUALITY": "150"}, "JPEG_QUALITY"),
        ({"JPEG_QUALITY": "0"}, "JPEG_QUALITY"),
        ({"JPEG_QUALITY": "1e400"}, "JPEG_QUALITY"),
        ({"PNG_QUALITY": "12"}, "PNG_QUALITY"),
        ({"WEBP_QUALITY": "-5"}, "WEBP_QUALITY"),
        ({"TIFF_QUALITY": "101"}, "TIFF_QUALITY"),
        ({"TIFF_COMPRESSION": "6"}, "TIFF_COMPRESSION"),
        ({"MAX_CVT": "-5"}, "MAX_CVT"),
        ({"MAX_CVT": "0"}, "MAX_CVT"),
        ({"WATERMARK_OPACITY": "2"}, "WATERMARK_OPACITY"),
        ({"WATERMARK_OPACITY": "nan"}, "WATERMARK_OPACITY"),
        ({"WATERMARK_PROBABILITY": "-1"}, "WATERMARK_PROBABILITY"),
        ({"INTERPOLATION": "7"}, "INTERPOLATION"),
        ({"INTERPOLATION": "-1"}, "INTERPOLATION"),
        ({"VERBOSITY": "-3"}, "VERBOSITY"),
        ({"MAX_LAYERS": "-2"}, "MAX_LAYERS"),
        ({"MAX_ICC": "-2"}, "MAX_ICC"),
        ({"MEMCACHED_TIMEOUT": "-1"}, "MEMCACHED_TIMEOUT"),
        ({"MAX_METADATA_CACHE_SIZE": "-2"}, "MAX_METADATA_CACHE_SIZE"),
        ({"MAX_IMAGE_CACHE_SIZE": "inf"}, "MAX_IMAGE_CACHE_SIZE"),
        ({"IIPY_READ_TIMEOUT": "0"}, "IIPY_READ_TIMEOUT"),
        ({"IIPY_READ_TIMEOUT": "-1"}, "IIPY_READ_TIMEOUT"),
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


@pytest.mark.parametrize(
    ("variable", "value"),
    [("JPEG_QUALITY", "150"), ("WATERMARK_OPACITY", "2"), ("INTERPOLATION", "7"),
     ("MAX_CVT", "-5"), ("WATERMARK", "{tmp}/not-a-tiff.txt"), ("WATERMARK", "{tmp}/missing.tif")],
)
def test_the_command_stops_with_one_line_naming_the_variable(tmp_path, variable, value):
    """`iipy` refuses to start: exit status 2, one line on standard error, no traceback
    (a bad WATERMARK used to escape cli.main as a 20-line traceback)."""
    import os
    import subprocess
    import sys

    (tmp_path / "not-a-tiff.txt").write_text("hello")
    env = {k: v for k, v in os.environ.items() if k not in ("WATERMARK", variable)}
    env.update(LOGFILE=str(tmp_path / "log"), **{variable: value.format(tmp=tmp_path)})
    done = subprocess.run([sys.executable, "-m", "iipy", "--http", "127.0.0.1:0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"iipy: configuration error: {variable}=")
    assert "Traceback" not in done.stderr
