"""Call the WSGI application in-process, as a web server would."""

from __future__ import annotations

import io
from dataclasses import dataclass

from iipy.serve.app import create_app
from iipy.settings import Settings


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def make_app(**env: str):
    env.setdefault("LOGFILE", "/dev/null")
    return create_app(Settings.from_environ(env))


def call(app, query: str = "", method: str = "GET", headers: dict | None = None,
         uri: str | None = None, body: bytes = b"", environ: dict | None = None) -> Result:
    env = {
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "REQUEST_URI": uri if uri is not None else "/fcgi-bin/iipsrv.fcgi?" + query,
        "HTTP_HOST": "localhost",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    env.update(environ or {})
    captured: dict = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = response_headers

    chunks = app(env, start_response)
    return Result(captured["status"], captured["headers"], b"".join(chunks))
