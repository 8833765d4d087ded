"""FILESYSTEM_PREFIX confinement (issue 11, items 1, 2 and 11).

The prefix names a directory whatever its spelling, or is a string stem; a
prefix that does not exist stops start-up; sequences are confined like single
images; unreadable and corrupt files are logged with their resolved path and
the OS error while the client hears only what a missing file gives.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from images import make_corrupt_tiff, make_tiff
from wsgi import call, make_app

from iipy.decoders import decoder_for
from iipy.errors import ConfigError, NotFound
from iipy.paths import PathResolver
from iipy.serve import logsetup
from iipy.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Path:
    """``srv/images`` (the prefix) beside ``srv/images-private`` and ``srv/outside``."""
    base = tmp_path_factory.mktemp("srv")
    images = base / "images"
    images.mkdir()
    make_tiff(images / "in.tif", 300, 200)
    (base / "images-private").mkdir()
    make_tiff(base / "images-private" / "x.tif", 310, 200)
    (base / "outside").mkdir()
    make_tiff(base / "outside" / "secret.tif", 320, 200)
    os.symlink("../outside/secret.tif", images / "link.tif")
    os.symlink("../outside", images / "linkdir")
    make_tiff(base / "img_a.tif", 330, 200)
    make_tiff(base / "other.tif", 340, 200)
    (base / "img_dir").mkdir()
    make_tiff(base / "img_dir" / "b.tif", 350, 200)
    os.symlink("other.tif", base / "img_link.tif")
    return base


def spellings(base: Path) -> list[str]:
    d = str(base / "images")
    return [d, d + "/", d + "//", str(base) + "//images/./", str(base) + "/./images"]


def max_size(app, fif: str) -> tuple[int, bytes]:
    result = call(app, f"FIF={fif}&OBJ=Max-size")
    return result.status, result.body


def missing(app) -> tuple[int, bytes]:
    return max_size(app, "/no-such-image.tif")


@pytest.mark.parametrize("index", range(5))
def test_a_directory_prefix_serves_its_files_in_any_spelling(srv, index):
    app = make_app(FILESYSTEM_PREFIX=spellings(srv)[index])
    assert max_size(app, "/in.tif") == (200, b"\r\nMax-size:300 200\r\n")


@pytest.mark.parametrize("index", range(5))
def test_a_symlink_out_of_a_directory_prefix_is_refused_in_any_spelling(srv, index):
    app = make_app(FILESYSTEM_PREFIX=spellings(srv)[index])
    assert max_size(app, "/link.tif") == missing(app)
    assert max_size(app, "/linkdir/secret.tif") == missing(app)


@pytest.mark.parametrize("index", range(5))
def test_a_prefix_sibling_is_not_reachable(srv, index):
    app = make_app(FILESYSTEM_PREFIX=spellings(srv)[index])
    assert max_size(app, "-private/x.tif") == missing(app)
    assert max_size(app, "-private%2Fx.tif") == missing(app)


def test_the_scope_of_a_directory_is_the_directory_itself(srv):
    from iipy.paths import prefix_scope

    for spelling in spellings(srv):
        scope = prefix_scope(spelling)
        assert scope is not None
        assert (scope.root, scope.stem) == (str((srv / "images").resolve()), "")


def test_a_string_stem_confines_to_names_beginning_with_it(srv):
    stem = str(srv / "img_")
    app = make_app(FILESYSTEM_PREFIX=stem)
    assert max_size(app, "a.tif") == (200, b"\r\nMax-size:330 200\r\n")
    assert max_size(app, "dir/b.tif") == (200, b"\r\nMax-size:350 200\r\n")
    nothing = missing(app)
    assert max_size(app, "link.tif") == nothing  # img_link.tif -> other.tif
    assert max_size(app, "../other.tif") == nothing  # ../ is removed: img_other.tif
    resolver = PathResolver(stem)
    with pytest.raises(NotFound):
        resolver.resolve("link.tif")
    assert resolver.resolve("a.tif") == str((srv / "img_a.tif").resolve())


def test_the_resolver_refuses_a_sibling_of_an_unslashed_prefix(srv):
    resolver = PathResolver(str(srv / "images"))
    assert resolver.resolve("/in.tif") == str((srv / "images" / "in.tif").resolve())
    for requested in ("-private/x.tif", "/link.tif", "/linkdir/secret.tif"):
        with pytest.raises(NotFound) as info:
            resolver.resolve(requested)
        assert str(srv) not in info.value.message


@pytest.mark.parametrize("prefix", ["/no/such/dir/", "/no/such/dir", "/no/such/stem_"])
def test_a_prefix_that_does_not_exist_stops_start_up(prefix):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"FILESYSTEM_PREFIX": prefix})
    assert "FILESYSTEM_PREFIX" in info.value.message


def test_the_command_refuses_a_missing_prefix_with_one_line(tmp_path):
    env = dict(os.environ, FILESYSTEM_PREFIX=str(tmp_path / "gone") + "/", LOGFILE="/dev/null",
               PYTHONPATH=str(REPO))
    # its own session: if it started serving instead (today's main), every worker is stopped
    process = subprocess.Popen([sys.executable, "-m", "iipy", "--bind", "127.0.0.1:0",
                                "--processes", "1"], env=env, cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
    assert process.returncode == 2
    assert stderr.count("\n") == 1 and "FILESYSTEM_PREFIX" in stderr
    assert "Traceback" not in stderr


# -- sequences (item 2) -------------------------------------------------------


@pytest.fixture(scope="module")
def seq_tree(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("seqtree")
    (base / "images").mkdir()
    (base / "outside").mkdir()
    for x in (0, 10):
        make_tiff(base / "outside" / f"turn_pyr_{x:03d}_090.tif", 300 + x, 200)
        os.symlink(base / "outside" / f"turn_pyr_{x:03d}_090.tif",
                   base / "images" / f"link_pyr_{x:03d}_090.tif")
    os.symlink("../outside", base / "images" / "out")
    make_tiff(base / "images" / "own_pyr_000_090.tif", 280, 200)
    return base


@pytest.mark.parametrize("slash", ["", "/"])
@pytest.mark.parametrize("query", [
    "FIF=/out/turn&OBJ=Max-size",
    "FIF=/out/turn&SDS=10,90&OBJ=Max-size",
    "FIF=/out/turn&SDS=30,90&JTL=0,0",
    "FIF=/out/turn&OBJ=Horizontal-views",
    "FIF=/link&OBJ=Max-size",
    "FIF=/link&SDS=10,90&JTL=0,0",
])
def test_a_sequence_outside_the_prefix_looks_like_nothing(seq_tree, slash, query):
    app = make_app(FILESYSTEM_PREFIX=str(seq_tree / "images") + slash)
    got = call(app, query)
    nothing = call(app, query.replace("out/turn", "nowhere").replace("link", "nowhere"))
    assert (got.status, got.body) == (nothing.status, nothing.body)
    assert b"sequence" not in got.body


def test_a_sequence_inside_the_prefix_still_works(seq_tree):
    app = make_app(FILESYSTEM_PREFIX=str(seq_tree / "images"))
    assert max_size(app, "/own") == (200, b"\r\nMax-size:280 200\r\n")


# -- diagnostics (item 11) ----------------------------------------------------


@pytest.fixture()
def logfile(tmp_path):
    path = tmp_path / "iipy.log"
    logsetup.configure(Settings(verbosity=1, logfile=str(path)))
    yield path
    root = logging.getLogger("iipy")
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)
    root.propagate = True
    root.setLevel(logging.NOTSET)
    for name in ("iipy.protocols", "iipy.serve.app"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_corrupt_file_is_logged_with_its_path(tmp_path, logfile):
    images = tmp_path / "images"
    images.mkdir()
    make_corrupt_tiff(images / "broken.tif")
    app = make_app(FILESYSTEM_PREFIX=str(images))
    result = call(app, "FIF=/broken.tif&OBJ=Max-size")
    assert 400 <= result.status < 500 and str(tmp_path) not in result.body.decode("latin-1")
    logged = logfile.read_text()
    assert str((images / "broken.tif").resolve()) in logged


def test_a_directory_or_fifo_named_like_an_image_is_logged_and_not_found(tmp_path, logfile):
    images = tmp_path / "images"
    (images / "dir.tif").mkdir(parents=True)
    os.mkfifo(images / "pipe.tif")
    outcome: dict[str, object] = {}

    def attempt() -> None:
        for name in ("dir.tif", "pipe.tif"):
            try:
                decoder_for(str(images / name))
            except NotFound as exc:
                outcome[name] = exc.message

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)  # a blocking open of a FIFO with no writer would never return
    if worker.is_alive():  # unblock it so the test run can end
        with open(images / "pipe.tif", "wb"):
            pass
    assert outcome == {"dir.tif": "image not found", "pipe.tif": "image not found"}
    logged = logfile.read_text()
    assert f"{images / 'pipe.tif'}: not a regular file" in logged


def _as_nobody(probe) -> list[str]:
    """``probe()`` in a forked child that (when we are root) has become ``nobody``, so
    that file permissions apply; its lines come back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            os.write(write_end, "\n".join(probe()).encode())
            code = 0
        except BaseException as exc:  # reported to the parent as a line
            os.write(write_end, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        out = pipe.read().decode()
    os.waitpid(pid, 0)
    return out.splitlines()


def test_an_unreadable_file_is_logged_with_path_and_os_error_and_looks_missing():
    base = Path(tempfile.mkdtemp(prefix="iipy-unreadable-"))  # reachable by nobody
    try:
        base.chmod(0o777)
        images = base / "images"
        images.mkdir()
        images.chmod(0o755)
        make_tiff(images / "locked.tif", 300, 200)
        make_tiff(images / "open.tif", 300, 200)
        (images / "closed").mkdir()
        make_tiff(images / "closed" / "in.tif", 300, 200)
        log = base / "iipy.log"
        log.touch(mode=0o666)
        log.chmod(0o666)
        app = make_app(FILESYSTEM_PREFIX=str(images))
        assert max_size(app, "/open.tif")[0] == 200  # every module the probe needs is loaded
        (images / "locked.tif").chmod(0)
        (images / "closed").chmod(0)

        def probe() -> list[str]:
            logsetup.configure(Settings(verbosity=1, logfile=str(log)))
            fresh = make_app(FILESYSTEM_PREFIX=str(images))
            return [repr(max_size(fresh, f)) for f in ("/locked.tif", "/missing.tif",
                                                       "/closed/in.tif")]

        lines = _as_nobody(probe)
        assert len(lines) == 3, lines
        locked, gone, closed = lines
        assert locked == gone == closed and "404" in locked
        logged = log.read_text()
        assert f"{images / 'locked.tif'}: Permission denied" in logged
        assert f"{images / 'closed' / 'in.tif'}: Permission denied" in logged
        assert str(base) not in locked
    finally:
        (images / "closed").chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)
