"""Real PostgreSQL (a private server per test process, a fresh database per test) and a customer's
bucket on the local moto server with IAM enforced."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from s3_sharing.devtools.local_endpoints import LocalEndpoints, local_stack
from s3_sharing.devtools.postgres import LocalPostgres
from s3_sharing.inbound.database import migrate_inbound
from s3_sharing.inbound.sources import ImportSource, ImportSources, read_sources
from s3_sharing.outbound.registry import Registry
from s3_sharing.platform.postgres import Postgres

from ..conftest import ARCHIVE

CUSTOMER_BUCKET = "pirani-exports"
RISKS = {
    "entity": "risks",
    "folder": "riesgos/",
    "action": "upsert",
    "mapping": {
        "referenceCode": "Código",
        "name": "Nombre",
        "category": "Categoría",
        "likelihood": "Probabilidad",
    },
}
EVENTS = {
    "entity": "events",
    "folder": "eventos/",
    "action": "create",
    "parent": "risks",
    "mapping": {
        "referenceCode": "Código",
        "parentReferenceCode": "Código del riesgo",
        "name": "Nombre",
        "occurredOn": "Fecha de ocurrencia",
        "lossAmount": "Pérdida",
    },
}


def source_entry(source_id: str = "pirani", **overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": source_id,
        "name": "Pirani demo customer",
        "connection": {
            "bucket": CUSTOMER_BUCKET,
            "region": "eu-west-1",
            "role_arn": f"arn:aws:iam::123456789012:role/import-{source_id}",
            "external_id": f"{source_id}-external-id",
        },
        "schedule": {"frequency": "daily", "time": "02:00", "timezone": "America/Bogota"},
        "entities": [RISKS, EVENTS],
    }
    return entry | overrides


def write_sources(path: Path, entries: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"sources": entries}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    with LocalPostgres() as server:
        yield server


def new_database(server: LocalPostgres) -> Postgres:
    """A fresh, migrated database on the server."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    resource = Postgres(dsn=server.dsn.rsplit("/", 1)[0] + f"/{name}")
    with resource.connect() as connection:
        migrate_inbound(connection)
    return resource


@pytest.fixture
def postgres(postgres_server: LocalPostgres) -> Iterator[Postgres]:
    """A fresh, migrated database of the test's own."""
    resource = new_database(postgres_server)
    yield resource
    name = str(resource.dsn).rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def sources_file(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The sources registry: ``source_entry()``, or the entries a test passes by indirect
    parametrization."""
    return write_sources(tmp_path / "imports.yaml", getattr(request, "param", None) or [source_entry()])


@pytest.fixture
def customer(sources_file: Path) -> Iterator[LocalEndpoints]:
    """The local AWS with the customer's bucket and the import role it grants us, IAM enforced."""
    with local_stack(
        Registry(businesses=[]), ARCHIVE, import_sources=read_sources(sources_file).sources
    ) as aws:
        yield aws


def source_of(sources_file: Path, source_id: str = "pirani") -> ImportSource:
    sources: ImportSources = read_sources(sources_file)
    return sources.get(source_id)
