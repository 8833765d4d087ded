"""LOGFILE and VERBOSITY, as iipsrv reads them.

VERBOSITY 0 logs nothing; 1 the start-up banner, settings and errors; 2 one
line per request; 3 and up everything.  LOGFILE is a path (appended to) or
the word ``syslog``.  When the file cannot be opened we log to standard error
instead (iipsrv silently logs nowhere), which a web server collects.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

from ..settings import Settings

FORMAT = "%(asctime)s iipy[%(process)d] %(levelname)s %(name)s: %(message)s"


def level_for(verbosity: int) -> int:
    if verbosity <= 0:
        return logging.CRITICAL + 1
    if verbosity == 1:
        return logging.INFO
    return logging.DEBUG


def configure(settings: Settings) -> None:
    root = logging.getLogger("iipy")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = False
    root.setLevel(level_for(settings.verbosity))
    if settings.verbosity <= 0:
        root.addHandler(logging.NullHandler())
        return
    handler: logging.Handler
    if settings.logfile == "syslog":
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
            handler.setFormatter(logging.Formatter("iipy[%(process)d]: %(message)s"))
        except OSError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(FORMAT))
    else:
        try:
            handler = logging.FileHandler(settings.logfile)
        except OSError:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    # a request line at verbosity 1 would be noise; keep per-request INFO for >= 2
    if settings.verbosity == 1:
        logging.getLogger("iipy.protocols").setLevel(logging.WARNING)
        logging.getLogger("iipy.serve.app").setLevel(logging.WARNING)
