"""The entity catalog and the migrated schema agree; migrations apply once, under concurrency."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from s3_sharing.inbound.catalog import ENTITIES, POSTGRES_TYPES, parents_first
from s3_sharing.inbound.database import MIGRATIONS
from s3_sharing.platform.postgres import MigrationError, migrate, migration_files

pytestmark = pytest.mark.e2e  # a real PostgreSQL server

BOOKKEEPING = {
    "id": "bigint",
    "source": "text",
    "reference_code": "text",
    "import_id": "bigint",
    "created_at": "timestamp with time zone",
    "updated_at": "timestamp with time zone",
}


def test_every_catalog_entity_has_its_table_with_the_catalogs_columns_and_types(postgres):
    with postgres.connect() as connection:
        for entity in ENTITIES.values():
            found = dict(
                connection.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                    (entity.table,),
                ).fetchall()
            )
            expected = BOOKKEEPING | {f.column: POSTGRES_TYPES[f.type] for f in entity.fields[1:]}
            if entity.parent:
                expected["parent_id"] = "bigint"
            assert found == expected, entity.name
            required = {
                name
                for (name,) in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND is_nullable = 'NO'",
                    (entity.table,),
                )
            }
            assert required - set(BOOKKEEPING) == {f.column for f in entity.fields[1:] if f.required}


def test_parents_come_first():
    assert parents_first(["events", "controls", "risks"]) == ["risks", "events", "controls"]
    assert parents_first(["transactions", "customers"]) == ["customers", "transactions"]


def test_migrations_apply_once_even_when_many_processes_migrate_at_once(postgres):
    with postgres.connect() as connection:  # back to an empty database
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")

    def migrate_once(_: int) -> list[str]:
        with postgres.connect() as connection:
            return migrate(connection, MIGRATIONS)

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(migrate_once, range(4)))
    assert sorted(applied) == [[], [], [], [p.name for _, p in migration_files(MIGRATIONS)]]
    assert [p.name for _, p in migration_files(MIGRATIONS)] == [
        "0001_imports.sql",
        "0002_rewards.sql",
        "0003_clawback_originals.sql",
        "0004_no_per_row_import_checks.sql",
        "0005_rewards_on_the_transaction_row.sql",
    ]


def test_rewards_loaded_before_0005_move_onto_their_transactions_and_read_the_same(postgres, tmp_path):

    with postgres.connect() as connection:  # a database as 0004 left it, with a file loaded
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
        for _, path in migration_files(MIGRATIONS)[:4]:
            (tmp_path / path.name).write_text(path.read_text())
        migrate(connection, tmp_path)
        connection.execute(
            "INSERT INTO fi_transactions (fi, transaction_id, user_id, amount_minor, currency, occurred_at,"
            " business_day, type, original_transaction_id, file_id) VALUES"
            " ('bank', 'T1', 'u1', 20000, 'COP', now(), '2026-11-30', 'purchase', NULL, 1),"
            " ('bank', 'T2', 'u1', 5000, 'COP', now(), '2026-11-30', 'refund', 'T1', 1)"
        )
        connection.execute(
            "INSERT INTO reward_points (fi, transaction_id, program, user_id, business_day, rules_version,"
            " points, reason, file_id) VALUES"
            " ('bank', 'T1', 'debit', 'u1', '2026-11-30', 1, 200, 'earned', 1),"
            " ('bank', 'T2', 'debit', 'u1', '2026-11-30', 1, -50, 'clawback', 1)"
        )
        read = "SELECT transaction_id, program, rules_version, points, reason, file_id FROM reward_points"
        before = connection.execute(read + " ORDER BY 1").fetchall()

        assert migrate(connection, MIGRATIONS) == ["0005_rewards_on_the_transaction_row.sql"]
        assert connection.execute(read + " ORDER BY 1").fetchall() == before
        assert connection.execute(
            "SELECT transaction_id, points, reason FROM fi_transactions ORDER BY 1"
        ).fetchall() == [("T1", 200, "earned"), ("T2", -50, "clawback")]


def test_a_migration_changed_after_it_was_applied_is_refused_by_name(postgres, tmp_path):

    for path in MIGRATIONS.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text() + "\n-- edited\n")
    with postgres.connect() as connection, pytest.raises(MigrationError, match=r"0001_imports\.sql changed"):
        migrate(connection, tmp_path)
