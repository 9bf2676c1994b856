"""Resources of the code location, chosen by the settings; secrets only through ``dg.EnvVar``."""

from pathlib import Path
from typing import Any

import dagster as dg

from s3_sharing.platform import crypto
from s3_sharing.platform.gnupg import PinnedDecryptor
from s3_sharing.platform.notify import Notifier
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.settings import Settings, variable
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.warehouse import BigQueryWarehouse, DuckDBWarehouse


class PlatformKeys(dg.ConfigurableResource):
    """The platform's signing key (secret) and audit key (public), read when a run uses them."""

    signing_key_file: str
    signing_key_passphrase: str | None = None
    audit_key_file: str
    audit_secret_key_file: str | None = None
    inbound_key_file: str | None = None
    inbound_key_passphrase: str | None = None

    def signing_key(self) -> tuple[Any, Any]:
        """(signer, public certificate) of the platform's signing key."""
        armor = _read(self.signing_key_file, "platform signing key")
        return crypto.load_signer(armor, self.signing_key_passphrase)

    def audit_cert(self) -> Any:
        return crypto.load_cert(_read(self.audit_key_file, "audit key"), "audit key")

    def inbound_key(self) -> tuple[PinnedDecryptor, Any]:
        """(decryptor, public certificate) of our inbound key, which FIs encrypt their files to;
        checked to be usable now."""
        if self.inbound_key_file is None:
            raise crypto.KeyProblem("inbound key: not configured (S3_SHARING_INBOUND_KEY_FILE)")
        armor = _read(self.inbound_key_file, "inbound key")
        crypto.load_decryptor(armor, "inbound key", self.inbound_key_passphrase)
        return PinnedDecryptor(armor, self.inbound_key_passphrase), crypto.load_cert(armor, "inbound key")

    def audit_decryptor(self) -> Any | None:
        """Opens archived files for the tenant isolation check; None when not configured."""
        if self.audit_secret_key_file is None:
            return None
        return crypto.load_decryptor(
            _read(self.audit_secret_key_file, "audit secret key"), "audit secret key"
        )


class WorkDirectory(dg.ConfigurableResource):
    """Where runs keep plaintext while they work (``S3_SHARING_WORK_DIR``); see ``platform/workdir.py``."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


def command_platform_keys(settings: Settings) -> PlatformKeys:
    """The platform's keys for a command run outside Dagster (the passphrase read from the settings)."""
    passphrase, inbound = settings.signing_key_passphrase, settings.inbound_key_passphrase
    return PlatformKeys(
        signing_key_file=str(settings.signing_key_file),
        signing_key_passphrase=passphrase.get_secret_value() if passphrase else None,
        audit_key_file=str(settings.audit_key_file),
        inbound_key_file=str(settings.inbound_key_file),
        inbound_key_passphrase=inbound.get_secret_value() if inbound else None,
    )


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        raise crypto.KeyProblem(f"{what}: {path} cannot be read") from None


def secret(settings: Settings, field: str) -> dg.EnvVar | None:
    """A secret setting as ``dg.EnvVar`` (resolved by Dagster at run time, so its value never
    enters config or the UI), or None when it is not set."""
    return dg.EnvVar(variable(field)) if getattr(settings, field) is not None else None


def postgres_resource(settings: Settings) -> Postgres:
    return Postgres(dsn=settings.pg_dsn, password=secret(settings, "pg_password"))


def state_resource(settings: Settings) -> StateStore:
    return StateStore(bucket=settings.state_bucket)


def warehouse_resource(settings: Settings) -> DuckDBWarehouse | BigQueryWarehouse:
    if settings.dbt_target == "prod":
        return BigQueryWarehouse(project=str(settings.bq_project), location=settings.bq_location)
    return DuckDBWarehouse(path=str(settings.duckdb_path))


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources both locations use; each adds its own (outbound: the warehouse, the state
    bucket, dbt; inbound: PostgreSQL)."""
    return {
        "archive": GcsArchive(bucket=settings.archive_bucket),
        "s3": S3Buckets(),
        "keys": PlatformKeys(
            signing_key_file=str(settings.signing_key_file),
            signing_key_passphrase=secret(settings, "signing_key_passphrase"),
            audit_key_file=str(settings.audit_key_file),
            audit_secret_key_file=str(settings.audit_secret_key_file)
            if settings.audit_secret_key_file
            else None,
            inbound_key_file=str(settings.inbound_key_file),
            inbound_key_passphrase=secret(settings, "inbound_key_passphrase"),
        ),
        "workdir": WorkDirectory(root=str(settings.work_dir)),
        "notifier": Notifier(
            slack_token=secret(settings, "slack_token"),
            slack_channel=settings.slack_channel,
            webhook_url=secret(settings, "alert_webhook_url"),
        ),
    }
