"""LOGFILE and VERBOSITY, as iipsrv reads them.

VERBOSITY 0 logs nothing; 1 one start-up summary line, warnings and errors; 2
also one access line per request (serve/accesslog.py); 3 and up everything.
LOGFILE is a path (appended to) or the word ``syslog``.  When the file cannot
be opened we say why on standard error and log there instead (iipsrv silently
logs nowhere), which a web server collects.  ``iipy --http`` started by hand
logs to the terminal unless LOGFILE is set.

Rotation: the file is reopened on SIGUSR1 (and SIGHUP), and also as soon as a
line is written after it was moved or deleted (``WatchedFileHandler``), so
``logrotate`` works without ``copytruncate`` even for processes a web server
started, whose process ids logrotate does not know.
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
    if verbosity <= 2:
        return logging.INFO
    return logging.DEBUG


def configure(settings: Settings, terminal: bool = False) -> None:
    """Send iipy's logs where the settings say; ``terminal``: a start by hand (--http),
    which logs to standard error unless LOGFILE was given."""
    root = logging.getLogger("iipy")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = False
    root.setLevel(level_for(settings.verbosity))
    if settings.verbosity <= 0:
        root.addHandler(logging.NullHandler())
        return
    handler: logging.Handler
    if terminal and not settings.logfile_set:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    elif settings.logfile == "syslog":
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
            handler.setFormatter(logging.Formatter("iipy[%(process)d]: %(message)s"))
        except OSError as exc:
            sys.stderr.write(f"iipy: cannot log to syslog ({exc.strerror}); "
                             "logging to standard error\n")
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(FORMAT))
    else:
        try:
            handler = logging.handlers.WatchedFileHandler(settings.logfile)
        except OSError as exc:
            sys.stderr.write(
                f"iipy: cannot write LOGFILE {settings.logfile}: {exc.strerror or exc}; "
                "logging to standard error (create it writable by this server's user, "
                "or set LOGFILE)\n"
            )
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    access = logging.getLogger("iipy.access")
    if settings.verbosity == 1:
        # per-request lines would be noise; keep them for >= 2
        logging.getLogger("iipy.protocols").setLevel(logging.WARNING)
        logging.getLogger("iipy.serve.app").setLevel(logging.WARNING)
        access.setLevel(logging.WARNING)
    else:
        for name in ("iipy.protocols", "iipy.serve.app", "iipy.access"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def reopen() -> None:
    """Reopen the log file (after logrotate moved it): SIGUSR1, SIGHUP."""
    for handler in logging.getLogger("iipy").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                stream, handler.stream = handler.stream, None  # type: ignore[assignment]
                if stream is not None:
                    stream.close()
                handler.stream = handler._open()
                if isinstance(handler, logging.handlers.WatchedFileHandler):
                    handler._statstream()
            except OSError as exc:
                sys.stderr.write(f"iipy: cannot reopen LOGFILE {handler.baseFilename}: "
                                 f"{exc.strerror or exc}\n")
            finally:
                handler.release()
