"""Shared fixtures. Each test that touches the warehouse owns its DuckDB file in ``tmp_path``."""

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from s3_sharing import datagen
from s3_sharing.dbt_models import dbt_project, prepare
from s3_sharing.settings import Settings

PARTITION_START = "2026-01-01-00:00"
TINY = datagen.Scale(
    end=datetime(2026, 1, 1, 12), businesses=3, users_per_business=6, events_per_hour=12, hours=12
)


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """``prepare_if_dev`` only acts under ``dagster dev``, so the suite parses dbt itself, once."""
    return prepare(dbt_project(Settings()))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dbt_manifest: Path) -> Settings:
    """Settings pointing at this test's own DuckDB file, filled with tiny generated data."""
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("S3_SHARING_DUCKDB_PATH", str(path))
    monkeypatch.setenv("S3_SHARING_PARTITION_START", PARTITION_START)
    monkeypatch.delenv("S3_SHARING_DBT_TARGET", raising=False)
    datagen.generate(path, TINY)
    return Settings.from_env()


def query(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()
