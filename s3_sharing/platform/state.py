"""The platform's own small state objects, in an S3 bucket of its own account: leases (one writer
at a time), chain heads and journals.

Every write that decides something is conditional: ``If-None-Match: *`` creates only what does not
exist yet, ``If-Match: <etag>`` replaces only what was read. S3 enforces both across processes and
hosts, so two writers never both believe they hold a lease or both advance a chain head.
"""

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import dagster as dg
from botocore.exceptions import ClientError
from pydantic import PrivateAttr

from s3_sharing.platform.storage import AWS_RETRIES, StorageError

_CONFLICT = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


@dataclass(frozen=True)
class Versioned:
    body: bytes
    etag: str


class StateStore(dg.ConfigurableResource):
    """Reads and conditionally writes small objects under ``prefix`` of the platform's state bucket,
    with the platform's own credentials (the standard AWS chain)."""

    bucket: str
    prefix: str = ""

    _client: Any = PrivateAttr(default=None)

    def _s3(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client("s3", config=AWS_RETRIES)
        return self._client

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def read(self, key: str) -> Versioned | None:
        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise StateError(f"reading {self.uri(key)}: {_code(error)}", _code(error)) from None
        return Versioned(response["Body"].read(), response["ETag"])

    def create(self, key: str, body: bytes) -> str | None:
        """Write ``key`` only if it does not exist: its ETag, or None when it already does."""
        return self._put(key, body, IfNoneMatch="*")

    def replace(self, key: str, body: bytes, etag: str) -> str | None:
        """Overwrite ``key`` only if it is still the version ``etag``: the new ETag, or None."""
        return self._put(key, body, IfMatch=etag)

    def write(self, key: str, body: bytes) -> None:
        """Unconditional (for objects only one lease holder writes)."""
        self._put(key, body)

    def _put(self, key: str, body: bytes, **condition: str) -> str | None:
        try:
            response = self._s3().put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=body,
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if condition and _code(error) in _CONFLICT | {"NoSuchKey"}:
                return None
            raise StateError(f"writing {self.uri(key)}: {_code(error)}", _code(error)) from None
        return response["ETag"]

    def delete(self, key: str) -> None:
        try:
            self._s3().delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as error:
            raise StateError(f"deleting {self.uri(key)}: {_code(error)}", _code(error)) from None

    def names(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            pages = (
                self._s3()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            )
            for page in pages:
                found += [item["Key"].removeprefix(self.prefix) for item in page.get("Contents", [])]
        except ClientError as error:
            raise StateError(f"listing {self.uri(prefix)}: {_code(error)}", _code(error)) from None
        return found


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Error"))


class StateError(StorageError):
    """The state bucket refused or failed a request; ``code`` says whether it is worth retrying."""


class LeaseBusy(RuntimeError):
    """Another writer holds the lease; nothing was written."""


class LeaseLost(RuntimeError):
    """The lease expired and another writer took it over: this writer must stop before committing."""


@dataclass
class Lease:
    """A held lease, renewed in the background until released. ``check()`` before committing."""

    store: StateStore
    key: str
    holder: dict[str, str]
    etag: str
    ttl: timedelta
    _lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.ttl.total_seconds() / 3):
            with self._lock:
                if self._stop.is_set():
                    return
                etag = self.store.replace(self.key, _lease_body(self.holder, self.ttl), self.etag)
                if etag is None:
                    self._lost.set()
                    return
                self.etag = etag

    def check(self) -> None:
        current = self.store.read(self.key)
        if (
            self._lost.is_set()
            or current is None
            or json.loads(current.body)["token"] != self.holder["token"]
        ):
            raise LeaseLost(f"the lease {self.store.uri(self.key)} was taken over; this run stops here")

    def release(self) -> None:
        with self._lock:
            self._stop.set()
            current = self.store.read(self.key)
            if current is not None and json.loads(current.body)["token"] == self.holder["token"]:
                self.store.delete(self.key)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lease_body(holder: dict[str, str], ttl: timedelta) -> bytes:
    expires = datetime.now(UTC) + ttl
    return json.dumps(holder | {"expires_at": expires.isoformat()}, sort_keys=True).encode()


def acquire(
    store: StateStore,
    key: str,
    run_id: str,
    *,
    ttl: timedelta,
    wait: timedelta,
    log: Callable[[str], None],
    what: str,
) -> Lease:
    """Hold ``key`` for ``run_id``; wait up to ``wait`` while another live holder has it (saying so
    once in ``log``), take over a lease whose holder stopped renewing it, else raise ``LeaseBusy``.
    ``what`` names what the lease protects in messages."""
    holder = {
        "token": uuid.uuid4().hex,
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }
    deadline = time.monotonic() + wait.total_seconds()
    announced = False
    while True:
        etag = store.create(key, _lease_body(holder, ttl))
        if etag is None and (current := store.read(key)) is not None:
            held = json.loads(current.body)
            if held["token"] == holder["token"]:  # our own create, retried after a lost response
                etag = current.etag
            elif datetime.fromisoformat(held["expires_at"]) < datetime.now(UTC):
                etag = store.replace(key, _lease_body(holder, ttl), current.etag)
                if etag is not None:
                    log(f"{what}: took over the lease of run {held['run_id']}, which stopped renewing it")
            elif time.monotonic() >= deadline:
                raise LeaseBusy(
                    f"{what}: run {held['run_id']} on {held['host']} holds the lease "
                    f"(until {held['expires_at']} unless renewed); waited {wait.total_seconds():.0f}s, "
                    "nothing was written"
                )
            elif not announced:
                log(f"{what}: waiting for run {held['run_id']} on {held['host']} to finish")
                announced = True
        if etag is not None:
            lease = Lease(store, key, holder, etag, ttl)
            threading.Thread(target=lease._renew_until_released, daemon=True).start()
            return lease
        time.sleep(0.5)
