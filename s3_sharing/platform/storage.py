"""Object storage: the GCS audit archive, and other organisations' S3 buckets through an assumed role.

A ``Bucket`` reads and writes one prefix of one bucket; it knows nothing of who the owner is to
the platform (a business we deliver to, a customer we import from). Both services are reached
through the standard environment (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, credentials):
there is no emulator-specific code path here.
"""

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import PrivateAttr

MiB = 1024 * 1024
_SESSION_LOCK = threading.Lock()
AWS_RETRIES = Config(retries={"mode": "standard", "max_attempts": 10})
"""Standard mode: throttling (503 SlowDown) and transient errors are retried with backoff and jitter."""


class StorageError(RuntimeError):
    """A bucket refused or failed a request; the message says whose bucket, what and why."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code
        """The AWS error code (``AccessDenied``, ``NoSuchBucket``, ``KMS.NotFoundException``...)."""


def denied(error: StorageError) -> bool:
    return error.code in ("AccessDenied", "403")


@dataclass(frozen=True)
class Step:
    """One step of a connection check ("Connect"), in plain words."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def connect_step(
    open_bucket: Callable[[], "Bucket"], name: str, refused: str, connected: str
) -> tuple["Bucket | None", Step]:
    """A connection check's first step: open the bucket; ``refused`` says why when it is denied."""
    try:
        bucket = open_bucket()
    except StorageError as error:
        return None, Step(name, False, refused if denied(error) else str(error))
    return bucket, Step(name, True, connected)


class GcsArchive(dg.ConfigurableResource):
    """The platform's audit archive: a copy of every file and manifest, per business."""

    bucket: str
    project: str | None = None
    chunk_size_mb: int = 8

    _client: Any = PrivateAttr(default=None)

    def _bucket(self) -> Any:
        if self._client is None:
            from google.cloud import storage  # imported on first use: a process that never archives

            self._client = storage.Client(project=self.project)  # (an import, the sensors) skips it
        return self._client.bucket(self.bucket)

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"

    def upload_file(self, name: str, path: Path, content_type: str = "application/pgp-encrypted") -> str:
        blob = self._bucket().blob(name, chunk_size=self.chunk_size_mb * MiB)
        blob.upload_from_filename(str(path), content_type=content_type)
        return self.uri(name)

    def upload_bytes(self, name: str, data: bytes, content_type: str) -> str:
        self._bucket().blob(name).upload_from_string(data, content_type=content_type)
        return self.uri(name)

    def read(self, name: str) -> bytes | None:
        from google.api_core.exceptions import NotFound

        try:
            return self._bucket().blob(name).download_as_bytes()
        except NotFound:
            return None

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        with suppress(NotFound):
            self._bucket().blob(name).delete()

    def listing(self, prefix: str) -> dict[str, tuple[int, str]]:
        """Every archived object under ``prefix``: (size, MD5 base64 computed by GCS)."""
        return {
            blob.name: (int(blob.size), blob.md5_hash)
            for blob in self._bucket().client.list_blobs(self.bucket, prefix=prefix)
        }


@dataclass(frozen=True)
class BucketLocation:
    """One prefix of one bucket, and how objects written there are encrypted at rest."""

    bucket: str
    region: str
    prefix: str = ""
    sse_mode: str = "AES256"
    kms_key_arn: str | None = None


@dataclass(frozen=True)
class ObjectVersion:
    """One version of an object: what a ledger records to know it saw exactly this content."""

    key: str
    version_id: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class AssumedRole:
    """The role the platform assumes to reach a bucket of another account."""

    role_arn: str
    external_id: str | None = None


@dataclass
class Bucket:
    """Reads and writes one prefix with the credentials of the role assumed for it.

    Keys are relative to the prefix. ``owner`` names whose bucket it is in every error.
    """

    owner: str
    location: BucketLocation
    client: Any
    transfer: TransferConfig
    open_kms: Callable[[], Any] | None = None
    """Opens KMS with the same credentials, to resolve a key named by its alias (onboarding only)."""

    def uri(self, key: str) -> str:
        return f"s3://{self.location.bucket}/{self.location.prefix}{key}"

    def _extra_args(self, content_type: str) -> dict[str, str]:
        extra = {
            "ACL": "bucket-owner-full-control",
            "ServerSideEncryption": self.location.sse_mode,
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",  # S3 verifies it on arrival and reports it on HEAD
        }
        if self.location.kms_key_arn:
            extra["SSEKMSKeyId"] = self.location.kms_key_arn
        return extra

    def upload_file(self, key: str, path: Path, content_type: str = "application/pgp-encrypted") -> str:
        """Multipart above the transfer threshold (boto3's transfer manager)."""
        full_key = self.location.prefix + key
        with _explained(self.owner, f"writing {self.uri(key)}"):
            if path.stat().st_size < self.transfer.multipart_threshold:
                with path.open("rb") as body:  # one request: the transfer manager's threads cost more
                    self.client.put_object(
                        Bucket=self.location.bucket,
                        Key=full_key,
                        Body=body,
                        **self._extra_args(content_type),
                    )
            else:
                self.client.upload_file(
                    str(path),
                    self.location.bucket,
                    full_key,
                    ExtraArgs=self._extra_args(content_type),
                    Config=self.transfer,
                )
        return self.uri(key)

    def upload_bytes(self, key: str, data: bytes, content_type: str) -> str:
        with _explained(self.owner, f"writing {self.uri(key)}"):
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=self.location.prefix + key,
                Body=data,
                **self._extra_args(content_type),
            )
        return self.uri(key)

    def delete(self, key: str) -> None:
        with _explained(self.owner, f"deleting {self.uri(key)}"):
            self.client.delete_object(Bucket=self.location.bucket, Key=self.location.prefix + key)

    def read(self, key: str) -> bytes | None:
        """An object's content; None when it is not there."""
        with _explained(self.owner, f"reading {self.uri(key)}"):
            try:
                response = self.client.get_object(Bucket=self.location.bucket, Key=self.location.prefix + key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            return response["Body"].read()

    def read_start(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of an object (one ranged GET)."""
        with _explained(self.owner, f"reading {self.uri(key)}"):
            response = self.client.get_object(
                Bucket=self.location.bucket, Key=self.location.prefix + key, Range=f"bytes=0-{length - 1}"
            )
            return response["Body"].read()

    def tag(self, key: str, tags: dict[str, str]) -> None:
        """Add ``tags`` to an object's tag set, keeping the tags it has."""
        full_key = self.location.prefix + key
        with _explained(self.owner, f"tagging {self.uri(key)}"):
            kept = self.client.get_object_tagging(Bucket=self.location.bucket, Key=full_key)["TagSet"]
            merged = {t["Key"]: t["Value"] for t in kept} | tags
            self.client.put_object_tagging(
                Bucket=self.location.bucket,
                Key=full_key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in merged.items()]},
            )

    def objects(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        """Every object under the prefix (and ``prefix`` below it), keys relative to the bucket's
        prefix, with its size and ETag; paginated listing."""
        found: dict[str, tuple[int, str]] = {}
        with _explained(self.owner, f"listing {self.uri(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self.location.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self.location.prefix)
                    found[key] = (int(item["Size"]), item["ETag"].strip('"'))
        return found

    def sizes(self) -> dict[str, int]:
        """Every object under the prefix (keys relative to it) and its size, by listing."""
        return {key: size for key, (size, _) in self.objects().items()}

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        """Streamed to ``path``, never whole in memory: one GET below the multipart threshold (a
        known ``size``), parallel ranges above it (boto3's transfer manager)."""
        with _explained(self.owner, f"reading {self.uri(key)}"):
            if size is not None and size < self.transfer.multipart_threshold:
                body = self.client.get_object(Bucket=self.location.bucket, Key=self.location.prefix + key)[
                    "Body"
                ]
                with path.open("wb") as target:
                    for chunk in body.iter_chunks(MiB):
                        target.write(chunk)
                return
            self.client.download_file(
                self.location.bucket, self.location.prefix + key, str(path), Config=self.transfer
            )

    def versions(self, prefix: str = "") -> list[ObjectVersion]:
        """The current version of every object under the prefix (not those deleted), paginated."""
        found = []
        with _explained(self.owner, f"listing {self.uri(prefix)}"):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.location.bucket, Prefix=self.location.prefix + prefix
            )
            for page in pages:
                for item in page.get("Versions", []):
                    if item["IsLatest"]:
                        key = item["Key"].removeprefix(self.location.prefix)
                        version = item.get("VersionId") or "null"
                        etag, size = item["ETag"].strip('"'), int(item["Size"])
                        found.append(ObjectVersion(key, version, etag, size, item["LastModified"]))
        return sorted(found, key=lambda v: v.key)

    def download_version(self, version: ObjectVersion, path: Path) -> None:
        """That version of the object, streamed to ``path`` (parallel ranges when large)."""
        extra = {} if version.version_id == "null" else {"VersionId": version.version_id}
        with _explained(self.owner, f"reading {self.uri(version.key)} version {version.version_id}"):
            self.client.download_file(
                self.location.bucket,
                self.location.prefix + version.key,
                str(path),
                ExtraArgs=extra,
                Config=self.transfer,
            )

    def move(self, version: ObjectVersion, new_key: str) -> str:
        """Copy that version to ``new_key`` (same encryption), then delete the key: in a versioned
        bucket the version itself stays, behind a delete marker."""
        source = {"Bucket": self.location.bucket, "Key": self.location.prefix + version.key}
        if version.version_id != "null":
            source["VersionId"] = version.version_id
        extra = {"ServerSideEncryption": self.location.sse_mode}
        if self.location.kms_key_arn:
            extra["SSEKMSKeyId"] = self.location.kms_key_arn
        with _explained(self.owner, f"moving {self.uri(version.key)} to {self.uri(new_key)}"):
            self.client.copy(source, self.location.bucket, self.location.prefix + new_key, ExtraArgs=extra)
            self.client.delete_object(Bucket=self.location.bucket, Key=self.location.prefix + version.key)
        return self.uri(new_key)

    def encryption(self, key: str) -> tuple[str | None, str | None]:
        """How S3 encrypted an object at rest: (``ServerSideEncryption``, ``SSEKMSKeyId``)."""
        with _explained(self.owner, f"checking {self.uri(key)}"):
            head = self.client.head_object(Bucket=self.location.bucket, Key=self.location.prefix + key)
        return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")

    def kms_key_arn(self, key_id: str) -> str:
        """The ARN of the KMS key that ``key_id`` (a key or alias ARN, an id) names."""
        with _explained(self.owner, f"describing KMS key {key_id}"):
            if self.open_kms is None:
                raise StorageError(f"{self.owner}: no KMS client to describe key {key_id}")
            return str(self.open_kms().describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])

    def sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) S3 computed on arrival; None for multipart (composite) checksums."""
        with _explained(self.owner, f"checking {self.uri(key)}"):
            head = self.client.head_object(
                Bucket=self.location.bucket, Key=self.location.prefix + key, ChecksumMode="ENABLED"
            )
        value = head.get("ChecksumSHA256")
        return None if value is None or "-" in value else base64.b64decode(value).hex()


class S3Buckets(dg.ConfigurableResource):
    """Opens another account's bucket by assuming the role it grants us, when a run starts.

    The platform's own credentials come from the standard AWS chain (environment, instance or
    pod role); they are only ever used for ``sts:AssumeRole``.
    """

    session_name_prefix: str = "s3-sharing"
    multipart_threshold_mb: int = 64
    multipart_chunk_mb: int = 8
    max_upload_concurrency: int = 2

    _session: Any = PrivateAttr(default=None)

    def open(self, location: BucketLocation, role: AssumedRole, *, owner: str, session_id: str) -> Bucket:
        """``owner`` names the bucket's owner in errors (``business 'acme'``); ``session_id`` (letters,
        digits, ``_``) goes into the role session name, which the owner sees in CloudTrail."""
        sts = self._client("sts", location.region)
        request = {
            "RoleArn": role.role_arn,
            "RoleSessionName": f"{self.session_name_prefix}-{session_id}"[:64],
            "DurationSeconds": 3600,
        }
        if role.external_id:
            request["ExternalId"] = role.external_id
        with _explained(owner, f"assuming {role.role_arn}"):
            credentials = sts.assume_role(**request)["Credentials"]
        return self._bucket(
            location,
            owner,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    def own(self, location: BucketLocation, *, owner: str) -> Bucket:
        """A bucket of the platform's own account, with its own credentials (the landing bucket)."""
        return self._bucket(location, owner)

    def open_with_keys(
        self, location: BucketLocation, access_key_id: str, secret_access_key: str, *, owner: str
    ) -> Bucket:
        """A bucket whose owner gave us an access key pair instead of a role (a role is preferred:
        nothing long-lived to leak or rotate)."""
        return self._bucket(
            location,
            owner,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )

    def _bucket(self, location: BucketLocation, owner: str, **credentials: str) -> Bucket:
        transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold_mb * MiB,
            multipart_chunksize=self.multipart_chunk_mb * MiB,
            max_concurrency=self.max_upload_concurrency,
        )
        return Bucket(
            owner,
            location,
            self._client("s3", location.region, **credentials),
            transfer,
            lambda: self._client("kms", location.region, **credentials),
        )

    def _client(self, service: str, region: str | None, **credentials: str) -> Any:
        """A client of this resource's one boto3 session. A resource lives for a run, so the
        platform's credential chain is read when the run starts (rotated credentials are picked up by
        long-lived processes), and the service models are parsed once per run, not for every
        business (~0.1 s a client). boto3 sessions are not thread-safe: clients are made under a lock."""
        with _SESSION_LOCK:
            if self._session is None:
                self._session = boto3.session.Session()
            return self._session.client(service, region_name=region, config=AWS_RETRIES, **credentials)


@contextmanager
def _explained(owner: str, action: str) -> Iterator[None]:
    """AWS client errors become one line naming the owner, the action and the AWS error code."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Error")
        message = error.response.get("Error", {}).get("Message", "")
        raise StorageError(f"{owner}: {action}: {code}: {message}", code) from None
    except S3UploadFailedError as error:
        raise StorageError(f"{owner}: {action}: {error}") from None
