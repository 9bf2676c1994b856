"""Load one normalised file into PostgreSQL, set-based, inside the caller's transaction: the file is
COPYed into staging as it is normalised, then a few statements: repeats within the file and
duplicates of earlier files set aside, clawbacks whose original is unknown rejected, the
transactions inserted, each row with its reward computed by the file's rules version (points,
multipliers, exclusions, the daily cap, rounding, clawbacks; ``reward_points`` is a view of those
columns), and the balances moved by exactly the sum of the new rows' points.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from s3_sharing.inbound.rewards.normalise import CLEAN_COLUMNS
from s3_sharing.inbound.rewards.registry import CLAWBACK_TYPES, RulesVersion

WORK_MEM = "256MB"
"""For the load's statements: a file's sorts (the daily cap's window) and hashes (its repeated ids)
stay in memory, on the database server."""
ROUNDING = {"floor": "floor", "ceil": "ceil", "half_up": "round"}  # numeric round(): half away from 0


EARLIER_FILES_DUPLICATES = (
    "WITH gone AS (DELETE FROM staging s WHERE (SELECT true FROM fi_transactions t WHERE t.fi = %s"
    " AND t.transaction_id = s.transaction_id) RETURNING s.amount_minor)"
    " SELECT count(*), coalesce(sum(amount_minor), 0) FROM gone"
)
"""The staged rows whose id an earlier file loaded, set aside. Each id is looked up in the primary key
(a subquery in the condition is not turned into a join): as a join, the planner hashed the FI's whole
history, 3.2 s for a million-row file against 5 million earlier rows (1.5 s looked up), and growing
with every file loaded."""


UNKNOWN_ORIGINALS = (
    "DELETE FROM staging s WHERE s.type = ANY(%(claw)s) AND (SELECT true FROM fi_transactions t"
    " WHERE t.fi = %(fi)s AND t.transaction_id = s.original_transaction_id AND t.type <> ALL(%(claw)s))"
    " IS NULL AND NOT EXISTS (SELECT 1 FROM staging o WHERE o.transaction_id = s.original_transaction_id"
    " AND o.type <> ALL(%(claw)s)) RETURNING line, transaction_id, original_transaction_id, amount_minor"
)
"""The staged clawbacks whose original (a transaction that earns) is in no file, set aside; each
original looked up by its key, as the duplicates are."""


@dataclass(frozen=True)
class Loaded:
    rows_loaded: int
    amount_loaded_minor: int
    rows_duplicate: int
    amount_duplicate_minor: int
    points: int
    unknown_originals: list[tuple[int, str, str, int]]
    """(line, transaction id, original id, amount) of clawbacks whose original (a transaction that earns) is
    in no file: rejected, so the FI sends them again after the original."""


@contextmanager
def staging(connection: psycopg.Connection) -> Iterator[psycopg.Copy]:
    """The file's staging table, and the COPY that fills it: CSV with ``CLEAN_COLUMNS`` and a header,
    written while the file is normalised, so the server parses one batch while the next is typed.
    ``occurred_at`` is a UTC timestamp without an offset."""
    connection.execute(
        "CREATE TEMPORARY TABLE staging (line bigint, transaction_id text, user_id text, card_token text,"
        " amount_minor bigint, currency text, exponent integer, occurred_at timestamp without time zone,"
        " business_day date, type text, mcc text, merchant text, original_transaction_id text) ON COMMIT DROP"
    )
    columns = ", ".join(CLEAN_COLUMNS)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY staging ({columns}) FROM STDIN (FORMAT csv, HEADER true)") as copy,
    ):
        yield copy


def forget_file(connection: psycopg.Connection, file_ids: list[int]) -> None:
    """Take back what earlier attempts of a file loaded (a replay recomputes it): their points
    leave the balances and the days' totals, then their transactions go."""
    if not file_ids:
        return
    connection.execute(
        "UPDATE reward_balances b SET points = b.points - r.points, updated_at = now() FROM"
        " (SELECT program, user_id, sum(points) AS points FROM fi_transactions WHERE file_id = ANY(%s)"
        " GROUP BY 1, 2) r WHERE b.program = r.program AND b.user_id = r.user_id",
        (file_ids,),
    )
    connection.execute(
        "UPDATE reward_daily_earned d SET points = d.points - r.points FROM (SELECT program, user_id,"
        " business_day, sum(points) AS points FROM fi_transactions WHERE file_id = ANY(%s) AND points > 0"
        " GROUP BY 1, 2, 3) r WHERE (d.program, d.user_id, d.business_day) = (r.program, r.user_id,"
        " r.business_day)",
        (file_ids,),
    )
    connection.execute("DELETE FROM fi_transactions WHERE file_id = ANY(%s)", (file_ids,))


def load(
    connection: psycopg.Connection,
    fi: str,
    program: str,
    rules: RulesVersion,
    file_id: int,
    repeated_ids: bool | None,
) -> Loaded:
    """The staged file into the transactions (each with its reward) and the balances.
    ``repeated_ids`` is the normalisation's answer (False: no id repeats in the file, so none is
    looked for)."""
    connection.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    connection.execute("SET LOCAL jit = off")  # compiling these plans costs more than it saves
    connection.execute("ANALYZE staging")
    connection.execute("CREATE TEMPORARY TABLE balance_moves (user_id text, points bigint) ON COMMIT DROP")
    earlier = connection.execute(EARLIER_FILES_DUPLICATES, (fi,)).fetchone()
    repeated = (0, 0)
    if repeated_ids is not False:
        repeated = connection.execute(  # one hash aggregate finds the ids repeated in the file
            "WITH first AS (SELECT transaction_id, min(line) AS line FROM staging GROUP BY 1"
            " HAVING count(*) > 1), gone AS (DELETE FROM staging s USING first f"
            " WHERE s.transaction_id = f.transaction_id AND s.line > f.line RETURNING s.amount_minor)"
            " SELECT count(*), coalesce(sum(amount_minor), 0) FROM gone"
        ).fetchone()
    assert earlier is not None and repeated is not None
    unknown = connection.execute(UNKNOWN_ORIGINALS, {"claw": list(CLAWBACK_TYPES), "fi": fi}).fetchall()
    values = {
        "fi": fi,
        "program": program,
        "version": rules.version,
        "file_id": file_id,
        "clawbacks": list(CLAWBACK_TYPES),
    }
    earned = _inserted(connection.execute(*earn_statement(rules, values)))  # type: ignore[arg-type]
    clawed = _claw_back(connection, rules, values)
    moved = connection.execute(
        "WITH moved AS (INSERT INTO reward_balances (program, user_id, points)"
        " SELECT %s, user_id, sum(points) FROM balance_moves GROUP BY 2"
        " ON CONFLICT (program, user_id) DO UPDATE SET points = reward_balances.points + EXCLUDED.points,"
        " updated_at = now() RETURNING 1)"
        " SELECT coalesce(sum(points), 0) FROM balance_moves",
        (program,),
    ).fetchone()
    assert moved is not None
    return Loaded(
        earned[0] + clawed[0],
        earned[1] + clawed[1],
        int(earlier[0]) + int(repeated[0]),
        int(earlier[1]) + int(repeated[1]),
        int(moved[0]),
        unknown,
    )


_INSERTED_COLUMNS = (
    "fi, transaction_id, user_id, card_token, amount_minor, currency, occurred_at, business_day, type, mcc,"
    " merchant, original_transaction_id, file_id, program, rules_version, points, reason"
)
_FROM_STAGING = (
    "%(fi)s, transaction_id, user_id, card_token, amount_minor, currency, occurred_at AT TIME ZONE 'UTC',"
    " business_day, type, mcc, merchant, original_transaction_id, %(file_id)s, %(program)s, %(version)s"
)
"""The staged columns of a transaction row, and its file and rules, for an ``INSERT ... SELECT``."""


def _inserted(result: psycopg.Cursor) -> tuple[int, int]:
    row = result.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def earn_statement(rules: RulesVersion, values: dict[str, object]) -> tuple[str, dict[str, object]]:
    """The statement (and its values) that inserts the file's transactions other than clawbacks,
    each with its points: ``points_per_unit`` per major unit times the merchant category's
    multiplier, rounded per transaction; excluded types earn 0. The daily cap counts what the user
    earned that business day in earlier files, then this file's transactions in time order; only
    the days it cuts are ordered (few, or none). The days' totals are kept; what each user earned
    goes to ``balance_moves``. It returns the (rows, amount) inserted."""
    rounding = ROUNDING[rules.rounding]
    return (
        f"""
            WITH earning AS NOT MATERIALIZED (  -- stored, a million wide rows spill to disk
                SELECT s.*, CASE WHEN s.type = ANY(%(excluded)s) THEN 0
                        ELSE {rounding}(s.amount_minor::numeric * %(per_unit)s / (10 ^ s.exponent)::bigint
                            * coalesce(m.factor, 1))::bigint
                    END AS points
                FROM staging s
                LEFT JOIN (SELECT key AS mcc, value::numeric AS factor
                    FROM jsonb_each_text(%(multipliers)s)) m ON m.mcc = s.mcc
                WHERE s.type <> ALL(%(clawbacks)s)
            ),
            file_days AS (
                SELECT user_id, business_day, sum(points) AS points FROM earning
                WHERE %(cap)s::bigint IS NOT NULL GROUP BY 1, 2
            ),
            over_cap AS MATERIALIZED (  -- earlier days' totals looked up, not the program's history read
                SELECT user_id, business_day, earned FROM (
                    SELECT f.*, coalesce((SELECT d.points FROM reward_daily_earned d
                        WHERE d.program = %(program)s AND d.user_id = f.user_id
                            AND d.business_day = f.business_day), 0) AS earned
                    FROM file_days f
                ) f
                WHERE earned + points > %(cap)s::bigint
            ),
            capped AS (
                SELECT e.transaction_id, greatest(0, least(e.points, %(cap)s::bigint - o.earned
                    - sum(e.points) OVER (PARTITION BY e.user_id, e.business_day
                        ORDER BY e.occurred_at, e.transaction_id ROWS UNBOUNDED PRECEDING) + e.points))
                    AS awarded
                FROM earning e JOIN over_cap o USING (user_id, business_day)
            ),
            inserted AS (
                INSERT INTO fi_transactions ({_INSERTED_COLUMNS})
                SELECT {_FROM_STAGING}, coalesce(c.awarded, e.points),
                    CASE WHEN e.type = ANY(%(excluded)s) THEN 'excluded'
                        WHEN c.awarded < e.points THEN 'capped' ELSE 'earned' END
                FROM earning e LEFT JOIN capped c USING (transaction_id)
                ORDER BY transaction_id  -- the primary key's order: index pages filled in turn
                RETURNING user_id, business_day, points, amount_minor
            ),
            days AS (SELECT user_id, business_day, sum(points) AS points FROM inserted GROUP BY 1, 2),
            daily AS (
                INSERT INTO reward_daily_earned (program, user_id, business_day, points)
                SELECT %(program)s, user_id, business_day, points FROM days WHERE points > 0
                ON CONFLICT (program, user_id, business_day) DO UPDATE
                SET points = reward_daily_earned.points + EXCLUDED.points
            ),
            moves AS (
                INSERT INTO balance_moves (user_id, points) SELECT user_id, sum(points) FROM days GROUP BY 1
            )
            SELECT count(*), coalesce(sum(amount_minor), 0) FROM inserted
            """,
        values
        | {
            "excluded": list(rules.excluded_types),
            "per_unit": rules.points_per_unit,
            "multipliers": json.dumps({k: str(v) for k, v in rules.multipliers.items()}),
            "cap": rules.daily_cap,
        },
    )


def _claw_back(
    connection: psycopg.Connection, rules: RulesVersion, values: dict[str, object]
) -> tuple[int, int]:
    """The file's refunds, reversals and chargebacks: each takes back the original's awarded points
    in proportion to its amount (rounded as the rules say), never more than the original still
    has: earlier clawbacks of it, in earlier files or earlier in this one, count first. Their
    originals are in earlier files or were inserted by ``earn_statement``. (rows, amount) inserted."""
    rounding = ROUNDING[rules.rounding]
    return _inserted(
        connection.execute(
            f"""
            WITH claims AS (
                SELECT s.*,
                    least(t.points, {rounding}(t.points::numeric * s.amount_minor / t.amount_minor)::bigint)
                        AS wanted,
                    t.points - coalesce((SELECT -sum(x.points) FROM fi_transactions x
                        WHERE x.fi = %(fi)s AND x.original_transaction_id = s.original_transaction_id
                            AND x.reason = 'clawback'), 0) AS left_before_file
                FROM staging s
                JOIN fi_transactions t ON t.fi = %(fi)s AND t.transaction_id = s.original_transaction_id
                WHERE s.type = ANY(%(clawbacks)s)
            ),
            ordered AS (
                SELECT *, sum(wanted) OVER (PARTITION BY original_transaction_id ORDER BY line
                    ROWS UNBOUNDED PRECEDING) - wanted AS claimed_before
                FROM claims
            ),
            inserted AS (
                INSERT INTO fi_transactions ({_INSERTED_COLUMNS})
                SELECT {_FROM_STAGING}, -greatest(0, least(wanted, left_before_file - claimed_before)),
                    'clawback'
                FROM ordered
                ORDER BY transaction_id
                RETURNING user_id, points, amount_minor
            ),
            moves AS (
                INSERT INTO balance_moves (user_id, points)
                SELECT user_id, sum(points) FROM inserted GROUP BY 1
            )
            SELECT count(*), coalesce(sum(amount_minor), 0) FROM inserted
            """,  # type: ignore[arg-type]
            values,
        )
    )
