"""Load with a fault in the middle: clients in threads, one worker SIGKILLed meanwhile.

Shared by tests/test_faults.py (assertions) and benchmarks/faults.py (figures).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Outcome:
    requests: int
    failed: int
    in_flight: int  # requests started before the kill and not finished at it
    gap: float  # longest time without a successful answer around the kill (s)
    after: int  # successful answers after the kill
    errors: list[str]


def kill_under_load(
    request: Callable[[], bool],
    victim: Callable[[], int],
    clients: int = 4,
    before: float = 1.0,
    after: float = 2.0,
) -> Outcome:
    """Run ``clients`` threads calling ``request()`` (True = a good answer) for
    ``before + after`` seconds; SIGKILL ``victim()`` after ``before`` seconds."""
    done: list[tuple[float, float, bool]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + before + after

    def client() -> None:
        while time.monotonic() < stop:
            start = time.monotonic()
            try:
                ok = request()
            except Exception as exc:  # any transport failure is a lost request
                ok = False
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            with lock:
                done.append((start, time.monotonic(), ok))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(before)
    killed_at = time.monotonic()
    os.kill(victim(), signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=after + 30)
    ends = sorted(end for start, end, ok in done if ok)
    window = [t for t in ends if t >= killed_at - 0.5]
    marks = [killed_at - 0.5, *window] if window else [killed_at - 0.5, stop]
    gap = max(b - a for a, b in zip(marks[:-1], marks[1:], strict=True)) if len(marks) > 1 else 0.0
    return Outcome(
        requests=len(done),
        failed=sum(1 for _, _, ok in done if not ok),
        in_flight=sum(1 for start, end, _ in done if start <= killed_at <= end),
        gap=gap,
        after=sum(1 for t in ends if t > killed_at),
        errors=errors[:5],
    )
