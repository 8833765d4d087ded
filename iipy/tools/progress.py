"""Progress bars for the tools: per file and overall, with an ETA, silent when not a terminal.

``rich`` draws them when it is installed, else ``tqdm``; with neither, or when
standard error is not a terminal (a pipe, a log file, cron), nothing is drawn
and the tools print only their one-line results.  ``IIPY_PROGRESS=1`` forces the
bars on (a recorded demo), ``IIPY_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol


class Bar(Protocol):
    """What the tools call: a task per file plus an overall one."""

    def add(self, label: str, total: int) -> int: ...
    def advance(self, task: int, steps: int = 1) -> None: ...
    def finish(self, task: int) -> None: ...
    def close(self) -> None: ...


class Quiet:
    """No output at all."""

    def add(self, label: str, total: int) -> int:
        return 0

    def advance(self, task: int, steps: int = 1) -> None:
        pass

    def finish(self, task: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichBar:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=sys.stderr, force_terminal=True), transient=False,
        )
        self._progress.start()

    def add(self, label: str, total: int) -> int:
        return int(self._progress.add_task(label, total=max(1, total)))

    def advance(self, task: int, steps: int = 1) -> None:
        self._progress.advance(task, steps)  # type: ignore[arg-type]

    def finish(self, task: int) -> None:
        found = [t for t in self._progress.tasks if t.id == task]
        if found and found[0].total is not None:
            self._progress.update(task, completed=found[0].total)  # type: ignore[arg-type]

    def close(self) -> None:
        self._progress.stop()


class TqdmBar:
    def __init__(self) -> None:
        self._bars: dict[int, Any] = {}

    def add(self, label: str, total: int) -> int:
        from tqdm import tqdm

        task = len(self._bars)
        self._bars[task] = tqdm(total=max(1, total), desc=label, position=task, file=sys.stderr,
                                leave=True, dynamic_ncols=True)
        return task

    def advance(self, task: int, steps: int = 1) -> None:
        self._bars[task].update(steps)

    def finish(self, task: int) -> None:
        bar = self._bars[task]
        bar.update(bar.total - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def wanted(stream: Any = None) -> bool:
    """Whether bars should be drawn: IIPY_PROGRESS, else whether stderr is a terminal."""
    forced = os.environ.get("IIPY_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def open_bar(enabled: bool | None = None) -> Bar:
    """A rich bar, else a tqdm bar, else :class:`Quiet`."""
    if not (wanted() if enabled is None else enabled):
        return Quiet()
    try:
        return RichBar()
    except ImportError:
        pass
    try:
        import tqdm  # noqa: F401

        return TqdmBar()
    except ImportError:
        return Quiet()
