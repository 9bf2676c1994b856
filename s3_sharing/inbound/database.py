"""The inbound side's PostgreSQL schema: its migrations (imports and rewards), applied by every
run and command that writes there."""

from importlib import resources
from pathlib import Path

import psycopg

from s3_sharing.platform.postgres import Postgres, migrate
from s3_sharing.platform.settings import Settings

MIGRATIONS = Path(str(resources.files("s3_sharing.inbound") / "migrations"))


def migrate_inbound(connection: psycopg.Connection) -> list[str]:
    """Apply the inbound migrations not applied yet; the names of those applied."""
    return migrate(connection, MIGRATIONS)


def command_postgres(settings: Settings) -> Postgres:
    """The operational database for a command run outside Dagster, migrated (the password read
    from the settings)."""
    password = settings.pg_password.get_secret_value() if settings.pg_password else None
    postgres = Postgres(dsn=settings.pg_dsn, password=password)
    with postgres.connect() as connection:
        migrate_inbound(connection)
    return postgres
