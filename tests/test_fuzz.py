"""atheris over the parsers of untrusted bytes (tests/fuzz_targets.py): the
C extension iipy.jpeg._dctsplice (clang-instrumented), the TIFF directory
reader with the checks made at open, and the JPEG 2000 SIZ check.

CI runs each target for a fixed number of runs with a fixed seed (about 10 s each);
run longer by hand::

    cd tests && python fuzz_targets.py tiffdir /tmp/fuzz -max_total_time=3600

Every input that ever made a target fail is kept as a regression input under
tests/fuzz_regressions/<target>/ (a failing run here writes it there) and
replayed below without atheris.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import fuzz_targets
import pytest

from iipy.errors import IIPyError

HERE = Path(__file__).parent
SECONDS = 12
#: a fixed number of runs per target (with the fixed seed, the same inputs on every machine:
#: a faster machine must not reach new ground and turn CI red at random); SECONDS * 2 caps
#: the time on a slow one. Longer, open-ended runs are for by hand (above).
RUNS = {"dctsplice": 60_000, "j2kcheck": 120_000, "tiffdir": 25_000}


def _regression_cases():
    for target in fuzz_targets.TARGETS:
        folder = fuzz_targets.REGRESSIONS / target
        for path in sorted(folder.glob("*.hex")) if folder.is_dir() else ():
            yield pytest.param(target, path, id=f"{target}/{path.stem}")


@pytest.mark.parametrize("target,path", list(_regression_cases()))
def test_regression_input_is_refused_cleanly(target, path):
    if target == "dctsplice":
        fuzz_targets.load_dctsplice()
    data = bytes.fromhex("".join(path.read_text().split()))
    try:
        fuzz_targets.TARGETS[target](data)
    except IIPyError:
        pass


def test_there_are_regression_inputs():
    """The j2kcheck finding (a box length past the end: OverflowError in pread)."""
    assert list((fuzz_targets.REGRESSIONS / "j2kcheck").glob("*.hex"))


@pytest.mark.parametrize("target", sorted(fuzz_targets.TARGETS))
def test_atheris_finds_nothing_in_a_bounded_run(target, tmp_path):
    done = subprocess.run(
        [sys.executable, "fuzz_targets.py", target, str(tmp_path), f"-runs={RUNS[target]}",
         f"-max_total_time={SECONDS * 2}",
         "-seed=1", "-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/"],
        cwd=HERE, capture_output=True, text=True, timeout=SECONDS * 8,
    )
    output = done.stdout + done.stderr
    runs = re.search(r"Done (\d+) runs in (\d+) second", output)
    print(f"{target}: {runs.group(0) if runs else 'no summary'}")
    if target == "dctsplice":
        assert "dctsplice: clang-instrumented build" in output, output[-2000:]
    if done.returncode != 0 or runs is None:
        kept = []
        for artifact in tmp_path.glob("crash-*"):  # keep it as a regression input
            folder = fuzz_targets.REGRESSIONS / target
            folder.mkdir(parents=True, exist_ok=True)
            hexfile = folder / f"{artifact.name}.hex"
            hexfile.write_text(artifact.read_bytes().hex() + "\n")
            kept.append(f"{hexfile} ({base64.b64encode(artifact.read_bytes())[:200]!r})")
        pytest.fail(f"atheris found a failure in {target}; kept: {kept}\n{output[-4000:]}")
