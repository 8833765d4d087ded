"""The ``iipy`` command.

``iipy``                       FastCGI on the socket passed as fd 0 (lighttpd, mod_fcgid)
``iipy --bind HOST:PORT``      FastCGI on a socket of its own (or ``--bind /path.sock``)
``iipy --http HOST:PORT``      plain HTTP, for a standalone start
``iipy demo [--http …]``       generate a demo image and serve it over HTTP

Configuration comes from iipsrv's environment variables, read once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .errors import ConfigError
from .settings import Settings

log = logging.getLogger("iipy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iipy",
        description="IIPImage-compatible image server (FastCGI or HTTP). "
        "Configured with iipsrv's environment variables.",
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
    parser.add_argument("--version", action="version", version=f"iipy {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "demo":
        from .tools.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_environ()
    except ConfigError as exc:
        return config_error(exc)
    from .serve import logsetup, server
    from .serve.app import create_app

    logsetup.configure(settings)
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
    try:
        app = create_app(settings)  # loads WATERMARK, which may be bad
    except ConfigError as exc:
        sock.close()
        return config_error(exc)
    log.info("iipy %s starting: %s, %d process(es)", __version__,
             f"HTTP on {args.http}" if args.http else f"FastCGI on {args.bind or 'fd 0'}",
             processes)
    for line in settings.summary():
        log.info("setting %s", line)
    serve = server.serve_http if args.http else server.serve_fastcgi
    return server.run_pool(lambda: serve(app, sock), processes)


def config_error(exc: ConfigError) -> int:
    """One line naming the variable, no traceback; exit status 2."""
    sys.stderr.write(f"iipy: configuration error: {exc.message}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
