"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

# tests/ is on sys.path (pytest's default "prepend" import mode, no __init__.py)
from images import ImageSet, make_standard_set

# ---------------------------------------------------------------------------
# Test images (generated at test time by tests/images.py)
# ---------------------------------------------------------------------------
#
# ``images`` maps names to paths (also as attributes: ``images.rgb``); see
# images.make_standard_set for the list and images.py for the pixel pattern.
# ``image_dir`` is the directory they are written to; tests may add their own
# files there with images.make_tiff() (use names that do not clash).


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """A session-wide temporary directory holding the standard test images."""
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def images(image_dir) -> ImageSet:
    """Paths of the standard test images, keyed by name (see make_standard_set)."""
    return make_standard_set(image_dir)


# ---------------------------------------------------------------------------
# end of test images
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# JPEG 2000 test images (issue 5; tests/images.py make_jp2_set)
# ---------------------------------------------------------------------------
#
# ``jp2_images``: paths of the standard JPEG 2000 images, written into the same
# ``image_dir`` as the TIFF set (so one FILESYSTEM_PREFIX serves both).


@pytest.fixture(scope="session")
def jp2_images(image_dir) -> ImageSet:
    """Paths of the standard JPEG 2000 test images (see images.make_jp2_set)."""
    from images import make_jp2_set

    return make_jp2_set(image_dir)


# ---------------------------------------------------------------------------
# A production install (issue 14): scripts/install.sh --prefix, really built by pip
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def production_install():
    """(prefix, bindir) of ``scripts/install.sh --prefix`` into a fresh directory that
    www-data can traverse (Apache runs FastCGI children as www-data under root)."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="iipy-production-"))
    root.chmod(0o755)
    prefix, bindir = root / "opt-iipy", root / "bin"
    script = Path(__file__).resolve().parent.parent / "scripts" / "install.sh"
    result = subprocess.run(
        ["bash", str(script), "--prefix", str(prefix), "--bindir", str(bindir)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{bindir}/iipy -> {prefix}/bin/iipy" in result.stdout
    yield prefix, bindir
    shutil.rmtree(root, ignore_errors=True)
