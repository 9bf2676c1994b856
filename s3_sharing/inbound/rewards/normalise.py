"""Normalise a decrypted FI transaction file with DuckDB, set-based (no row loop in Python).

The file is read as text columns into a DuckDB database in the private work directory (so memory
stays bounded by DuckDB's limit, whatever the file's size); one query types and checks every row;
then the clean rows are written as CSV for PostgreSQL's COPY, and the rejected ones, in line
order, for the FI's error file. What the platform stores:

- amounts as exact integers in minor units of their ISO 4217 currency (``12.50`` EUR → 1250), never
  floats; more decimals than the currency has, or a non-positive amount, is a rejected row;
- timestamps in UTC (one without an offset is in the FI's time zone), and the business day, the
  date in the FI's time zone;
- the transaction type mapped from the FI's codes to one of ``TRANSACTION_TYPES``;
- the card as the FI's token. A value that looks like a full card number (13 to 19 digits,
  spaces or dashes allowed, passing the Luhn check) in the card, user or merchant column is never
  stored: the row is rejected and the error file shows the number masked (first 6, last 4).
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from s3_sharing.inbound.rewards.registry import CLAWBACK_TYPES, REQUIRED_FIELDS, TRANSACTION_TYPES
from s3_sharing.inbound.rewards.registry import FinancialInstitution as FI

CURRENCY_EXPONENTS = {
    **dict.fromkeys(
        ("EUR", "USD", "GBP", "CHF", "COP", "MXN", "BRL", "PEN", "ARS", "CAD", "AUD", "SEK", "NOK", "DKK"), 2
    ),
    **dict.fromkeys(("CLP", "JPY", "KRW", "PYG", "ISK"), 0),
    **dict.fromkeys(("KWD", "BHD", "JOD", "OMR", "TND"), 3),
}
"""ISO 4217 minor units of the currencies accepted."""
CLEAN_COLUMNS = (
    "line",
    "transaction_id",
    "user_id",
    "card_token",
    "amount_minor",
    "currency",
    "exponent",
    "occurred_at",
    "business_day",
    "type",
    "mcc",
    "merchant",
    "original_transaction_id",
)
ERROR_COLUMNS = ("line", "transaction_id", "column", "value", "message")
MEMORY_LIMIT = "160MB"

_MACROS = (
    "CREATE MACRO digits_of(s) AS regexp_replace(s, '[ -]', '', 'g')",
    "CREATE MACRO luhn_ok(d) AS (list_sum(list_transform(range(length(d)), lambda i: CASE WHEN i % 2 = 1"
    " THEN (CAST(d[length(d) - i] AS INTEGER) * 2) % 10 + (CAST(d[length(d) - i] AS INTEGER) * 2) // 10"
    " ELSE CAST(d[length(d) - i] AS INTEGER) END)) % 10 = 0)",
    "CREATE MACRO is_pan(s) AS (regexp_full_match(digits_of(s), '[0-9]{13,19}') AND luhn_ok(digits_of(s)))",
    "CREATE MACRO holds_pan(s) AS coalesce(list_bool_or(list_transform("
    "regexp_extract_all(s, '[0-9](?:[ -]?[0-9]){12,18}'), lambda c: luhn_ok(digits_of(c)))), false)",
    "CREATE MACRO masked(s) AS CASE WHEN holds_pan(s) THEN regexp_replace(s, '[0-9](?:[ -]?[0-9]){12,18}',"
    " '[card number masked]', 'g') ELSE s END",
)


class FileRejected(ValueError):
    """The whole file cannot be read as the FI's mapping says (a missing column, no header)."""


@dataclass(frozen=True)
class Normalised:
    clean: Path
    errors: Path
    rows_read: int
    rows_rejected: int
    rows_duplicate: int
    """Rows whose transaction id appeared earlier in the same file (loaded once)."""
    amount_read_minor: int
    amount_rejected_minor: int
    amount_duplicate_minor: int
    extra_headers: list[str]


def read_header(path: Path, fi: FI) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream), None)
    if not header:
        raise FileRejected(f"{fi.owner}: the file is empty (no header line)")
    missing = [f"{fi.mapping[f]!r} ({f})" for f in REQUIRED_FIELDS if fi.mapping[f] not in header]
    if missing:
        raise FileRejected(f"{fi.owner}: required column {', '.join(missing)} is missing from the header")
    return header


def _column(fi: FI, field: str) -> str:
    """The FI's column of ``field`` as a SQL identifier, or NULL when it is not mapped."""
    header = fi.mapping.get(field)
    return "NULL" if header is None else '"' + header.replace('"', '""') + '"'


def normalise(plain: Path, fi: FI, work: Path) -> Normalised:
    header = read_header(plain, fi)
    extra = [h for h in header if h not in fi.mapping.values()]
    clean, errors = work / "clean.csv", work / "errors.csv"
    with duckdb.connect(str(work / "normalise.duckdb")) as con:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute("SET threads = 2")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET TimeZone = ?", [fi.timezone])
        for macro in _MACROS:
            con.execute(macro)
        con.execute("CREATE TABLE currencies (code VARCHAR, exponent INTEGER)")
        con.executemany("INSERT INTO currencies VALUES (?, ?)", list(CURRENCY_EXPONENTS.items()))
        con.execute("CREATE TABLE types (code VARCHAR, type VARCHAR)")
        codes = {t: t for t in TRANSACTION_TYPES} | dict(fi.types)
        con.executemany("INSERT INTO types VALUES (?, ?)", list(codes.items()))
        con.execute(
            "CREATE TABLE source AS SELECT row_number() OVER () + 1 AS line, * FROM read_csv(?,"
            " header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"',"
            " null_padding = true)",
            [str(plain)],
        )
        con.execute(_typed_query(fi))
        _copy(
            con,
            f"SELECT {', '.join(CLEAN_COLUMNS)} FROM typed WHERE problem IS NULL AND NOT duplicate"
            " ORDER BY line",
            clean,
        )
        _copy(
            con,
            "SELECT line, transaction_id, problem.column_name, problem.value, problem.message FROM typed"
            " WHERE problem IS NOT NULL ORDER BY line",
            errors,
        )
        row = con.execute(
            "SELECT count(*), count(*) FILTER (problem IS NOT NULL),"
            " count(*) FILTER (problem IS NULL AND duplicate), coalesce(sum(amount_minor), 0),"
            " coalesce(sum(amount_minor) FILTER (problem IS NOT NULL), 0),"
            " coalesce(sum(amount_minor) FILTER (problem IS NULL AND duplicate), 0) FROM typed"
        ).fetchone()
    assert row is not None
    read, rejected, duplicate, amount, amount_rejected, amount_duplicate = (int(v) for v in row)
    return Normalised(
        clean, errors, read, rejected, duplicate, amount, amount_rejected, amount_duplicate, extra
    )


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    con.execute(f"COPY ({query}) TO '{target}' (FORMAT csv, HEADER true)")  # our own path, no value


CLAWBACK_LIST = ", ".join(f"'{t}'" for t in CLAWBACK_TYPES)
TEXT_FIELDS = ("transaction_id", "user_id", "card_token", "mcc", "merchant", "original_transaction_id")
ROW_CHECKS = (
    ("transaction_id IS NULL", "transaction_id", "transaction id is missing"),
    ("user_id IS NULL", "user_id", "user id is missing"),
    (
        "is_pan(card_token)",
        "card_token",
        "looks like a full card number (PAN): send the card token, never it",
    ),
    ("holds_pan(user_id)", "user_id", "holds what looks like a full card number (PAN)"),
    ("holds_pan(merchant)", "merchant", "holds what looks like a full card number (PAN)"),
    ("exponent IS NULL", "currency", "not an ISO 4217 currency code this platform knows"),
    (
        "coalesce(amount_parts.whole, '') = ''",
        "amount",
        "not a positive amount like 12.50 (point as the decimal separator)",
    ),
    ("amount_exact IS NULL", "amount", "more decimals than the currency has"),
    ("amount_exact <= 0", "amount", "must be above zero (the type tells a refund)"),
    ("amount_exact > 9000000000000000000", "amount", "too large"),
    ("occurred_at IS NULL", "occurred_at", "not a timestamp like 2026-11-22T13:07:00-05:00"),
    ("type IS NULL", "type", "unknown transaction type"),
    (
        "mcc IS NOT NULL AND NOT regexp_full_match(mcc, '[0-9]{4}')",
        "mcc",
        "a merchant category code has 4 digits",
    ),
    (
        f"type IN ({CLAWBACK_LIST}) AND original_transaction_id IS NULL",
        "original_transaction_id",
        "a refund, reversal or chargeback names its original transaction",
    ),
)
"""(condition, field, message) in the order checked: a row's first failing check is its problem."""


def _typed_query(fi: FI) -> str:
    """``typed``: each row's values as stored, and its first problem (column, masked value, message)."""
    fields = ("amount", "currency", "occurred_at", "type", *TEXT_FIELDS)

    def problem(field: str, message: str) -> str:
        column = _quote(fi.mapping.get(field, field))
        return f"{{'column_name': '{column}', 'value': masked(raw_{field}), 'message': '{_quote(message)}'}}"

    raw_values = ",\n        ".join(f"{_column(fi, f)} AS raw_{f}" for f in fields)
    texts = ",\n        ".join(f"nullif(trim(raw_{f}), '') AS {f}" for f in TEXT_FIELDS)
    checks = "\n            ".join(f"WHEN {c} THEN {problem(f, m)}" for c, f, m in ROW_CHECKS)
    amount_pattern = "^([0-9]{1,15})(?:\\.([0-9]{1,9}))?$"
    return f"""
CREATE TABLE typed AS
WITH raw AS (
    SELECT line,
        {raw_values}
    FROM source
),
parsed AS (
    SELECT raw.*,
        {texts},
        upper(trim(raw_currency)) AS currency,
        c.exponent,
        regexp_extract(trim(raw_amount), '{amount_pattern}', ['whole', 'fraction']) AS amount_parts,
        TRY_CAST(trim(raw_occurred_at) AS TIMESTAMPTZ) AS occurred_at,
        t.type
    FROM raw
    LEFT JOIN currencies c ON c.code = upper(trim(raw_currency))
    LEFT JOIN types t ON t.code = trim(raw_type)
),
amounts AS (
    SELECT *,
        CASE WHEN amount_parts.whole <> '' AND exponent IS NOT NULL
              AND length(rtrim(amount_parts.fraction, '0')) <= exponent
            THEN CAST(amount_parts.whole AS HUGEINT) * CAST(pow(10, exponent) AS HUGEINT)
               + CAST(rpad(coalesce(amount_parts.fraction, ''), exponent, '0') || '0' AS HUGEINT) // 10
        END AS amount_exact
    FROM parsed
),
checked AS (
    SELECT *,
        CAST(amount_exact AS BIGINT) AS amount_minor,
        CAST(timezone('{_quote(fi.timezone)}', occurred_at) AS DATE) AS business_day,
        CASE
            {checks}
        END AS problem
    FROM amounts
)
SELECT *,
    problem IS NULL AND row_number() OVER (PARTITION BY transaction_id, problem IS NULL ORDER BY line) > 1
        AS duplicate
FROM checked
"""


def _quote(value: str) -> str:
    return value.replace("'", "''")
