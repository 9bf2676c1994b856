"""Resources of the code location, chosen by the settings; secrets only through ``dg.EnvVar``."""

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject

from s3_sharing.platform import crypto
from s3_sharing.platform.notify import Notifier
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.warehouse import BigQueryWarehouse, DuckDBWarehouse
from s3_sharing.transform.dbt_assets import dbt_cli

PASSPHRASE_VARIABLE = "S3_SHARING_SIGNING_KEY_PASSPHRASE"


class PlatformKeys(dg.ConfigurableResource):
    """The platform's signing key (secret) and audit key (public), read when a run uses them."""

    signing_key_file: str
    signing_key_passphrase: str | None = None
    audit_key_file: str
    audit_secret_key_file: str | None = None

    def signing_key(self) -> tuple[Any, Any]:
        """(signer, public certificate) of the platform's signing key."""
        armor = _read(self.signing_key_file, "platform signing key")
        return crypto.load_signer(armor, self.signing_key_passphrase)

    def audit_cert(self) -> Any:
        return crypto.load_cert(_read(self.audit_key_file, "audit key"), "audit key")

    def audit_decryptor(self) -> Any | None:
        """Opens archived files for the tenant isolation check; None when not configured."""
        if self.audit_secret_key_file is None:
            return None
        return crypto.load_decryptor(
            _read(self.audit_secret_key_file, "audit secret key"), "audit secret key"
        )


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        raise crypto.KeyProblem(f"{what}: {path} cannot be read") from None


def optional_env(variable: str) -> dg.EnvVar | None:
    """The variable itself when set, resolved by Dagster at run time, so its value never enters
    config or the UI."""
    return dg.EnvVar(variable) if os.environ.get(variable) else None


def warehouse_resource(settings: Settings) -> DuckDBWarehouse | BigQueryWarehouse:
    if settings.dbt_target == "prod":
        return BigQueryWarehouse(
            project=dg.EnvVar("S3_SHARING_BQ_PROJECT"),
            location=dg.EnvVar("S3_SHARING_BQ_LOCATION"),
        )
    return DuckDBWarehouse(path=str(settings.duckdb_path))


def build_resources(settings: Settings, project: DbtProject) -> dict[str, object]:
    return {
        "dbt": dbt_cli(project),
        "warehouse": warehouse_resource(settings),
        "archive": GcsArchive(bucket=settings.archive_bucket),
        "s3": S3Buckets(),
        "keys": PlatformKeys(
            signing_key_file=str(settings.signing_key_file),
            signing_key_passphrase=optional_env(PASSPHRASE_VARIABLE),
            audit_key_file=str(settings.audit_key_file),
            audit_secret_key_file=str(settings.audit_secret_key_file)
            if settings.audit_secret_key_file
            else None,
        ),
        "notifier": Notifier(
            slack_token=optional_env("S3_SHARING_SLACK_TOKEN"),
            slack_channel=os.environ.get("S3_SHARING_SLACK_CHANNEL", "#data-sharing-alerts"),
            webhook_url=optional_env("S3_SHARING_ALERT_WEBHOOK_URL"),
        ),
    }
