"""gcp-storage-emulator, able to inject the faults GCS answers under load.

``POST /_faults/unavailable?count=N&status=503`` makes the next N uploads (``/upload/...``) answer
that status (429 or 5xx) with GCS's JSON error body, as Cloud Storage does when it throttles or
is briefly unavailable (a test of the client's retries); ``GET`` says how many are left. Everything
else is the emulator's own handler, in memory.

The emulator rewrites a JSON index of every object after each write (``.meta``, so that a server on
disk can restart); in memory nothing can restart, so ``InMemoryStorage`` keeps the index only as
the emulator's own dictionaries. Without this, each write costs time proportional to the number of
objects stored, and a per-user delivery of 10,000 users (20,000 objects) never finishes.

Run as ``python -m s3_sharing.devtools.gcs_server -H 127.0.0.1 -p PORT``.
"""

import argparse
import json
import threading
from functools import partial
from http import HTTPStatus, server
from urllib.parse import parse_qs, urlsplit

from gcp_storage_emulator.server import RequestHandler
from gcp_storage_emulator.storage import Storage

FAULTS_PATH = "/_faults/unavailable"


class Faults:
    """How many uploads are still to fail, and with which status."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.left = 0
        self.status = HTTPStatus.SERVICE_UNAVAILABLE

    def arm(self, count: int, status: int) -> None:
        with self.lock:
            self.left, self.status = count, HTTPStatus(status)

    def take(self) -> HTTPStatus | None:
        with self.lock:
            if self.left <= 0:
                return None
            self.left -= 1
            return self.status


class InMemoryStorage(Storage):
    """The emulator's storage in memory, without rewriting the whole index on every write."""

    def __init__(self) -> None:
        super().__init__(use_memory_fs=True)

    def _write_config_to_file(self) -> None:
        """The index lives in ``self.buckets``/``self.objects``; nothing would ever read a copy."""


class FaultyRequestHandler(RequestHandler):
    def __init__(self, faults: Faults, storage: Storage, *args: object, **kwargs: object) -> None:
        self.faults = faults
        super().__init__(storage, *args, **kwargs)

    def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status.value, status.phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault_control(self) -> bool:
        url = urlsplit(self.path)
        if url.path != FAULTS_PATH:
            return False
        if self.command == "POST":
            query = parse_qs(url.query)
            self.faults.arm(int(query["count"][0]), int(query.get("status", ["503"])[0]))
        self._answer(HTTPStatus.OK, str(self.faults.left).encode(), "text/plain")
        return True

    def _injected_fault(self) -> bool:
        if not self.path.startswith("/upload/"):
            return False
        status = self.faults.take()
        if status is None:
            return False
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)  # the request body is consumed, as a real server does
        error = {"error": {"code": status.value, "message": f"injected {status.phrase}"}}
        self._answer(status, json.dumps(error).encode(), "application/json")
        return True

    def do_GET(self) -> None:
        if not self._fault_control():
            super().do_GET()

    def do_POST(self) -> None:
        if not (self._fault_control() or self._injected_fault()):
            super().do_POST()

    def do_PUT(self) -> None:
        if not self._injected_fault():
            super().do_PUT()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    handler = partial(FaultyRequestHandler, Faults(), InMemoryStorage())
    server.HTTPServer((args.host, args.port), handler).serve_forever()


if __name__ == "__main__":
    main()
