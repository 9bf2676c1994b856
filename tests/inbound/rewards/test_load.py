"""The load's statements against a real PostgreSQL holding an FI's history: what they cost must
follow the file, not the years of files loaded before it. (Plans, not timings: a statement that
reads the whole history shows it as a sequential scan of the history's table.)"""

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from s3_sharing.inbound.rewards.load import (
    EARLIER_FILES_DUPLICATES,
    UNKNOWN_ORIGINALS,
    earn_statement,
    staging,
)
from s3_sharing.inbound.rewards.normalise import CLEAN_COLUMNS
from s3_sharing.inbound.rewards.registry import CLAWBACK_TYPES, RulesVersion

pytestmark = pytest.mark.e2e

HISTORY, STAGED, OVERLAP = 200_000, 20_000, 7
RULES = RulesVersion(
    version=1,
    effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    points_per_unit=Decimal("0.01"),
    daily_cap=1000,
)


def _plan(connection: psycopg.Connection, statement: str, values: object) -> str:
    return "\n".join(row[0] for row in connection.execute("EXPLAIN " + statement, values))  # type: ignore[arg-type]


def test_a_file_is_checked_against_the_history_by_key_lookups_never_by_reading_it_all(postgres):
    with postgres.connect() as connection:
        connection.execute(
            "INSERT INTO fi_transactions (fi, transaction_id, user_id, amount_minor, currency, occurred_at,"
            " business_day, type, file_id, program, rules_version, points, reason)"
            " SELECT 'bank', 'T' || n, 'u' || n %% 500, 100, 'COP', now(), '2026-11-29', 'purchase',"
            " n / 50000, 'debit', 1, 1, 'earned' FROM generate_series(1, %s) n",
            (HISTORY,),
        )
        connection.execute(
            "INSERT INTO reward_daily_earned (program, user_id, business_day, points)"
            " SELECT 'debit', 'u' || u, date '2026-11-29' - d, 10"
            " FROM generate_series(0, 499) u, generate_series(0, 399) d"
        )
        connection.execute("ANALYZE fi_transactions")
        connection.execute("ANALYZE reward_daily_earned")
        first_new = HISTORY - OVERLAP + 1  # the file repeats the last OVERLAP ids of the history
        with staging(connection) as copy:
            copy.write(",".join(CLEAN_COLUMNS) + "\n")
            for n in range(first_new, first_new + STAGED):  # every user new, half the rows refunds
                kind, original = ("refund", f"T{n - 1000}") if n % 2 == 0 else ("purchase", "")
                copy.write(f"{n},T{n},u{n},,250,COP,2,2026-11-30 10:00:00,2026-11-30,{kind},,,{original}\n")
        connection.execute("ANALYZE staging")
        connection.execute("CREATE TEMPORARY TABLE balance_moves (user_id text, points bigint)")
        values = {
            "fi": "bank",
            "program": "debit",
            "version": 1,
            "file_id": 9,
            "clawbacks": list(CLAWBACK_TYPES),
        }
        plans = {
            "duplicates": _plan(connection, EARLIER_FILES_DUPLICATES, ("bank",)),
            "unknown originals": _plan(
                connection, UNKNOWN_ORIGINALS, {"claw": list(CLAWBACK_TYPES), "fi": "bank"}
            ),
            "earn": _plan(connection, *earn_statement(RULES, values)),
        }
        for name, plan in plans.items():
            for history in ("fi_transactions", "reward_daily_earned"):
                assert f"Seq Scan on {history}" not in plan, f"{name} reads all of {history}:\n{plan}"
        assert (
            "fi_transactions_pkey" in plans["duplicates"]
            and "fi_transactions_pkey" in plans["unknown originals"]
        )
        assert "reward_daily_earned_pkey" in plans["earn"]

        assert connection.execute(EARLIER_FILES_DUPLICATES, ("bank",)).fetchone() == (OVERLAP, 250 * OVERLAP)
        assert connection.execute("SELECT count(*) FROM staging").fetchone() == (STAGED - OVERLAP,)
