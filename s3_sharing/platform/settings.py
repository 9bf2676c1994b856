"""Deployment settings, read from the environment when definitions load (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
LOCAL_DIR = REPO_ROOT / ".local"
DBT_TARGETS = ("dev", "prod")
PARTITION_START_FORMAT = "%Y-%m-%d-%H:%M"
ENV_VARIABLES = {
    "dbt_target": "S3_SHARING_DBT_TARGET",
    "duckdb_path": "S3_SHARING_DUCKDB_PATH",
    "partition_start": "S3_SHARING_PARTITION_START",
    "registry_path": "S3_SHARING_REGISTRY",
    "archive_bucket": "S3_SHARING_ARCHIVE_BUCKET",
    "signing_key_file": "S3_SHARING_SIGNING_KEY_FILE",
    "audit_key_file": "S3_SHARING_AUDIT_KEY_FILE",
    "audit_secret_key_file": "S3_SHARING_AUDIT_SECRET_KEY_FILE",
    "schedule_minute": "S3_SHARING_SCHEDULE_MINUTE",
}


class SettingsError(ValueError):
    """A setting from the environment is unusable; the message names the variable."""


class Settings(BaseModel):
    """Where the warehouse is and how dbt partitions it.

    Environment variables (all optional):
    - ``S3_SHARING_DBT_TARGET``: ``dev`` (embedded DuckDB, default) or ``prod`` (BigQuery).
    - ``S3_SHARING_DUCKDB_PATH``: absolute path of the DuckDB warehouse file (dev target).
    - ``S3_SHARING_PARTITION_START``: first hourly partition, ``YYYY-MM-DD-HH:MM`` UTC.
    - ``S3_SHARING_REGISTRY``: the business registry YAML file.
    - ``S3_SHARING_ARCHIVE_BUCKET``: the GCS audit archive bucket.
    - ``S3_SHARING_SIGNING_KEY_FILE`` / ``S3_SHARING_AUDIT_KEY_FILE``: the platform's signing
      secret key and the audit public key (armored files; the passphrase, if any, comes from
      ``S3_SHARING_SIGNING_KEY_PASSPHRASE`` through ``dg.EnvVar``).
    - ``S3_SHARING_AUDIT_SECRET_KEY_FILE``: the audit secret key, for the tenant isolation check.
    - ``S3_SHARING_SCHEDULE_MINUTE``: minutes past each window's end when its schedule ticks.
    """

    model_config = ConfigDict(frozen=True)

    dbt_target: str = "dev"
    duckdb_path: Path = LOCAL_DIR / "warehouse.duckdb"
    partition_start: str = "2026-01-01-00:00"
    registry_path: Path = REPO_ROOT / "registry" / "demo.yaml"
    archive_bucket: str = "s3-sharing-audit-archive"
    signing_key_file: Path = LOCAL_DIR / "keys" / "platform-signing.sec"
    audit_key_file: Path = LOCAL_DIR / "keys" / "audit.pub"
    audit_secret_key_file: Path | None = None
    schedule_minute: int = Field(default=10, ge=0, le=59)

    @field_validator("dbt_target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in DBT_TARGETS:
            raise ValueError(
                f"unknown dbt target {value!r}; dbt_project/profiles.yml defines {', '.join(DBT_TARGETS)}"
            )
        return value

    @field_validator("duckdb_path", "registry_path", "signing_key_file", "audit_key_file")
    @classmethod
    def _absolute_path(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(
                f"{str(value)!r} must be an absolute path (processes run from other directories)"
            )
        return value

    @field_validator("partition_start")
    @classmethod
    def _partition_start_format(cls, value: str) -> str:
        try:
            datetime.strptime(value, PARTITION_START_FORMAT)
        except ValueError:
            raise ValueError(f"{value!r} is not a UTC hour like 2026-01-01-00:00") from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[variable] for field, variable in ENV_VARIABLES.items() if env.get(variable)}
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            variable = ENV_VARIABLES.get(str(first["loc"][0]), str(first["loc"][0]))
            message = str(first["msg"]).removeprefix("Value error, ")
            raise SettingsError(f"{variable}: {message}") from None

    def require_warehouse(self) -> None:
        """Fail clearly before dbt would silently create an empty DuckDB file."""
        if self.dbt_target == "dev" and not self.duckdb_path.exists():
            raise SettingsError(
                f"DuckDB warehouse file {self.duckdb_path} does not exist: "
                "generate data first with `s3-sharing generate`"
            )
