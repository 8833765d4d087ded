"""The ``iipy`` command.

``iipy``                       FastCGI on the socket passed as fd 0 (lighttpd, mod_fcgid)
``iipy --bind HOST:PORT``      FastCGI on a socket of its own (or ``--bind /path.sock``)
``iipy --http HOST:PORT``      plain HTTP, for a standalone start
``iipy demo [--http …]``       generate a demo image and serve it over HTTP
``iipy convert SRC DST``       make a tiled pyramidal TIFF (or JPEG 2000) iipy serves fast
``iipy check FILE…``           whether and how well iipy serves each file
``iipy static SRC OUTDIR``     a static IIIF level 0 / DeepZoom / Zoomify tile tree
``iipy config NAME``           print a shipped configuration (apache, lighttpd, nginx,
                               systemd, systemd-socket, environment, logrotate)

Configuration comes from iipsrv's environment variables, read once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from . import __version__
from .errors import ConfigError, IIPyError
from .settings import Settings

log = logging.getLogger("iipy")
#: ``iipy NAME …`` runs iipy/tools/<module>.main; anything else is the server's command line
SUBCOMMANDS = {"demo": "demo", "convert": "convert", "check": "check", "static": "static"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iipy",
        description="IIPImage-compatible image server (FastCGI or HTTP). "
        "Configured with iipsrv's environment variables.",
        epilog="Other commands: iipy demo | convert | check | static (each with --help), "
        "iipy config NAME.",
    )
    parser.add_argument("--bind", metavar="ADDRESS", help="FastCGI on HOST:PORT or a UNIX path")
    parser.add_argument("--http", metavar="HOST:PORT", help="serve plain HTTP instead")
    parser.add_argument("--backlog", type=int, default=2048, help="listen backlog (2048)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default: cores when binding, 1 when spawned on fd 0)",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="read settings from this NAME=value file too (e.g. /etc/default/iipy), "
        "again on SIGHUP, which then replaces the workers",
    )
    parser.add_argument("--version", action="version", version=f"iipy {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "config":
        from .configs import main as config_main

        return config_main(argv[1:])
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        tool = importlib.import_module(f".tools.{SUBCOMMANDS[argv[0]]}", __package__)
        return int(tool.main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(args.env_file or "")
    except ConfigError as exc:
        return config_error(exc)
    from .serve import logsetup, server
    from .serve.app import create_app

    logsetup.configure(settings, terminal=bool(args.http))
    if args.bind and args.http:
        return server.fail("use --bind (FastCGI) or --http, not both")
    if args.processes is not None and args.processes < 1:
        return server.fail("--processes must be at least 1")
    try:
        if args.bind or args.http:
            sock = server.bind_socket(args.bind or args.http, args.backlog)
            processes = args.processes or os.cpu_count() or 1
        else:
            fd0 = server.socket_from_fd0()
            if fd0 is None:
                return server.fail(
                    "no FastCGI listening socket on standard input; "
                    "start iipy from a web server, or use --bind HOST:PORT or --http HOST:PORT"
                )
            sock, processes = fd0, args.processes or 1
    except (OSError, ValueError) as exc:
        return server.fail(f"cannot listen: {exc}")
    from .serve import metrics

    pool = bool(args.bind or args.http) or processes > 1
    settings = metrics.usable(settings, pool)
    metrics.prepare(settings, pool)
    try:
        app = create_app(settings)  # loads WATERMARK, which may be bad
    except ConfigError as exc:
        sock.close()
        return config_error(exc)
    # one line a process: a web server may start many
    log.info("iipy %s starting: %s, %d process(es); settings: %s", __version__,
             f"HTTP on {args.http}" if args.http else f"FastCGI on {args.bind or 'fd 0'}",
             processes, ", ".join(settings.changes()) or "iipsrv's defaults")
    for line in settings.summary():
        log.debug("setting %s", line)
    warn_missing_extension()
    serve = server.serve_http if args.http else server.serve_fastcgi

    def reload() -> Callable[[], None] | None:
        """SIGHUP in the pool: settings read again, new workers (None: keep the old)."""
        try:
            fresh = metrics.usable(Settings.load(args.env_file or ""), pool)
            logsetup.configure(fresh, terminal=bool(args.http))
            fresh_app = create_app(fresh)
        except IIPyError as exc:
            log.error("reload refused (%s); the running workers go on", exc.message)
            return None
        log.info("reload: %d new worker(s); settings: %s", processes,
                 ", ".join(fresh.changes()) or "iipsrv's defaults")
        return lambda: serve(fresh_app, sock)

    try:
        return server.run_pool(lambda: serve(app, sock), processes, reload=reload,
                               on_restart=metrics.worker_restarted, on_exit=metrics.worker_exited)
    finally:
        metrics.cleanup()


def warn_missing_extension() -> None:
    """The C part of watermarked JPEG tiles is optional; say so when it is missing."""
    from .jpeg import markjpeg

    if not markjpeg.available():
        log.warning(
            "the C extension iipy.jpeg._dctsplice is not built (no C compiler or Python "
            "headers at install time): watermarked JPEG tiles are decoded and re-encoded "
            "whole, which is slower; reinstall with gcc and python3-dev to build it"
        )


def config_error(exc: ConfigError) -> int:
    """One line naming the variable, no traceback; exit status 2."""
    sys.stderr.write(f"iipy: configuration error: {exc.message}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
