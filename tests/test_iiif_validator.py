"""The official IIIF Image API validator against a real iipy server.

PyPI ``iiif-validator`` 1.0.5 is the validator (its ``iiif-validate.py``
drives ``iiif_validator.validator.TestSuite``; we run the same calls); its test
image, ``validation_image.png``, ships in the ``iiif-validator-ng`` wheel.  Both
distributions install a package named ``iiif_validator``: whichever is
installed last overwrites the other's modules, so scripts/install.sh puts
1.0.5 back on top, and :func:`validator_is_intact` checks the files against
1.0.5's RECORD before anything runs.

The image becomes a pyramidal TIFF under a temporary FILESYSTEM_PREFIX (with
FILESYSTEM_SUFFIX=.tif, so the identifier is the validator's usual
``67352ccc-d1b0-11e1-89ae-279075081939``) and one ``python -m iipy --http``
server per IIIF version (IIIF_VERSION=2 and 3: the URLs of both versions are
the same) answers every level 0-2 test, plus the optional tests for what
info.json claims.  Three tests of 1.0.5 cannot pass on Python 3 whatever the
server does (``urllib.urlopen`` is Python 2 only): they are strict xfails, so a
surprise pass is noticed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"
ROOT = Path(__file__).resolve().parent.parent
LEVELS = {  # the validator's level 0-2 tests, as TestSuite.list_tests(version) lists them
    "2.0": [
        "info_json", "id_basic", "id_squares", "format_jpg",  # level 0
        "baseurl_redirect", "cors", "format_error_random", "id_error_escapedslash",
        "id_error_random", "id_error_unescaped", "id_escaped", "jsonld",
        "quality_error_random", "region_error_random", "region_pixels", "rot_error_random",
        "size_ch", "size_error_random", "size_percent", "size_region", "size_wc",  # level 1
        "format_png", "quality_bitonal", "quality_color", "quality_grey", "region_percent",
        "rot_full_basic", "rot_region_basic", "size_bwh", "size_wh",  # level 2
    ],
    "3.0": [
        "info_json", "id_basic", "id_squares", "format_jpg", "size_nofull",
        "baseurl_redirect", "cors", "format_error_random", "id_error_escapedslash",
        "id_error_random", "id_error_unescaped", "id_escaped", "jsonld",
        "quality_error_random", "region_error_random", "region_pixels", "region_square",
        "rot_error_random", "size_ch", "size_error_random", "size_noup", "size_region",
        "size_wc", "size_wh",
        "format_png", "quality_bitonal", "quality_color", "quality_grey", "region_percent",
        "rot_full_basic", "rot_region_basic", "size_bwh", "size_percent",
    ],
}
#: optional (level 3) tests and the info.json claim that makes each applicable
OPTIONAL = {
    "rot_full_non90": "rotationArbitrary",
    "rot_region_non90": "rotationArbitrary",
    "rot_mirror": "mirroring",
    "rot_mirror_180": "mirroring",
    "size_up": "upscaling",  # 2.x sizeAboveFull, 3.0 sizeUpscaling
    "format_tif": "format tif",
    "linkheader_canonical": "canonicalLinkHeader",
    "linkheader_profile": "profileLinkHeader",
}
#: tests of 1.0.5 that fail on Python 3 for reasons in the validator itself
BROKEN = {
    "format_webp": "1.0.5 calls urllib.urlopen (Python 2 only) and compares bytes with a str",
    "format_jp2": "1.0.5 calls urllib.urlopen (Python 2 only); iipy does not write JPEG 2000",
    "format_pdf": "1.0.5 calls urllib.urlopen (Python 2 only); iipy does not write PDF",
}

DRIVER = """
import json, sys, traceback
from iiif_validator.validator import ImageAPI, TestSuite, ValidationInfo
server, version, identifier = sys.argv[1:4]
out = {}
for name in sys.argv[4:]:
    try:
        result = ImageAPI(identifier, server, "iiif", "http", "", version, debug=False)
        TestSuite(ValidationInfo()).run_test(name, result)
        if result.exception is not None:
            e = result.exception
            out[name] = {"ok": False, "message": str(e), "urls": result.urls}
        else:
            out[name] = {"ok": True, "urls": result.urls}
    except Exception as e:
        out[name] = {"ok": False, "message": repr(e), "urls": [],
                     "trace": traceback.format_exc(limit=3)}
print(json.dumps(out))
"""


def validator_is_intact() -> str | None:
    """None when iiif-validator 1.0.5's files are installed unmodified, else why not."""
    try:
        dist = importlib.metadata.distribution("iiif-validator")
    except importlib.metadata.PackageNotFoundError:
        return "iiif-validator is not installed (pip install -e '.[test]')"
    if dist.version != "1.0.5":
        return f"iiif-validator {dist.version} is installed; these tests are for 1.0.5"
    for file in dist.files or []:
        if file.hash is None or not str(file).endswith(".py"):
            continue
        digest = hashlib.sha256(Path(file.locate()).read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            return (f"{file} was overwritten (by iiif-validator-ng?): "
                    "pip install --force-reinstall --no-deps iiif-validator==1.0.5")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"iipy exited with {proc.returncode}: {proc.stderr.read()!r}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"iipy did not answer {url}")


@pytest.fixture(scope="module")
def validation_prefix(tmp_path_factory) -> Path:
    problem = validator_is_intact()
    if problem:
        pytest.fail(problem)
    try:
        png = importlib.resources.files("iiif_validator") / "validation_image.png"
        png_path = Path(str(png))
        assert png_path.is_file()
    except (ModuleNotFoundError, AssertionError):
        pytest.fail("validation_image.png is missing: pip install iiif-validator-ng")
    import pyvips

    directory = tmp_path_factory.mktemp("iiif-validation")
    image = pyvips.Image.new_from_file(str(png_path))
    image.tiffsave(str(directory / f"{IDENTIFIER}.tif"), tile=True, pyramid=True,
                   compression="jpeg", Q=95, tile_width=256, tile_height=256)
    return directory


@pytest.fixture(scope="module", params=["2.0", "3.0"])
def validator_run(request, validation_prefix):
    """Start iipy for one IIIF version, run every applicable test, yield the results."""
    version = request.param
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FILESYSTEM_PREFIX": str(validation_prefix) + "/",
        "FILESYSTEM_SUFFIX": ".tif",
        "IIIF_VERSION": version[0],
        "CORS": "*",
        "LOGFILE": "/dev/null",
        "VERBOSITY": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "iipy", "--http", f"127.0.0.1:{port}", "--processes", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        server = f"127.0.0.1:{port}"
        info_url = f"http://{server}/iiif/{IDENTIFIER}/info.json"
        _wait(info_url, proc)
        with urllib.request.urlopen(info_url, timeout=5) as response:
            info = json.load(response)
        names = LEVELS[version] + list(OPTIONAL) + list(BROKEN)
        driver = subprocess.run(
            [sys.executable, "-c", DRIVER, server, version, IDENTIFIER, *names],
            capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert driver.returncode == 0, driver.stderr
        results = json.loads(driver.stdout.strip().splitlines()[-1])
        yield version, info, results
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def claims(info: dict) -> set[str]:
    """What an info.json says the server does beyond level 2, in OPTIONAL's terms."""
    if "extraFeatures" in info:  # 3.0
        features = set(info["extraFeatures"])
        formats = set(info.get("extraFormats", []))
        if "sizeUpscaling" in features:
            features.add("upscaling")
    else:
        profile = info["profile"][1]
        features, formats = set(profile["supports"]), set(profile["formats"])
        if "sizeAboveFull" in features:
            features.add("upscaling")
    return features | {f"format {f}" for f in formats}


def test_info_json_claims_the_optional_features(validator_run):
    _, info, _ = validator_run
    assert {"rotationArbitrary", "mirroring", "upscaling", "format tif", "format webp",
            "canonicalLinkHeader", "profileLinkHeader"} <= claims(info)
    profile = info["profile"] if "id" in info else info["profile"][0]
    assert profile in ("level2", "http://iiif.io/api/image/2/level2.json")


def test_the_validator_lists_the_tests_we_run():
    """Our level tables match what the installed validator lists."""
    if validator_is_intact():
        pytest.fail(validator_is_intact())
    code = ("import json; from iiif_validator.validator import TestSuite, ValidationInfo;"
            "t = TestSuite(ValidationInfo());"
            "print(json.dumps({v: t.list_tests(v) for v in ('2.0', '3.0')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    listed = json.loads(out)
    for version, names in LEVELS.items():
        levels = {n: t["level"] for n, t in listed[version].items()}
        assert sorted(n for n, level in levels.items() if level <= 2) == sorted(names)
        assert set(OPTIONAL) | set(BROKEN) <= {n for n, level in levels.items() if level == 3}


def _report(result: dict) -> str:
    return f"{result.get('message')} urls={result.get('urls')} {result.get('trace', '')}"


@pytest.mark.parametrize("test", sorted(set(LEVELS["2.0"]) | set(LEVELS["3.0"])))
def test_level_0_to_2(validator_run, test):
    version, _, results = validator_run
    if test not in LEVELS[version]:
        assert test not in results
        return
    assert results[test]["ok"], _report(results[test])


@pytest.mark.parametrize("test", sorted(OPTIONAL))
def test_optional_feature_claimed_in_info_json(validator_run, test):
    _, info, results = validator_run
    assert OPTIONAL[test] in claims(info)
    assert results[test]["ok"], _report(results[test])


@pytest.mark.parametrize(
    "test",
    [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason))
     for name, reason in sorted(BROKEN.items())],
)
def test_known_broken_on_python3(validator_run, test):
    _, _, results = validator_run
    assert results[test]["ok"], _report(results[test])
