"""atheris (coverage-guided) fuzz targets over iipy's parsers of untrusted bytes.

* ``dctsplice``: the C extension iipy.jpeg._dctsplice (``decode`` a box of a
  stored JPEG tile, ``encode`` it back, again with the MCU index it returned),
  built a second time with clang's libFuzzer coverage instrumentation so it
  sees its branches;
* ``tiffdir``: the TIFF directory reader and the checks made at open
  (tiffdir.read_structure, TiffDecoder's open: tiffinfo, level choice);
* ``j2kcheck``: the JPEG 2000 box walk and SIZ check.

Seeds are real tiles and files (tests/images.py) plus the small hostile files.
A target may raise iipy's own errors (a refusal); anything else, or a crash
of the process, is a finding.  Every finding is kept as a regression input:
``tests/fuzz_regressions/<target>/<name>.hex`` (tests/test_fuzz.py replays them).

    python tests/fuzz_targets.py TARGET WORKDIR [libFuzzer options, e.g. -max_total_time=600]

(tests/test_fuzz.py runs each target for 12 s; run longer by hand.)
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
REGRESSIONS = HERE / "fuzz_regressions"
sys.path.insert(0, str(HERE))

from iipy.errors import IIPyError  # noqa: E402

_dctsplice = None


def load_dctsplice(instrumented: Path | None = None):
    """The C extension: the instrumented build when given, else the installed one."""
    global _dctsplice
    if instrumented is not None:
        loader = importlib.machinery.ExtensionFileLoader("iipy.jpeg._dctsplice", str(instrumented))
        spec = importlib.util.spec_from_loader("iipy.jpeg._dctsplice", loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        _dctsplice = module
    else:
        from iipy.jpeg import _dctsplice as module

        _dctsplice = module
    return _dctsplice


def build_instrumented(directory: Path) -> Path | None:
    """_dctsplice.c built with clang's coverage instrumentation; None without clang."""
    clang = shutil.which("clang")
    if clang is None:
        return None
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = directory / f"_dctsplice{suffix}"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [clang, "-O1", "-g", "-fPIC", "-shared", "-std=gnu99",
         # libFuzzer's coverage (what -fsanitize=fuzzer-no-link adds, less the
         # stack-depth tracing whose symbol atheris' libFuzzer does not export)
         "-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp",
         f"-I{include}", str(ROOT / "iipy" / "jpeg" / "_dctsplice.c"), "-o", str(out)],
        check=True,
    )
    return out


# -- targets ----------------------------------------------------------------


_LATE: dict[str, Path | None] = {}


def _load_late() -> None:
    """Load the instrumented build once libFuzzer runs: atheris loads its
    libFuzzer (core_with_libfuzzer) only in Fuzz(), and chooses another core
    when libFuzzer's symbols are already there, so the build, which calls
    libFuzzer's coverage hooks, is loaded from inside the first run, after
    making those symbols global."""
    build = _LATE.pop("build")
    if build is not None:
        import ctypes

        import atheris

        core = next(Path(atheris.__file__).parent.glob("core_with_libfuzzer*.so"))
        ctypes.CDLL(str(core), mode=os.RTLD_NOW | os.RTLD_GLOBAL | os.RTLD_NOLOAD)
    load_dctsplice(build)
    print(f"dctsplice: {'clang-instrumented' if build else 'uninstrumented'} build", flush=True)


def dctsplice(data: bytes) -> None:
    """4 bytes of box (x, y, width, height in 0..255), then a JPEG."""
    if _LATE:
        _load_late()
    if len(data) < 4:
        return
    x, y, w, h = data[0], data[1], data[2] % 64 + 1, data[3] % 64 + 1
    jpeg = data[4:]
    got = _dctsplice.decode(jpeg, x, y, x + w, y + h, None)
    if got is None:
        return
    run, window, index = got
    assert isinstance(window, bytearray) and len(window) % (w * h) == 0
    for i in range(0, len(window), 7):
        window[i] ^= 0x5A
    out = _dctsplice.encode(run, window)
    assert out is None or isinstance(out, bytes)
    again = _dctsplice.decode(jpeg, x, y, x + w, y + h, index)  # the known-index path
    if again is not None:
        _dctsplice.encode(again[0], again[1])


def _fd_of(data: bytes) -> int:
    fd = os.memfd_create("fuzz")
    os.write(fd, data)
    return fd


def tiffdir(data: bytes) -> None:
    from iipy.decoders.tiff import TiffDecoder
    from iipy.decoders.tiffdir import read_structure

    fd = _fd_of(data)
    try:
        try:
            read_structure(fd)
        except IIPyError:
            return
        try:
            decoder = TiffDecoder(f"/proc/self/fd/{fd}")
        except IIPyError:
            return
        try:
            for number in range(1, min(decoder.pages, 8)):  # a stack's pages
                try:
                    decoder.page(number).close()
                except IIPyError:
                    pass
        finally:
            decoder.close()
    finally:
        os.close(fd)


def j2kcheck(data: bytes) -> None:
    from iipy.decoders import j2kcheck as check

    fd = _fd_of(data)
    try:
        check.check(fd)
    except IIPyError:
        pass
    finally:
        os.close(fd)


TARGETS = {"dctsplice": dctsplice, "tiffdir": tiffdir, "j2kcheck": j2kcheck}


# -- seeds ------------------------------------------------------------------


def seeds(target: str, directory: Path) -> list[bytes]:
    """Real inputs to start from (written as files of ``directory`` too)."""
    from images import make_jp2, make_tiff

    from iipy.decoders.tiff import TiffDecoder

    found: list[bytes] = []
    if target == "dctsplice":
        for photometric, bands in ((None, 3), ("rgb", 3), (None, 1)):
            path = directory / f"seed_{photometric}_{bands}.tif"
            make_tiff(path, 256, 256, bands=bands, photometric=photometric, Q=90, pyramid=False)
            decoder = TiffDecoder(str(path))
            tile = decoder.raw_tile(0, 0, 0)
            if tile is not None:
                found.append(bytes([10, 20, 40, 30]) + tile)
            decoder.close()
    elif target == "tiffdir":
        path = directory / "seed.tif"
        make_tiff(path, 150, 100, tile=32, Q=50)
        found.append(path.read_bytes())
        path = directory / "seed_subifd.tif"
        make_tiff(path, 150, 100, tile=32, subifd=True, compression="deflate")
        found.append(path.read_bytes())
        import badfiles as hostile

        for name in ("ifd_two_loop", "sample_format_7", "tile_zero"):
            found.append(hostile.HOSTILE[name][1](directory / name))
        from stacks import make_stack, many_pages_tiff

        found.append(many_pages_tiff(4, {1: 0, 2: "self"}))  # a stack whose SubIFDs loop
        found.append(make_stack(directory / "seed_stack.tif", 64, 48, pages=3, tile=16,
                                compression="deflate").read_bytes())
    elif target == "j2kcheck":
        path = directory / "seed.jp2"
        make_jp2(path, 64, 48)
        found.append(path.read_bytes()[:4096])
        import badfiles as hostile

        found.append(hostile.j2k_siz(300, 200))
        found.append(hostile.j2k_siz(1000, 800, tile=256, raw=False))
    found += regressions(target)
    return found


def regressions(target: str) -> list[bytes]:
    """Every input a former run found (hex files, whitespace ignored)."""
    folder = REGRESSIONS / target
    if not folder.is_dir():
        return []
    return [bytes.fromhex("".join(p.read_text().split())) for p in sorted(folder.glob("*.hex"))]


def main() -> None:
    import atheris

    target, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    with atheris.instrument_imports(include=["iipy"]):  # before anything imports them
        import iipy.decoders.j2kcheck  # noqa: F401
        import iipy.decoders.tiff  # noqa: F401
        import iipy.decoders.tiffdir  # noqa: F401
        import iipy.decoders.tiffinfo  # noqa: F401
    instrumented = build_instrumented(work) if target == "dctsplice" else None
    for i, seed in enumerate(seeds(target, work)):
        (corpus / f"seed{i:03d}").write_bytes(seed)
    args = [sys.argv[0], *sys.argv[3:], str(corpus)]
    atheris.Setup(args, TARGETS[target])
    if target == "dctsplice":
        _LATE["build"] = instrumented
    atheris.Fuzz()


if __name__ == "__main__":
    main()
