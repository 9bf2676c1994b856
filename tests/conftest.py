"""Shared fixtures. Each test that touches the warehouse owns its DuckDB file in ``tmp_path``."""

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from s3_sharing.devtools import datagen
from s3_sharing.devtools.keygen import KeyPair, generate_key_pair
from s3_sharing.devtools.local_endpoints import local_stack
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.settings import DBT_PROJECT_DIR, Settings, variable
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB, REFERENCE_MODELS_JOB, dbt_project, prepare

PARTITION_START = "2026-01-01-00:00"
TINY = datagen.Scale(
    end=datetime(2026, 1, 1, 12), businesses=4, users_per_business=6, events_per_hour=12, hours=12
)
BUSINESSES = ("acme", "globex", "initech", "umbrella")
ARCHIVE = "test-audit-archive"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker parses dbt into its own target directory: ``dagster dev``
    re-parses at start, and another worker must never read a manifest being rewritten."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        os.environ[variable("dbt_target_path")] = str(DBT_PROJECT_DIR / "target" / f"dev-{worker}")


def with_worker_dbt(environment: dict[str, str]) -> dict[str, str]:
    """``environment`` plus this worker's dbt target path, if it has one."""
    name = variable("dbt_target_path")
    return environment | ({name: os.environ[name]} if name in os.environ else {})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the local endpoints is end to end (``make test-fast`` leaves it out)."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """``prepare_if_dev`` only acts under ``dagster dev``, so the suite parses dbt itself, once."""
    return prepare(dbt_project(Settings.from_env()))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Key pairs made with GnuPG once per session: the platform's, the audit key, one per business."""
    directory = tmp_path_factory.mktemp("keys")
    names = ["platform-signing", "audit", *BUSINESSES, "other"]
    pairs = {name: generate_key_pair(directory, name) for name in names}
    pairs["signing-only"] = generate_key_pair(directory, "signing-only", can_encrypt=False)
    pairs["expired"] = generate_key_pair(directory, "expired", expire="1d", created="20200101T000000")
    pairs["expiring"] = generate_key_pair(directory, "expiring", expire="10d")
    return pairs


def registry_entry(business_id: str, keys: dict[str, KeyPair], **overrides: object) -> dict[str, object]:
    """A valid registry entry; tests override what they exercise."""
    entry: dict[str, object] = {
        "id": business_id,
        "name": f"{business_id.title()}, Inc.",
        "cadence": "hourly",
        "datasets": ["FI_DATA", "ANALYTICS"],
        "destination": {
            "bucket_arn": f"arn:aws:s3:::{business_id}-bucket",
            "region": "eu-west-1",
            "prefix": "shared/",
            "role_arn": f"arn:aws:iam::123456789012:role/deliver-{business_id}",
        },
        "public_key": {"file": str(keys[business_id].public)},
    }
    entry.update(overrides)
    return entry


def default_registry(keys: dict[str, KeyPair]) -> list[dict[str, object]]:
    """acme: per-user layout; globex: per-data-set layout with SSE-KMS and an external
    id; initech: daily; umbrella: the quiet one (many empty hours)."""
    return [
        registry_entry("acme", keys),
        registry_entry(
            "globex",
            keys,
            datasets=["IDENTITY", "PAYMENTS", "TRANSACTIONS", "BENEFICIARIES"],
            layout="{dataset}/{date}/{hour}/{dataset}_{window}.csv.pgp",
            destination={
                "bucket_arn": "arn:aws:s3:::globex-bucket",
                "region": "eu-west-1",
                "prefix": "psp/inbound/",
                "role_arn": "arn:aws:iam::123456789012:role/deliver-globex",
                "external_id": "globex-secret-ext",
                "sse": {"mode": "aws:kms", "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:alias/globex"},
            },
        ),
        registry_entry("initech", keys, cadence="daily", datasets=["FI_DATA"]),
        registry_entry(
            "umbrella", keys, datasets=["FI_DATA"], layout="{dataset}/{date}/{hour}/{dataset}.csv.pgp"
        ),
    ]


def write_registry(path: Path, entries: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"businesses": entries}, allow_unicode=True))
    return path


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dbt_manifest: Path, keys: dict[str, KeyPair]
) -> Settings:
    """Settings pointing at this test's own DuckDB file (tiny generated data) and registry."""
    path = tmp_path / "warehouse.duckdb"
    environment = {
        "S3_SHARING_DUCKDB_PATH": str(path),
        "S3_SHARING_PARTITION_START": PARTITION_START,
        "S3_SHARING_REGISTRY": str(write_registry(tmp_path / "registry.yaml", default_registry(keys))),
        "S3_SHARING_SIGNING_KEY_FILE": str(keys["platform-signing"].secret),
        "S3_SHARING_AUDIT_KEY_FILE": str(keys["audit"].public),
        "S3_SHARING_AUDIT_SECRET_KEY_FILE": str(keys["audit"].secret),
        "S3_SHARING_ARCHIVE_BUCKET": ARCHIVE,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("S3_SHARING_DBT_TARGET", "S3_SHARING_SIGNING_KEY_PASSPHRASE", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    datagen.generate(path, TINY)
    return Settings.from_env()


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory, dbt_manifest: Path) -> Path:
    """TINY data with all 12 hours of marts built by dbt, once; tests copy the file."""
    directory = tmp_path_factory.mktemp("built")
    path = directory / "warehouse.duckdb"
    datagen.generate(path, TINY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S3_SHARING_DUCKDB_PATH", str(path))
        built = Settings.from_env(
            with_worker_dbt(
                {"S3_SHARING_DUCKDB_PATH": str(path), "S3_SHARING_PARTITION_START": PARTITION_START}
            )
        )
        patch.setenv("S3_SHARING_REGISTRY", str(write_registry(directory / "empty.yaml", [])))
        defs = build_outbound_location(built.model_copy(update={"registry": directory / "empty.yaml"}))
        instance = dg.DagsterInstance.ephemeral()
        defs.resolve_job_def(REFERENCE_MODELS_JOB).execute_in_process(instance=instance)
        defs.resolve_job_def(HOURLY_MARTS_JOB).execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2026-01-01-00:00",
                "dagster/asset_partition_range_end": "2026-01-01-11:00",
            },
        )
    return path


@pytest.fixture
def built(settings: Settings, built_warehouse: Path) -> Settings:
    """``settings`` whose warehouse already has the marts built for every hour of TINY."""
    shutil.copyfile(built_warehouse, settings.duckdb_path)
    return settings


@pytest.fixture
def stack(settings: Settings) -> Iterator:
    """Local S3/STS/IAM/KMS and GCS, provisioned for the test's registry, IAM enforced."""
    with local_stack(read_registry(settings.registry), ARCHIVE) as endpoints:
        yield endpoints


def query(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()
