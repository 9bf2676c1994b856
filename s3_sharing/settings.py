"""Deployment settings, read from the environment when definitions load (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
LOCAL_DIR = REPO_ROOT / ".local"
DBT_TARGETS = ("dev", "prod")
PARTITION_START_FORMAT = "%Y-%m-%d-%H:%M"


class SettingsError(ValueError):
    """A setting from the environment is unusable; the message names the variable."""


class Settings(BaseModel):
    """Where the warehouse is and how dbt partitions it.

    Environment variables (all optional):
    - ``S3_SHARING_DBT_TARGET``: ``dev`` (embedded DuckDB, default) or ``prod`` (BigQuery).
    - ``S3_SHARING_DUCKDB_PATH``: absolute path of the DuckDB warehouse file (dev target).
    - ``S3_SHARING_PARTITION_START``: first hourly partition, ``YYYY-MM-DD-HH:MM`` UTC.
    """

    model_config = ConfigDict(frozen=True)

    dbt_target: str = "dev"
    duckdb_path: Path = LOCAL_DIR / "warehouse.duckdb"
    partition_start: str = "2026-01-01-00:00"

    @field_validator("dbt_target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in DBT_TARGETS:
            raise SettingsError(
                f"S3_SHARING_DBT_TARGET: unknown dbt target {value!r}; "
                f"dbt_project/profiles.yml defines {', '.join(DBT_TARGETS)}"
            )
        return value

    @field_validator("duckdb_path")
    @classmethod
    def _absolute_path(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise SettingsError(
                f"S3_SHARING_DUCKDB_PATH: {str(value)!r} must be an absolute path "
                "(dbt and Dagster run from different directories)"
            )
        return value

    @field_validator("partition_start")
    @classmethod
    def _partition_start_format(cls, value: str) -> str:
        try:
            datetime.strptime(value, PARTITION_START_FORMAT)
        except ValueError:
            raise SettingsError(
                f"S3_SHARING_PARTITION_START: {value!r} is not a UTC hour like 2026-01-01-00:00"
            ) from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {
            field: env[variable]
            for field, variable in (
                ("dbt_target", "S3_SHARING_DBT_TARGET"),
                ("duckdb_path", "S3_SHARING_DUCKDB_PATH"),
                ("partition_start", "S3_SHARING_PARTITION_START"),
            )
            if env.get(variable)
        }
        try:
            return cls(**values)
        except ValueError as error:
            raise SettingsError(_first_message(error)) from None

    def require_warehouse(self) -> None:
        """Fail clearly before dbt would silently create an empty DuckDB file."""
        if self.dbt_target == "dev" and not self.duckdb_path.exists():
            raise SettingsError(
                f"DuckDB warehouse file {self.duckdb_path} does not exist: "
                "generate data first with `s3-sharing generate`"
            )


def _first_message(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        message = str(errors()[0]["msg"])
        return message.removeprefix("Value error, ")
    return str(error)
