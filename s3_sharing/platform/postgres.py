"""The platform's operational PostgreSQL: a Dagster resource and its versioned migrations.

Migrations are plain SQL files ``NNNN_name.sql`` applied in order, each recorded in
``schema_migrations`` with its SHA-256. Plain files rather than Alembic: the schema is a handful of
tables written as SQL, there is no ORM to derive it from, and PostgreSQL's transactional DDL gives
what a tool would: all pending migrations apply in one transaction or not at all. An advisory lock
lets many processes (every run, the CLI, the tests) call ``migrate`` at once; an applied file that
changed afterwards is refused by name.
"""

import hashlib
import re
from pathlib import Path

import dagster as dg
import psycopg

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK = 0x53335348  # pg_advisory_xact_lock key of the migrations ("S3SH")


class MigrationError(RuntimeError):
    """The database's schema history disagrees with the migration files."""


class PostgresNotConfigured(RuntimeError):
    """A run needs PostgreSQL and no DSN is set."""


class Postgres(dg.ConfigurableResource):
    """Connections to the operational database. ``dsn`` holds no password; ``password`` comes
    from ``S3_SHARING_PG_PASSWORD`` through ``dg.EnvVar``."""

    dsn: str | None
    password: str | None = None

    def connect(self, **options: object) -> psycopg.Connection:
        if not self.dsn:
            raise PostgresNotConfigured(
                "no operational database: set S3_SHARING_PG_DSN (make demo, make dev and "
                "s3-sharing endpoints start a local one)"
            )
        if self.password:
            options["password"] = self.password
        return psycopg.connect(self.dsn, **options)  # type: ignore[arg-type]


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, streamed: what a ledger records of the content it saw."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def advisory_lock_key(*parts: str) -> int:
    """A signed 64-bit ``pg_advisory_xact_lock`` key for one file (named by ``parts``)."""
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big", signed=True)


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_case_name.sql")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migration files share a version number")
    return found


def migrate(connection: psycopg.Connection, directory: Path) -> list[str]:
    """Apply the pending migrations in one transaction; the names of those applied."""
    applied_now = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " sha256 text NOT NULL, applied_at timestamp with time zone NOT NULL DEFAULT now())"
        )
        applied = dict(connection.execute("SELECT version, sha256 FROM schema_migrations").fetchall())
        for version, path in migration_files(directory):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if version in applied:
                if applied[version] != digest:
                    raise MigrationError(
                        f"{path.name} changed after it was applied: add a new migration instead"
                    )
                continue
            connection.execute(text)  # type: ignore[arg-type]  # our own file, no values in it
            connection.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                (version, path.name, digest),
            )
            applied_now.append(path.name)
    return applied_now
