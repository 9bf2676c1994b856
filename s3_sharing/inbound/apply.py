"""Apply one validated file to PostgreSQL, set-based, inside the caller's transaction.

The clean rows are COPYed into a temporary staging table as they are validated; then a few
statements reject what only the database can judge (a key repeated in the file, an unknown parent,
``create`` of an existing key, ``update`` of a missing one) and apply the rest: an update, an
insert, or an upsert (for a large file, the update of the keys that exist then the insert of the
others). Every rejection lands in the temporary ``rejected`` table with the validation errors, from
which the error file is written in line order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from s3_sharing.inbound.catalog import ENTITIES, PARENT_REFERENCE_CODE, POSTGRES_TYPES
from s3_sharing.inbound.sources import EntityImport
from s3_sharing.inbound.validation import ERROR_COLUMNS, target_fields

COPY_CHUNK = 1 << 20
WORK_MEM = "256MB"
"""For the file's statements: the sort by line and the hash of repeated keys stay in memory."""
SPLIT_UPSERT_ROWS = 10_000
"""From this many staged rows an upsert is an update then an insert (see ``apply_rows``)."""


@dataclass(frozen=True)
class Applied:
    created: int
    updated: int


@dataclass(frozen=True)
class Rejected:
    """Rows only the database could judge: all of them, and those whose parent does not exist."""

    rows: int
    orphaned: int


@contextmanager
def staging(connection: psycopg.Connection, item: EntityImport) -> Iterator[psycopg.Copy]:
    """Temporary ``staging`` (typed like the target) and ``rejected``, and the COPY that fills
    ``staging``: CSV with a ``line`` column and the mapped fields' columns, and a header, written
    while the file is validated, so the server parses one batch while the next is checked."""
    fields = target_fields(item)
    # dropped at commit, but a dry run keeps one transaction (a savepoint per file) for all files
    connection.execute("DROP TABLE IF EXISTS pg_temp.staging, pg_temp.rejected")
    connection.execute("SET LOCAL jit = off")  # compiling the file's plans costs more than it saves
    connection.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    columns = [
        sql.SQL("{} {}").format(sql.Identifier(f.column), sql.SQL(POSTGRES_TYPES[f.type])) for f in fields
    ]
    connection.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE staging (line bigint NOT NULL, {}, parent_id bigint,"
            " first_line bigint) ON COMMIT DROP"
        ).format(sql.SQL(", ").join(columns))
    )
    connection.execute(
        "CREATE TEMPORARY TABLE rejected (line bigint, reference_code text, column_name text, value text,"
        " message text) ON COMMIT DROP"
    )
    names = sql.SQL(", ").join(sql.Identifier(n) for n in ["line", *(f.column for f in fields)])
    statement = sql.SQL("COPY staging ({}) FROM STDIN (FORMAT csv, HEADER true)").format(names)
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        yield copy


def stage_rejected(connection: psycopg.Connection, errors: Path) -> None:
    """``rejected`` from the validation's ``errors``, once ``staging`` is filled."""
    with (
        connection.cursor() as cursor,
        cursor.copy("COPY rejected FROM STDIN (FORMAT csv)") as copy,
        errors.open("rb") as source,
    ):
        while chunk := source.read(COPY_CHUNK):
            copy.write(chunk)
    connection.execute("ANALYZE staging")  # temporary tables get no statistics otherwise: bad join plans


def _reject(
    connection: psycopg.Connection,
    where: sql.Composable,
    column: str,
    value: str,
    message: sql.Composable,
    params: tuple[object, ...] = (),
) -> int:
    """Move the staged rows matching ``where`` to ``rejected`` (``column`` names the header)."""
    connection.execute(
        sql.SQL(
            "INSERT INTO rejected SELECT line, reference_code, %s, {value}, {message}"
            " FROM staging s WHERE {where}"
        ).format(value=sql.Identifier(value), message=message, where=where),
        (column, *params),
    )
    deleted = connection.execute(sql.SQL("DELETE FROM staging s WHERE {where}").format(where=where), params)
    return deleted.rowcount


def reject(
    connection: psycopg.Connection, source_id: str, item: EntityImport, repeated_keys: bool | None
) -> Rejected:
    """Move to ``rejected`` the staged rows only the database can judge. ``repeated_keys`` is the
    validation's answer (False: no key repeats in the file, so none is looked for)."""
    entity = ENTITIES[item.entity]
    key_header, orphaned, repeated = item.mapping["referenceCode"], 0, 0
    if repeated_keys is not False:
        repeated = connection.execute(  # one hash aggregate; only repeated keys are joined back
            "UPDATE staging s SET first_line = d.first_line FROM (SELECT reference_code, min(line) AS"
            " first_line FROM staging GROUP BY reference_code HAVING count(*) > 1) d"
            " WHERE s.reference_code = d.reference_code AND s.line > d.first_line"
        ).rowcount
    count = 0
    if repeated:  # else two more scans of the whole staging table would find nothing
        count = _reject(
            connection,
            sql.SQL("s.first_line IS NOT NULL"),
            key_header,
            "reference_code",
            sql.SQL("'referenceCode repeated in this file (first at line ' || s.first_line || ')'"),
        )
    if entity.parent and PARENT_REFERENCE_CODE in item.mapping:
        connection.execute(
            sql.SQL(
                "UPDATE staging s SET parent_id = p.id FROM {parent} p"
                " WHERE p.source = %s AND p.reference_code = s.parent_reference_code"
            ).format(parent=sql.Identifier(ENTITIES[entity.parent].table)),
            (source_id,),
        )
        orphaned = _reject(
            connection,
            sql.SQL("s.parent_reference_code IS NOT NULL AND s.parent_id IS NULL"),
            item.mapping[PARENT_REFERENCE_CODE],
            "parent_reference_code",
            sql.Literal(
                f"no {entity.parent} with this referenceCode (a parent is imported before its children)"
            ),
        )
        count += orphaned
    if item.action == "create":
        count += _reject(
            connection,
            _existing(entity.table),
            key_header,
            "reference_code",
            sql.Literal(f"already exists in {entity.name}; create does not update (use update or upsert)"),
            (source_id,),
        )
    elif item.action == "update":
        count += _reject(
            connection,
            sql.SQL("NOT ") + _existing(entity.table),
            key_header,
            "reference_code",
            sql.Literal(f"no such {entity.name}; update does not create (use create or upsert)"),
            (source_id,),
        )
    return Rejected(count, orphaned)


def _existing(table: str) -> sql.Composable:
    return sql.SQL(
        "EXISTS (SELECT 1 FROM {t} t WHERE t.source = %s AND t.reference_code = s.reference_code)"
    ).format(t=sql.Identifier(table))


def apply_rows(
    connection: psycopg.Connection, source_id: str, item: EntityImport, import_id: int, staged_rows: int
) -> Applied:
    """Apply every staged row; how many were created and updated. An upsert of ``SPLIT_UPSERT_ROWS``
    rows or more updates the keys that exist, then inserts the others: two joins cost less than
    ``INSERT ... ON CONFLICT``, which probes the key index for every row as it inserts it (a million
    new rows: 5.1 to 5.4 s instead of 7.0 to 8.2 s). A smaller file is one ``ON CONFLICT`` statement:
    its probes are few, while the joins would read every row the source has whenever the table's
    statistics lag behind a burst of files. The caller holds the entity's lock, so no other import
    adds a key between the update and the insert."""
    target = sql.Identifier(ENTITIES[item.entity].table)
    data = [f.column for f in target_fields(item) if f.name != PARENT_REFERENCE_CODE]
    if PARENT_REFERENCE_CODE in item.mapping:
        data.append("parent_id")
    columns = sql.SQL(", ").join(map(sql.Identifier, data))
    changed = [c for c in data if c != "reference_code"]
    insert = sql.SQL(
        "INSERT INTO {t} (source, {columns}, import_id) SELECT %s, {columns}, %s FROM staging s"
    ).format(t=target, columns=columns)
    if item.action == "upsert" and staged_rows < SPLIT_UPSERT_ROWS:
        sets = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in [*changed, "import_id"]
        )
        # xmax is 0 on a freshly inserted row version and set on one that replaced an existing row
        counted = connection.execute(
            sql.SQL(
                "WITH applied AS ({insert} ORDER BY line ON CONFLICT (source, reference_code)"
                " DO UPDATE SET {sets}, updated_at = now() RETURNING xmax = 0 AS created)"
                " SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM applied"
            ).format(insert=insert, sets=sets),
            (source_id, import_id),
        ).fetchone()
        assert counted is not None
        return Applied(created=int(counted[0]), updated=int(counted[1]))
    updated = created = 0
    if item.action != "create":
        sets = sql.SQL(", ").join(
            # an update keeps the parent the row has when the file names none; an upsert sets it
            sql.SQL("parent_id = coalesce(s.parent_id, t.parent_id)")
            if c == "parent_id" and item.action == "update"
            else sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c))
            for c in changed
        )
        updated = connection.execute(
            sql.SQL(
                "UPDATE {t} AS t SET {sets}, import_id = %s, updated_at = now() FROM staging s"
                " WHERE t.source = %s AND t.reference_code = s.reference_code"
            ).format(t=target, sets=sets),
            (import_id, source_id),
        ).rowcount
    if item.action != "update":
        new_keys = sql.SQL(
            " WHERE NOT EXISTS (SELECT 1 FROM {t} t"
            " WHERE t.source = %s AND t.reference_code = s.reference_code)"
        ).format(t=target)
        created = connection.execute(
            insert + (new_keys if item.action == "upsert" else sql.SQL("")) + sql.SQL(" ORDER BY line"),
            (source_id, import_id, source_id) if item.action == "upsert" else (source_id, import_id),
        ).rowcount
    return Applied(created=created, updated=updated)


def write_error_file(connection: psycopg.Connection, target: BinaryIO) -> int:
    """The error file (``ERROR_COLUMNS``), in line order; the number of rejected values."""
    count = connection.execute("SELECT count(*) FROM rejected").fetchone()
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY (SELECT line, reference_code, column_name, value, message FROM rejected"
            " ORDER BY line, column_name) TO STDOUT (FORMAT csv)"
        ) as copy,
    ):
        target.write((",".join(ERROR_COLUMNS) + "\n").encode())
        for chunk in copy:
            target.write(chunk)
    return int(count[0]) if count else 0
