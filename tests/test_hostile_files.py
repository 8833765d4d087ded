"""Hostile files (issue 11): every broken, truncated, looping, lying or
mislabelled file in tests/hostile.py, asked for in every protocol's request
forms by one worker process (tests/hostile_worker.py) running under an
address-space limit: each answer is a 4xx with a message (never a 5xx or a
traceback), the worker never dies or hangs, and its peak RSS stays bounded.

On main the 200000² bomb's export took the worker past 4 GB (here: killed by
the limit), tiles past the end of the file, IFD loops, bogus sample formats
and a JPEG 2000 claiming 4e9×4e9 pixels were described with 200.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import DESCRIBED, HOSTILE, SERVED

WORKER = Path(__file__).with_name("hostile_worker.py")
#: address space the worker may map (a limit, not the measure: libvips and
#: numpy reserve far more virtual memory than they touch)
ADDRESS_SPACE = 3 << 30
#: peak resident memory allowed: the interpreter with numpy, pyvips and
#: glymur loaded is about 110 MB; a bomb decoded would be gigabytes
MAX_RSS = 400 << 20
TIMEOUT = 240  # seconds for the whole table: a hang fails, not a slow machine


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile")
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", VIPS_CONCURRENCY="1")
    done = subprocess.run(
        [sys.executable, str(WORKER), str(directory)], capture_output=True, text=True,
        timeout=TIMEOUT, preexec_fn=_limit, env=env, cwd=WORKER.parent,
    )
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, records


def test_worker_survives_the_whole_table_with_bounded_memory(table):
    done, records = table
    assert done.returncode == 0, done.stderr[-3000:]
    peak = records[-1]["peak_rss"]
    assert peak < MAX_RSS, f"peak RSS {peak / 2**20:.0f} MB"
    assert len(records) - 1 == len(HOSTILE) * 12


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_answers_4xx_with_a_message(table, name):
    done, records = table
    mine = [r for r in records if r.get("file") == name]
    assert mine, done.stderr[-3000:]
    for record in mine:
        status, body = record["status"], record["body"]
        assert status < 500, record
        assert "Traceback" not in body and "/files/" not in body, record
        if status >= 400:
            assert body.strip(), record  # a message, not an empty error
            continue
        # a 200 only where the header is intact and the file is described, or
        # its data are real tiles (the bomb's) or what libjpeg salvages
        if record["kind"] == "meta":
            assert name in DESCRIBED, record
        else:
            assert name in SERVED, record
