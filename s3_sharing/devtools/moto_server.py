"""moto's server, made as strict as S3 where the platform relies on it, and able to inject faults.

- Conditional writes are atomic. moto checks ``If-None-Match``/``If-Match`` and then writes, in a
  threaded server: two concurrent conditional PUTs could both pass the check, which S3 never
  allows. Here conditional requests run one at a time, so a test that relies on them tests S3's
  guarantee rather than a race of the stand-in.
- ``POST /_faults/slowdown?count=N`` makes the next N object PUTs answer 503 SlowDown, as S3 does
  under throttling (a test of the client's retries); ``GET`` says how many are left.

Run as ``python -m s3_sharing.devtools.moto_server -H 127.0.0.1 -p PORT``.
"""

import argparse
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class StrictS3:
    """WSGI middleware around moto's application."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.conditional = threading.Lock()
        self.faults = threading.Lock()
        self.slowdowns = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path == "/_faults/slowdown":
            with self.faults:
                if method == "POST":
                    self.slowdowns = int(parse_qs(environ.get("QUERY_STRING", ""))["count"][0])
                left = str(self.slowdowns).encode()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [left]
        if method == "PUT" and self._take_slowdown():
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [SLOW_DOWN]
        if method == "PUT" and ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ):
            with self.conditional:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)

    def _take_slowdown(self) -> bool:
        with self.faults:
            if self.slowdowns <= 0:
                return False
            self.slowdowns -= 1
            return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, StrictS3(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
