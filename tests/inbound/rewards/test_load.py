"""The load's statements against a real PostgreSQL holding an FI's history: what they cost must
follow the file, not the years of files loaded before it."""

import pytest

from s3_sharing.inbound.rewards.load import EARLIER_FILES_DUPLICATES, staging

pytestmark = pytest.mark.e2e

HISTORY, STAGED, OVERLAP = 200_000, 20_000, 7


def test_duplicates_of_earlier_files_are_looked_up_by_id_not_found_by_reading_the_history(postgres):
    with postgres.connect() as connection:
        connection.execute(
            "INSERT INTO fi_transactions (fi, transaction_id, user_id, amount_minor, currency, occurred_at,"
            " business_day, type, file_id, program, rules_version, points, reason)"
            " SELECT 'bank', 'T' || n, 'u' || n %% 500, 100, 'COP', now(), '2026-11-29', 'purchase',"
            " n / 50000, 'debit', 1, 1, 'earned' FROM generate_series(1, %s) n",
            (HISTORY,),
        )
        connection.execute("ANALYZE fi_transactions")
        first_new = HISTORY - OVERLAP + 1  # the file repeats the last OVERLAP ids of the history
        with staging(connection) as copy:
            copy.write(
                "line,transaction_id,user_id,card_token,amount_minor,currency,exponent,occurred_at,"
                "business_day,type,mcc,merchant,original_transaction_id\n"
            )
            for n in range(first_new, first_new + STAGED):
                copy.write(f"{n},T{n},u1,,250,COP,2,2026-11-30 10:00:00,2026-11-30,purchase,,,\n")
        connection.execute("ANALYZE staging")

        plan = "\n".join(
            row[0] for row in connection.execute("EXPLAIN " + EARLIER_FILES_DUPLICATES, ("bank",))
        )
        assert "Seq Scan on fi_transactions" not in plan, plan
        assert "fi_transactions_pkey" in plan, plan

        assert connection.execute(EARLIER_FILES_DUPLICATES, ("bank",)).fetchone() == (OVERLAP, 250 * OVERLAP)
        assert connection.execute("SELECT count(*) FROM staging").fetchone() == (STAGED - OVERLAP,)
