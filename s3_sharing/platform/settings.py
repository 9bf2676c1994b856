"""Deployment settings, read from the environment when definitions load (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from s3_sharing.platform.time import HOURLY_KEY_FORMAT
from s3_sharing.platform.workdir import default_root

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
LOCAL_DIR = REPO_ROOT / ".local"
DBT_TARGETS = ("dev", "prod")
PREFIX = "S3_SHARING_"
SECRETS = frozenset(
    {"signing_key_passphrase", "inbound_key_passphrase", "slack_token", "alert_webhook_url", "pg_password"}
)
"""Read only to know whether they are set: resources take them through ``dg.EnvVar``, so their
values never enter run config, the UI or the logs."""


def variable(field: str) -> str:
    """The environment variable of a settings field: ``duckdb_path`` → ``S3_SHARING_DUCKDB_PATH``."""
    return PREFIX + field.upper()


class SettingsError(ValueError):
    """A setting from the environment is unusable; the message names the variable."""


class Settings(BaseModel):
    """Every setting of the platform. Each field ``name`` is read from ``S3_SHARING_<NAME>``; all
    are optional. The README's variable table lists exactly these (a test keeps them in step)."""

    model_config = ConfigDict(frozen=True)

    dbt_target: str = "dev"
    """``dev`` (embedded DuckDB, default) or ``prod`` (BigQuery)."""
    dbt_target_path: Path | None = None
    """Where dbt writes its manifest (absolute); default ``dbt_project/target/<target>``. Set it where
    the project directory is read-only, or to give concurrent processes their own."""
    duckdb_path: Path = LOCAL_DIR / "warehouse.duckdb"
    """Absolute path of the DuckDB warehouse file (dev target)."""
    partition_start: str = "2026-01-01-00:00"
    """First hourly partition, ``YYYY-MM-DD-HH:MM`` UTC."""
    registry: Path = REPO_ROOT / "registry" / "demo.yaml"
    """The business registry YAML file."""
    import_sources: Path = REPO_ROOT / "registry" / "imports.yaml"
    """The import sources registry YAML file."""
    fi_registry: Path | None = None
    """The FI registry: landing bucket, reward programs and the FIs that send transaction files
    (unset: no rewards; ``make demo`` writes one for its demo FI)."""
    inbound_key_file: Path = LOCAL_DIR / "keys" / "inbound.sec"
    """Our inbound decryption secret key (armored): FIs encrypt their files to its public key."""
    inbound_key_passphrase: SecretStr | None = None
    """Its passphrase, if any."""
    pg_dsn: str | None = None
    """The operational PostgreSQL, ``postgresql://user@host:port/database`` without the password
    (``make demo``, ``make dev`` and ``s3-sharing endpoints`` start a private server and set it)."""
    pg_password: SecretStr | None = None
    """Its password, if the server asks for one."""
    archive_bucket: str = "s3-sharing-audit-archive"
    """The GCS audit archive bucket."""
    state_bucket: str = "s3-sharing-state"
    """The platform's own S3 bucket for delivery leases, manifest chain heads and journals."""
    work_dir: Path = Field(default_factory=default_root)
    """Private (0700) root of the work directories that hold plaintext while a run works."""
    signing_key_file: Path = LOCAL_DIR / "keys" / "platform-signing.sec"
    """The platform's signing secret key (armored)."""
    signing_key_passphrase: SecretStr | None = None
    """Its passphrase, if any."""
    audit_key_file: Path = LOCAL_DIR / "keys" / "audit.pub"
    """The audit public key: every file is also encrypted to it, so the archive can be audited."""
    audit_secret_key_file: Path | None = None
    """The audit secret key, for the tenant isolation check."""
    schedule_minute: int = Field(default=10, ge=0, le=59)
    """Minutes past each window's end when its schedule ticks."""
    slack_token: SecretStr | None = None
    """Alerts go to Slack when set."""
    slack_channel: str = "#data-sharing-alerts"
    alert_webhook_url: SecretStr | None = None
    """Alerts go to this JSON webhook when set (and Slack is not)."""
    bq_project: str | None = None
    """BigQuery project (prod target)."""
    bq_dataset: str = "s3_sharing"
    """BigQuery dataset of the models (prod target)."""
    bq_raw_dataset: str = "raw"
    """BigQuery dataset of the landing tables (prod target)."""
    bq_location: str = "EU"
    bq_auth_method: str = "oauth"
    """``oauth`` (workload identity, application default credentials) or ``service-account``."""
    bq_keyfile: Path | None = None
    """The service account key file, with ``bq_auth_method: service-account``."""

    @field_validator("dbt_target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in DBT_TARGETS:
            raise ValueError(
                f"unknown dbt target {value!r}; dbt_project/profiles.yml defines {', '.join(DBT_TARGETS)}"
            )
        return value

    @field_validator(
        "duckdb_path",
        "registry",
        "import_sources",
        "fi_registry",
        "inbound_key_file",
        "signing_key_file",
        "audit_key_file",
        "dbt_target_path",
        "work_dir",
    )
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(
                f"{str(value)!r} must be an absolute path (processes run from other directories)"
            )
        return value

    @field_validator("partition_start")
    @classmethod
    def _partition_start_format(cls, value: str) -> str:
        try:
            datetime.strptime(value, HOURLY_KEY_FORMAT)
        except ValueError:
            raise ValueError(f"{value!r} is not a UTC hour like 2026-01-01-00:00") from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[variable(field)] for field in cls.model_fields if env.get(variable(field))}
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            if first["loc"]:
                field, detail = str(first["loc"][0]), message
            else:  # a model validator names its field first
                field, _, detail = message.partition(": ")
            raise SettingsError(f"{variable(field)}: {detail}") from None

    @classmethod
    def variables(cls) -> list[str]:
        return [variable(field) for field in cls.model_fields]

    @model_validator(mode="after")
    def _prod_needs_a_project(self) -> Settings:
        if self.dbt_target == "prod" and not self.bq_project:
            raise ValueError("bq_project: the prod target needs a BigQuery project")
        return self

    def require_warehouse(self) -> None:
        """Fail clearly before dbt would silently create an empty DuckDB file."""
        if self.dbt_target == "dev" and not self.duckdb_path.exists():
            raise SettingsError(
                f"DuckDB warehouse file {self.duckdb_path} does not exist: "
                "generate data first with `s3-sharing generate`"
            )
