"""Normalise a decrypted FI transaction file with DuckDB, set-based (no row loop in Python).

One streaming DuckDB query reads the file, types and checks every row (so memory stays flat
whatever the file's size); the clean rows are written as CSV into PostgreSQL's COPY as they come,
and the rejected ones, in line order, to the FI's error file. What the platform stores:

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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from s3_sharing.inbound.csv_copy import CopySink, CsvIntoCopy
from s3_sharing.inbound.repeats import KEYS_BUDGET, KeyFingerprints
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
MEMORY_LIMIT = "32MB"
"""DuckDB's, for reading and checking a file. The file's size does not matter (the query streams),
but DuckDB keeps freed blocks up to its limit: a million rows peaked 72 MB higher at 128 MB."""
CSV_BUFFER = 4 << 20
"""DuckDB's CSV read buffer (its default, 32 MB, is most of the limit). A line may be a quarter of it."""
BATCH_ROWS = 16 * 1024

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
    errors: Path
    rows_read: int
    rows_rejected: int
    amount_read_minor: int
    amount_rejected_minor: int
    extra_headers: list[str]
    repeated_ids: bool | None
    """Whether two clean rows may have the same transaction id (``KeyFingerprints.repeated``)."""


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


def _connection(fi: FI) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the checks' macros and lookups, in the FI's time zone. The lookups are
    maps, not tables to join: a join could hash the streamed file instead of the lookup."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET threads = 1")  # the stream is read in order; a second thread gained nothing
    # A literal (the registry checked it names an IANA zone): binding any Python value makes DuckDB
    # import pandas, 36-50 MB of memory that the normalisation does not use.
    con.execute(f"SET TimeZone = '{_quote(fi.timezone)}'")
    for macro in _MACROS:
        con.execute(macro)
    codes = {t: t for t in TRANSACTION_TYPES} | dict(fi.types)
    con.execute(f"CREATE MACRO exponent_of(code) AS {_map_literal(CURRENCY_EXPONENTS)}[code]")
    con.execute(f"CREATE MACRO type_of(code) AS {_map_literal(codes)}[code]")
    return con


def _map_literal(entries: dict[str, str] | dict[str, int]) -> str:
    def literal(value: str | int) -> str:
        return str(value) if isinstance(value, int) else f"'{_quote(value)}'"

    return "MAP {" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in entries.items()) + "}"


def normalise(plain: Path, fi: FI, header: list[str], clean: CopySink, work: Path) -> Normalised:
    """One streaming DuckDB query reads the file (every column as text), types and checks it; its
    result comes in Arrow batches of ``BATCH_ROWS``, so memory stays flat whatever the file's size.
    ``header`` is the file's, as ``read_header`` accepted it. The clean rows go to ``clean`` (the
    staging COPY) as CSV with a header, the rejected ones to ``errors.csv`` in ``work``."""
    extra = [h for h in header if h not in fi.mapping.values()]
    errors = work / "errors.csv"
    totals = [0, 0, 0, 0]
    with (
        _connection(fi) as con,
        errors.open("w", newline="", encoding="utf-8") as error_file,
    ):
        # One thread reads the file in order, so the sequence numbers its lines (the header is 1).
        con.execute("CREATE SEQUENCE line_numbers START 2")
        columns = ", ".join(f"'{_quote(name)}': 'VARCHAR'" for name in header)
        con.execute(
            "CREATE TEMPORARY VIEW source AS SELECT nextval('line_numbers') AS line, * FROM read_csv("
            f"'{_quote(str(plain))}', header = true, auto_detect = false, parallel = false,"
            f" buffer_size = {CSV_BUFFER}, max_line_size = {CSV_BUFFER // 4},"
            f" columns = {{{columns}}})"
        )
        clean_rows, clean_ids = CsvIntoCopy(clean, CLEAN_COLUMNS), KeyFingerprints(KEYS_BUDGET)
        error_writer = csv.writer(error_file)
        error_writer.writerow(ERROR_COLUMNS)
        for batch in _batches(con, fi):
            typed = pa.Table.from_batches([batch])
            rejected = typed.filter(pc.is_valid(typed["problem"])).sort_by("line")
            good = typed.filter(pc.is_null(typed["problem"])).select(list(CLEAN_COLUMNS))
            clean_rows.write(good)
            clean_ids.add(good["transaction_id"].combine_chunks())
            problems = rejected["problem"].combine_chunks()
            error_writer.writerows(
                zip(
                    rejected["line"].to_pylist(),
                    rejected["transaction_id"].to_pylist(),
                    problems.field("column_name").to_pylist(),
                    problems.field("value").to_pylist(),
                    problems.field("message").to_pylist(),
                    strict=True,
                )
            )
            totals[0] += typed.num_rows
            totals[1] += rejected.num_rows
            totals[2] += pc.sum(typed["amount_minor"]).as_py() or 0
            totals[3] += pc.sum(rejected["amount_minor"]).as_py() or 0
    return Normalised(errors, *totals, extra, clean_ids.repeated())


def _batches(con: duckdb.DuckDBPyConnection, fi: FI) -> Iterator[pa.RecordBatch]:
    """The typed rows; a file whose CSV breaks on some line is rejected whole, naming the line."""
    try:
        yield from con.execute(_typed_query(fi)).to_arrow_reader(BATCH_ROWS)
    except (duckdb.InvalidInputException, OSError) as error:  # Arrow's stream reraises it as OSError
        if "CSV Error" not in str(error):
            raise
        raise FileRejected(f"{fi.owner}: the file cannot be read as CSV: {_csv_problem(error)}") from None


def _csv_problem(error: Exception) -> str:
    """Where and how DuckDB says the CSV breaks: its first line (the line number) and the last one
    before its advice (what is wrong), never the line it quotes, which may hold a card number."""
    advice = re.split("Possible (?:fixes|Solution)", str(error))[0]
    lines = [line.strip() for line in advice.splitlines() if line.strip()]
    where = lines[0].removeprefix("Invalid Input Error: ")
    quoted = next((n for n, line in enumerate(lines) if line.startswith("Original Line")), len(lines))
    if quoted < len(lines) and lines[quoted].rstrip(":").strip() == "Original Line":
        quoted += 1  # the quoted line is on the next line
    what = lines[-1] if len(lines) - 1 > quoted else ""
    return PAN_LIKE.sub("[digits left out]", f"{where}: {what}" if what else where)


PAN_LIKE = re.compile(r"\d[\d -]{11,}\d")


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
    """Each row of ``source`` (a batch) with its values as stored and its first problem (column,
    masked value, message)."""
    fields = ("amount", "currency", "occurred_at", "type", *TEXT_FIELDS)

    def problem(field: str, message: str) -> str:
        column = _quote(fi.mapping.get(field, field))
        return f"{{'column_name': '{column}', 'value': masked(raw_{field}), 'message': '{_quote(message)}'}}"

    raw_values = ",\n        ".join(f"{_column(fi, f)} AS raw_{f}" for f in fields)
    texts = ",\n        ".join(f"nullif(trim(raw_{f}), '') AS {f}" for f in TEXT_FIELDS)
    checks = "\n            ".join(f"WHEN {c} THEN {problem(f, m)}" for c, f, m in ROW_CHECKS)
    amount_pattern = "^([0-9]{1,15})(?:\\.([0-9]{1,9}))?$"
    return f"""
WITH raw AS (
    SELECT line,
        {raw_values}
    FROM source
),
parsed AS (
    SELECT raw.*,
        {texts},
        upper(trim(raw_currency)) AS currency,
        exponent_of(upper(trim(raw_currency))) AS exponent,
        regexp_extract(trim(raw_amount), '{amount_pattern}', ['whole', 'fraction']) AS amount_parts,
        TRY_CAST(trim(raw_occurred_at) AS TIMESTAMPTZ) AS occurred_at,
        type_of(trim(raw_type)) AS type
    FROM raw
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
SELECT * REPLACE (timezone('UTC', occurred_at) AS occurred_at)  -- UTC, and no offset: fast to write
FROM checked
"""


def _quote(value: str) -> str:
    return value.replace("'", "''")
