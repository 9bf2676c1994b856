"""Load one normalised file into PostgreSQL, set-based, inside the caller's transaction: the file is
COPYed into staging as it is normalised, then a few statements: repeats within the file and
duplicates of earlier files set aside, clawbacks whose original is unknown rejected, the
transactions inserted, one reward row per transaction computed by the file's rules version (points,
multipliers, exclusions, the daily cap, rounding, clawbacks), and the balances moved by exactly the
sum of the new reward rows.
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
    """Take back what earlier attempts of a file loaded (a replay recomputes it): their reward
    rows leave the balances, then their rows and transactions go."""
    if not file_ids:
        return
    connection.execute(
        "UPDATE reward_balances b SET points = b.points - r.points, updated_at = now() FROM"
        " (SELECT program, user_id, sum(points) AS points FROM reward_points WHERE file_id = ANY(%s)"
        " GROUP BY 1, 2) r WHERE b.program = r.program AND b.user_id = r.user_id",
        (file_ids,),
    )
    connection.execute(
        "UPDATE reward_daily_earned d SET points = d.points - r.points FROM (SELECT program, user_id,"
        " business_day, sum(points) AS points FROM reward_points WHERE file_id = ANY(%s) AND points > 0"
        " GROUP BY 1, 2, 3) r WHERE (d.program, d.user_id, d.business_day) = (r.program, r.user_id,"
        " r.business_day)",
        (file_ids,),
    )
    connection.execute("DELETE FROM reward_points WHERE file_id = ANY(%s)", (file_ids,))
    connection.execute("DELETE FROM fi_transactions WHERE file_id = ANY(%s)", (file_ids,))


def load(
    connection: psycopg.Connection,
    fi: str,
    program: str,
    rules: RulesVersion,
    file_id: int,
    repeated_ids: bool | None,
) -> Loaded:
    """The staged file into the transactions, reward points and balances. ``repeated_ids`` is the
    normalisation's answer (False: no id repeats in the file, so none is looked for)."""
    connection.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    connection.execute("SET LOCAL jit = off")  # compiling these plans costs more than it saves
    connection.execute("ANALYZE staging")
    connection.execute("CREATE TEMPORARY TABLE balance_moves (user_id text, points bigint) ON COMMIT DROP")
    earlier = connection.execute(
        "WITH gone AS (DELETE FROM staging s USING fi_transactions t WHERE t.fi = %s"
        " AND t.transaction_id = s.transaction_id RETURNING s.amount_minor)"
        " SELECT count(*), coalesce(sum(amount_minor), 0) FROM gone",
        (fi,),
    ).fetchone()
    repeated = (0, 0)
    if repeated_ids is not False:
        repeated = connection.execute(  # one hash aggregate finds the ids repeated in the file
            "WITH first AS (SELECT transaction_id, min(line) AS line FROM staging GROUP BY 1"
            " HAVING count(*) > 1), gone AS (DELETE FROM staging s USING first f"
            " WHERE s.transaction_id = f.transaction_id AND s.line > f.line RETURNING s.amount_minor)"
            " SELECT count(*), coalesce(sum(amount_minor), 0) FROM gone"
        ).fetchone()
    assert earlier is not None and repeated is not None
    unknown = connection.execute(
        "DELETE FROM staging s WHERE s.type = ANY(%(claw)s) AND NOT EXISTS (SELECT 1 FROM fi_transactions t"
        " WHERE t.fi = %(fi)s AND t.transaction_id = s.original_transaction_id AND t.type <> ALL(%(claw)s))"
        " AND NOT EXISTS (SELECT 1 FROM staging o WHERE o.transaction_id = s.original_transaction_id"
        " AND o.type <> ALL(%(claw)s)) RETURNING line, transaction_id, original_transaction_id, amount_minor",
        {"claw": list(CLAWBACK_TYPES), "fi": fi},
    ).fetchall()
    inserted = connection.execute(
        "WITH inserted AS (INSERT INTO fi_transactions (fi, transaction_id, user_id, card_token,"
        " amount_minor, currency, occurred_at, business_day, type, mcc, merchant, original_transaction_id,"
        " file_id) SELECT %s, transaction_id, user_id, card_token, amount_minor, currency,"
        " occurred_at AT TIME ZONE 'UTC', business_day, type, mcc, merchant, original_transaction_id, %s"
        " FROM staging"
        " ORDER BY transaction_id"  # the primary key's order: index pages filled in turn, not at random
        " RETURNING amount_minor)"
        " SELECT count(*), coalesce(sum(amount_minor), 0) FROM inserted",
        (fi, file_id),
    ).fetchone()
    assert inserted is not None
    _earn(connection, fi, program, rules, file_id)
    _claw_back(connection, fi, program, rules, file_id)
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
        int(inserted[0]),
        int(inserted[1]),
        int(earlier[0]) + int(repeated[0]),
        int(earlier[1]) + int(repeated[1]),
        int(moved[0]),
        unknown,
    )


def _earn(connection: psycopg.Connection, fi: str, program: str, rules: RulesVersion, file_id: int) -> None:
    """Purchases (and the other earning types) earn ``points_per_unit`` per major unit times their
    merchant category's multiplier, rounded per transaction; excluded types earn 0; the daily cap
    counts what the user earned that business day in earlier files, then this file's transactions
    in time order. The days' totals are kept; what each user earned goes to ``balance_moves``."""
    rounding = ROUNDING[rules.rounding]
    connection.execute(
        f"""
        WITH base AS (
            SELECT s.transaction_id, s.user_id, s.business_day, s.occurred_at, s.type,
                CASE WHEN s.type = ANY(%(excluded)s) THEN 0
                    ELSE {rounding}(s.amount_minor::numeric * %(per_unit)s / (10 ^ s.exponent)::bigint
                        * coalesce(m.factor, 1))::bigint
                END AS points
            FROM staging s
            LEFT JOIN (SELECT key AS mcc, value::numeric AS factor FROM jsonb_each_text(%(multipliers)s)) m
                ON m.mcc = s.mcc
            WHERE s.type <> ALL(%(clawbacks)s)
        ),
        earlier AS (
            SELECT d.user_id, d.business_day, d.points AS earned FROM reward_daily_earned d
            JOIN (SELECT DISTINCT user_id, business_day FROM base) k USING (user_id, business_day)
            WHERE d.program = %(program)s
        ),
        running AS (
            SELECT b.*, coalesce(e.earned, 0) + sum(b.points) OVER (PARTITION BY b.user_id, b.business_day
                ORDER BY b.occurred_at, b.transaction_id ROWS UNBOUNDED PRECEDING) - b.points AS before
            FROM base b LEFT JOIN earlier e USING (user_id, business_day)
        ),
        capped AS (
            SELECT *, CASE WHEN %(cap)s::bigint IS NULL THEN points
                ELSE greatest(0, least(points, %(cap)s::bigint - before)) END AS awarded
            FROM running
        ),
        rewarded AS (
            INSERT INTO reward_points (fi, transaction_id, program, user_id, business_day, rules_version,
                points, reason, file_id)
            SELECT %(fi)s, transaction_id, %(program)s, user_id, business_day, %(version)s, awarded,
                CASE WHEN type = ANY(%(excluded)s) THEN 'excluded' WHEN awarded < points THEN 'capped'
                    ELSE 'earned' END,
                %(file_id)s
            FROM capped
            ORDER BY transaction_id
            RETURNING user_id, business_day, points
        ),
        daily AS (
            INSERT INTO reward_daily_earned (program, user_id, business_day, points)
            SELECT %(program)s, user_id, business_day, sum(points) FROM rewarded WHERE points > 0
            GROUP BY 2, 3
            ON CONFLICT (program, user_id, business_day) DO UPDATE
            SET points = reward_daily_earned.points + EXCLUDED.points
        )
        INSERT INTO balance_moves (user_id, points) SELECT user_id, sum(points) FROM rewarded GROUP BY 1
        """,  # type: ignore[arg-type]  # only our own rounding function name is formatted in
        {
            "excluded": list(rules.excluded_types),
            "per_unit": rules.points_per_unit,
            "multipliers": json.dumps({k: str(v) for k, v in rules.multipliers.items()}),
            "clawbacks": list(CLAWBACK_TYPES),
            "program": program,
            "cap": rules.daily_cap,
            "fi": fi,
            "version": rules.version,
            "file_id": file_id,
        },
    )


def _claw_back(
    connection: psycopg.Connection, fi: str, program: str, rules: RulesVersion, file_id: int
) -> None:
    """A refund, reversal or chargeback takes back the original's awarded points in proportion to
    its amount (rounded as the rules say), never more than the original still has: earlier
    clawbacks of it, in earlier files or earlier in this one, count first."""
    rounding = ROUNDING[rules.rounding]
    connection.execute(
        f"""
        WITH claims AS (
            SELECT s.line, s.transaction_id, s.user_id, s.business_day, s.original_transaction_id,
                least(o.points, {rounding}(o.points::numeric * s.amount_minor / t.amount_minor)::bigint)
                    AS wanted,
                o.points - coalesce((SELECT -sum(p.points) FROM reward_points p JOIN fi_transactions x
                    ON x.fi = p.fi AND x.transaction_id = p.transaction_id
                    WHERE x.fi = %(fi)s AND x.original_transaction_id = s.original_transaction_id
                        AND p.reason = 'clawback'), 0) AS left_before_file
            FROM staging s
            JOIN fi_transactions t ON t.fi = %(fi)s AND t.transaction_id = s.original_transaction_id
            JOIN reward_points o ON o.fi = t.fi AND o.transaction_id = t.transaction_id
            WHERE s.type = ANY(%(clawbacks)s)
        ),
        ordered AS (
            SELECT *, sum(wanted) OVER (PARTITION BY original_transaction_id ORDER BY line
                ROWS UNBOUNDED PRECEDING) - wanted AS claimed_before
            FROM claims
        ),
        clawed AS (
            INSERT INTO reward_points (fi, transaction_id, program, user_id, business_day, rules_version,
                points, reason, file_id)
            SELECT %(fi)s, transaction_id, %(program)s, user_id, business_day, %(version)s,
                -greatest(0, least(wanted, left_before_file - claimed_before)), 'clawback', %(file_id)s
            FROM ordered
            RETURNING user_id, points
        )
        INSERT INTO balance_moves (user_id, points) SELECT user_id, sum(points) FROM clawed GROUP BY 1
        """,  # type: ignore[arg-type]
        {
            "fi": fi,
            "clawbacks": list(CLAWBACK_TYPES),
            "program": program,
            "version": rules.version,
            "file_id": file_id,
        },
    )
