"""In-memory stand-ins for the GCS archive and S3 buckets, with the same public interface.

For the fast test tier: delivery and certification run against them in milliseconds. They are
faithful only to what the product relies on (keys, bytes, sizes, MD5 and SHA-256); the tests
against moto and the GCS emulator remain the truth for permissions, encryption and transport.
"""

import base64
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from s3_sharing.platform.state import Versioned
from s3_sharing.platform.storage import AssumedRole, BucketLocation, ObjectVersion

LANDED = datetime(2026, 1, 1, tzinfo=UTC)
"""When every in-memory object was last modified."""


@dataclass
class MemoryArchive:
    """The GCS audit archive: names to bytes."""

    bucket: str = "memory-archive"
    objects: dict[str, bytes] = field(default_factory=dict)

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def upload_file(self, name: str, path: Path, content_type: str = "application/pgp-encrypted") -> str:
        self.objects[name] = path.read_bytes()
        return self.uri(name)

    def upload_bytes(self, name: str, data: bytes, content_type: str) -> str:
        self.objects[name] = bytes(data)
        return self.uri(name)

    def read(self, name: str) -> bytes | None:
        return self.objects.get(name)

    def delete(self, name: str) -> None:
        self.objects.pop(name, None)

    def listing(self, prefix: str) -> dict[str, tuple[int, str]]:
        return {
            name: (len(body), base64.b64encode(hashlib.md5(body).digest()).decode())
            for name, body in self.objects.items()
            if name.startswith(prefix)
        }


@dataclass
class MemoryBucket:
    """One prefix of one S3 bucket; keys are relative to the prefix, as in ``Bucket``."""

    owner: str
    location: BucketLocation
    stored: dict[str, bytes]
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def uri(self, key: str) -> str:
        return f"s3://{self.location.bucket}/{self.location.prefix}{key}"

    def upload_file(self, key: str, path: Path, content_type: str = "application/pgp-encrypted") -> str:
        return self.upload_bytes(key, path.read_bytes(), content_type)

    def upload_bytes(self, key: str, data: bytes, content_type: str) -> str:
        self.stored[self.location.prefix + key] = bytes(data)
        return self.uri(key)

    def delete(self, key: str) -> None:
        self.stored.pop(self.location.prefix + key, None)

    def read(self, key: str) -> bytes | None:
        return self.stored.get(self.location.prefix + key)

    def objects(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        start = self.location.prefix + prefix
        return {
            k.removeprefix(self.location.prefix): (len(v), hashlib.md5(v).hexdigest())
            for k, v in self.stored.items()
            if k.startswith(start)
        }

    def sizes(self) -> dict[str, int]:
        return {key: size for key, (size, _) in self.objects().items()}

    def read_start(self, key: str, length: int) -> bytes:
        return self._existing(key)[:length]

    def tag(self, key: str, tags: dict[str, str]) -> None:
        self._existing(key)
        self.tags.setdefault(key, {}).update(tags)

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        path.write_bytes(self._existing(key))

    def _existing(self, key: str) -> bytes:
        body = self.read(key)
        if body is None:
            raise FileNotFoundError(self.uri(key))
        return body

    def versions(self, prefix: str = "") -> list[ObjectVersion]:
        """An unversioned bucket's view: each object is its only version, ``null``."""
        return [
            ObjectVersion(key, "null", etag, size, LANDED)
            for key, (size, etag) in sorted(self.objects(prefix).items())
        ]

    def download_version(self, version: ObjectVersion, path: Path) -> None:
        self.download_file(version.key, path)

    def move(self, version: ObjectVersion, new_key: str) -> str:
        self.upload_bytes(new_key, self._existing(version.key), "application/octet-stream")
        self.delete(version.key)
        return self.uri(new_key)

    def encryption(self, key: str) -> tuple[str | None, str | None]:
        return self.location.sse_mode, self.location.kms_key_arn

    def kms_key_arn(self, key_id: str) -> str:
        return key_id

    def sha256(self, key: str) -> str | None:
        body = self.read(key)
        return None if body is None else hashlib.sha256(body).hexdigest()


@dataclass
class MemoryBuckets:
    """Opens in-memory buckets; every bucket's objects live in ``buckets[name]``."""

    buckets: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def open(
        self, location: BucketLocation, role: AssumedRole, *, owner: str, session_id: str
    ) -> MemoryBucket:
        return MemoryBucket(owner, location, self.buckets.setdefault(location.bucket, {}))

    def open_with_keys(
        self, location: BucketLocation, access_key_id: str, secret_access_key: str, *, owner: str
    ) -> MemoryBucket:
        return MemoryBucket(owner, location, self.buckets.setdefault(location.bucket, {}))

    def own(self, location: BucketLocation, *, owner: str) -> MemoryBucket:
        return MemoryBucket(owner, location, self.buckets.setdefault(location.bucket, {}))


@dataclass
class MemoryState:
    """The platform's state bucket, with S3's conditional-write semantics (one process only)."""

    bucket: str = "memory-state"
    prefix: str = ""
    objects: dict[str, Versioned] = field(default_factory=dict)
    versions: Iterator[int] = field(default_factory=itertools.count)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def read(self, key: str) -> Versioned | None:
        return self.objects.get(key)

    def create(self, key: str, body: bytes) -> str | None:
        return None if key in self.objects else self._put(key, body)

    def replace(self, key: str, body: bytes, etag: str) -> str | None:
        current = self.objects.get(key)
        return None if current is None or current.etag != etag else self._put(key, body)

    def write(self, key: str, body: bytes) -> None:
        self._put(key, body)

    def _put(self, key: str, body: bytes) -> str:
        etag = f'"{next(self.versions)}"'
        self.objects[key] = Versioned(bytes(body), etag)
        return etag

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def names(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))
