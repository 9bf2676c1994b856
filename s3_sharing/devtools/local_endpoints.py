"""Local stand-ins for AWS (moto's server: S3, STS, IAM, KMS) and GCS (gcp-storage-emulator),
each wrapped so it can inject faults (``devtools/moto_server.py``, ``devtools/gcs_server.py``).

Both run as real HTTP servers on 127.0.0.1. The product reaches them only through the standard
``AWS_ENDPOINT_URL`` and ``STORAGE_EMULATOR_HOST`` variables that ``LocalEndpoints.environment``
returns. Once provisioning is done, moto enforces IAM: the platform's own user may only assume
the delivery roles, so every object in a business bucket is provably written by the assumed role.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg

from s3_sharing.devtools.ports import free_port
from s3_sharing.devtools.postgres import LocalPostgres
from s3_sharing.inbound.database import migrate_inbound
from s3_sharing.inbound.iam import import_role_policy
from s3_sharing.inbound.rewards.iam import fi_upload_policy, landing_statements
from s3_sharing.inbound.rewards.registry import FiRegistry
from s3_sharing.inbound.sources import ImportSource
from s3_sharing.outbound.iam import delivery_role_policy
from s3_sharing.outbound.registry import Business, Registry
from s3_sharing.platform.iam import platform_policy, role_trust_policy
from s3_sharing.platform.settings import LOCAL_DIR

LOCAL_ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
ARCHIVE_BUCKET = "s3-sharing-audit-archive"
STATE_BUCKET = "s3-sharing-state"
PLATFORM_USER = "s3-sharing-platform"
READER_USER = "business-reader"  # stands in for the businesses reading their own buckets
CUSTOMER_USER = "customer-etl"  # stands in for the customers' ETL writing files for us to import
ADMIN_KEYS = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}  # before IAM is enforced


def _wait_until_up(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was up")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError as error:
            if getattr(error, "code", None):  # an HTTP error status means the server answers
                return
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f}s")


@dataclass(frozen=True)
class BusinessBucket:
    """What the local AWS needs to stand in for one business's side: its bucket, and the delivery
    role we own for it (with its external id and SSE-KMS key)."""

    business_id: str
    bucket: str
    prefix: str
    role_name: str
    external_id: str | None = None
    kms_alias_arn: str | None = None

    @classmethod
    def of(cls, business: Business) -> BusinessBucket:
        """The business's side, as its registry entry describes it."""
        destination = business.destination
        return cls(
            business_id=business.id,
            bucket=destination.bucket,
            prefix=destination.prefix,
            role_name=destination.role_arn.rsplit("/", 1)[-1],
            external_id=destination.external_id,
            kms_alias_arn=destination.sse.kms_key_arn,
        )


@dataclass
class LocalEndpoints:
    """Start with ``start()`` (or as a context manager); ``stop()`` ends both servers."""

    moto_port: int = field(default_factory=free_port)
    gcs_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    platform_keys: dict[str, str] = field(default_factory=dict)
    reader_keys: dict[str, str] = field(default_factory=dict)
    customer_keys: dict[str, str] = field(default_factory=dict)
    pg_dsn: str | None = None
    """The private PostgreSQL started with them, if any."""
    import_keys: dict[str, str] = field(default_factory=dict)
    fi_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per FI: the access keys of its upload user (what AWS Transfer Family writes as)."""
    """Environment variables of the import sources that gave us a key pair instead of a role."""
    kms_key_arns: dict[str, str] = field(default_factory=dict)

    @property
    def aws_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def gcs_url(self) -> str:
        return f"http://127.0.0.1:{self.gcs_port}"

    def start(self) -> LocalEndpoints:
        moto = [
            sys.executable,
            "-m",
            "s3_sharing.devtools.moto_server",
            "-H",
            "127.0.0.1",
            "-p",
            str(self.moto_port),
        ]
        gcs = [sys.executable, "-m", "s3_sharing.devtools.gcs_server", "-H", "127.0.0.1"]
        gcs += ["-p", str(self.gcs_port)]
        for command in (moto, gcs):
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        _wait_until_up(f"{self.aws_url}/moto-api/", self.processes[0], "moto server")
        _wait_until_up(f"{self.gcs_url}/storage/v1/b", self.processes[1], "GCS emulator")
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> LocalEndpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def admin_client(self, service: str) -> Any:
        """A client for provisioning; refused by moto once IAM is enforced."""
        return boto3.client(service, endpoint_url=self.aws_url, region_name=REGION, **ADMIN_KEYS)

    def provision(
        self,
        businesses: Iterable[BusinessBucket],
        archive_bucket: str = ARCHIVE_BUCKET,
        state_bucket: str = STATE_BUCKET,
        import_sources: Iterable[ImportSource] = (),
        fi_registry: FiRegistry | None = None,
    ) -> None:
        """Create each business's bucket and delivery role, each import source's bucket and role (or
        user with a key pair), the landing bucket and each FI's upload user, the platform user, its
        state bucket and the archive."""
        iam, s3 = self.admin_client("iam"), self.admin_client("s3")
        iam.create_user(UserName=PLATFORM_USER)
        s3.create_bucket(Bucket=state_bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        platform_arn = f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{PLATFORM_USER}"
        role_arns = self._provision_imports(iam, s3, platform_arn, list(import_sources))
        if fi_registry is not None:
            self._provision_landing(iam, s3, fi_registry)
        for business in businesses:
            s3.create_bucket(Bucket=business.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            if business.kms_alias_arn:
                self._kms_key(business)
            role = iam.create_role(
                RoleName=business.role_name,
                AssumeRolePolicyDocument=json.dumps(role_trust_policy(platform_arn, business.external_id)),
            )
            iam.put_role_policy(
                RoleName=business.role_name,
                PolicyName="deliver",
                # exactly what `s3-sharing onboard` prints: the key named by its alias
                PolicyDocument=json.dumps(
                    delivery_role_policy(business.bucket, business.prefix, business.kms_alias_arn)
                ),
            )
            role_arns.append(role["Role"]["Arn"])
        iam.put_user_policy(
            UserName=PLATFORM_USER,
            PolicyName="assume-delivery-roles-and-keep-state",
            PolicyDocument=json.dumps(
                platform_policy(
                    role_arns, state_bucket, landing_statements(fi_registry) if fi_registry else None
                )
            ),
        )
        self.platform_keys = self._access_keys(iam, PLATFORM_USER)
        iam.create_user(UserName=READER_USER)
        iam.put_user_policy(
            UserName=READER_USER,
            PolicyName="read-business-buckets",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
                }
            ),
        )
        self.reader_keys = self._access_keys(iam, READER_USER)
        self._create_archive_bucket(archive_bucket)

    def _provision_imports(
        self, iam: Any, s3: Any, platform_arn: str, sources: list[ImportSource]
    ) -> list[str]:
        """Each source's bucket, and the role it grants us (or a user whose keys it gave us); the
        customers' ETL user that drops files into those buckets. The role ARNs to assume."""
        role_arns, buckets = [], sorted({source.connection.bucket for source in sources})
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for source in sources:
            connection, policy = source.connection, json.dumps(import_role_policy(source))
            if connection.role_arn:
                name = connection.role_arn.rsplit("/", 1)[-1]
                trust = role_trust_policy(platform_arn, connection.external_id)
                role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
                iam.put_role_policy(RoleName=name, PolicyName="import", PolicyDocument=policy)
                role_arns.append(role["Role"]["Arn"])
            else:
                user = f"import-{source.id}"
                iam.create_user(UserName=user)
                iam.put_user_policy(UserName=user, PolicyName="import", PolicyDocument=policy)
                keys = self._access_keys(iam, user)
                self.import_keys[str(connection.access_key_id_env)] = keys["AWS_ACCESS_KEY_ID"]
                self.import_keys[str(connection.secret_access_key_env)] = keys["AWS_SECRET_ACCESS_KEY"]
        if buckets:
            iam.create_user(UserName=CUSTOMER_USER)
            iam.put_user_policy(
                UserName=CUSTOMER_USER,
                PolicyName="own-import-buckets",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:*",  # the customer's own buckets
                                "Resource": [
                                    f"arn:aws:s3:::{b}{suffix}" for b in buckets for suffix in ("", "/*")
                                ],
                            }
                        ],
                    }
                ),
            )
            self.customer_keys = self._access_keys(iam, CUSTOMER_USER)
        return role_arns

    def _provision_landing(self, iam: Any, s3: Any, registry: FiRegistry) -> None:
        """The landing bucket, versioned and SSE-KMS by default as in production, and a user per FI
        with exactly the upload policy its Transfer Family role gets."""
        bucket = registry.landing.bucket
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        key = self.admin_client("kms").create_key(Description="s3_sharing landing bucket key")
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key["KeyMetadata"]["Arn"],
                        }
                    }
                ]
            },
        )
        for fi in registry.fis:
            user = f"sftp-{fi.id}"
            iam.create_user(UserName=user)
            policy = json.dumps(fi_upload_policy(registry, fi))
            iam.put_user_policy(UserName=user, PolicyName="upload", PolicyDocument=policy)
            self.fi_keys[fi.id] = self._access_keys(iam, user)

    def fi_client(self, fi_id: str) -> Any:
        """S3 as an FI's upload user sees the landing bucket (puts files, reads its error files)."""
        return self._client_of(self.fi_keys[fi_id])

    def customer_client(self) -> Any:
        """S3 as a customer's ETL sees its own bucket (drops files, reads our error files)."""
        return self._client_of(self.customer_keys)

    @staticmethod
    def _access_keys(iam: Any, user: str) -> dict[str, str]:
        keys = iam.create_access_key(UserName=user)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": keys["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]}

    def reader_client(self) -> Any:
        """S3 as a business sees its own bucket (read-only)."""
        return self._client_of(self.reader_keys)

    def _client_of(self, keys: dict[str, str]) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.aws_url,
            region_name=REGION,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        )

    def _kms_key(self, business: BusinessBucket) -> str:
        """A key under the alias the registry names (moto cannot create a key with a given id)."""
        alias = str(business.kms_alias_arn).split(":", 5)[-1]
        if not alias.startswith("alias/"):
            raise ValueError(f"business {business.business_id!r}: locally, kms_key_arn must be an alias ARN")
        kms = self.admin_client("kms")
        key = kms.create_key(Description=f"s3_sharing delivery key of {business.business_id}")
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyMetadata"]["KeyId"])
        self.kms_key_arns[business.business_id] = key["KeyMetadata"]["Arn"]
        return key["KeyMetadata"]["Arn"]

    def _create_archive_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.gcs_url}/storage/v1/b?project=local",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()

    def enforce_iam(self) -> None:
        """From now on moto authenticates every request and evaluates IAM policies."""
        request = urllib.request.Request(
            f"{self.aws_url}/moto-api/reset-auth",
            data=b"0",
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()

    def environment(self) -> dict[str, str]:
        """The standard variables that point boto3 and google-cloud-storage at these servers."""
        return {
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_DEFAULT_REGION": REGION,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            **self.platform_keys,
            **self.import_keys,
            **({"S3_SHARING_PG_DSN": self.pg_dsn} if self.pg_dsn else {}),
        }


def write_env_file(path: Path, environment: dict[str, str]) -> None:
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(environment.items())))


@contextmanager
def local_stack(
    registry: Registry,
    archive_bucket: str,
    state_bucket: str = STATE_BUCKET,
    import_sources: Iterable[ImportSource] = (),
    postgres: bool = False,
    fi_registry: FiRegistry | None = None,
) -> Iterator[LocalEndpoints]:
    """Local S3/STS/IAM/KMS and GCS with the registry's buckets and roles (and the import sources'),
    and with ``postgres`` a private, migrated PostgreSQL; the process environment points at them
    while the block runs."""
    saved = dict(os.environ)
    with LocalEndpoints() as endpoints, LocalPostgres(LOCAL_DIR) if postgres else nullcontext() as database:
        businesses = [BusinessBucket.of(b) for b in registry.businesses]
        endpoints.provision(businesses, archive_bucket, state_bucket, import_sources, fi_registry)
        endpoints.enforce_iam()
        if database is not None:
            endpoints.pg_dsn = database.dsn
            with psycopg.connect(database.dsn) as connection:
                migrate_inbound(connection)
        os.environ.update(endpoints.environment())
        try:
            yield endpoints
        finally:
            os.environ.clear()
            os.environ.update(saved)
