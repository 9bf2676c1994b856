"""Streaming reads from the warehouse as Arrow record batches.

Delivery code depends only on the ``Warehouse`` protocol. Queries are ``WindowQuery`` (the rows of a
window), ``LatestQuery`` (the newest version of each key as of a moment) or ``WindowCountsQuery``
(rows per business and window) values, or build on them:
identifiers are validated, every value is a bound parameter, and each backend renders its own
quoting and parameter markers. DuckDB is the embedded default; BigQuery serves production.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import duckdb
import pyarrow as pa
from pydantic import Field

DEFAULT_BATCH_ROWS = 16 * 1024
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MEMORY_SIZE = r"^[0-9]+(\.[0-9]+)? ?(B|KB|MB|GB|KiB|MiB|GiB)$"
"""A DuckDB memory size such as ``32MB``: it is written into a ``SET`` statement."""


class WarehouseError(RuntimeError):
    """The warehouse cannot be read; the message says what and where."""


class RelationMissing(WarehouseError):
    """A model's table is not built yet (a new deployment before its first dbt run)."""

    def __init__(self, relation: Relation, where: str) -> None:
        super().__init__(
            f"{relation.schema}.{relation.identifier} does not exist in {where}: build the marts first"
        )


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid SQL identifier")
    return name


def naive_utc(moment: datetime) -> datetime:
    """Warehouse timestamps are UTC without a zone; bind them the same way."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Relation:
    database: str | None
    schema: str
    identifier: str

    def __post_init__(self) -> None:
        for part in (self.database, self.schema, self.identifier):
            if part is not None:
                _identifier(part)


@dataclass(frozen=True)
class WindowQuery:
    """Rows of ``relation`` whose ``window_column`` falls in [start, end), filtered by equality.

    ``equals`` maps columns to values (e.g. the business id); values are always bound.
    """

    relation: Relation
    window_column: str
    start: datetime
    end: datetime
    equals: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    order_by: tuple[str, ...] = field(default=())
    among: tuple[str, tuple[str, ...]] | None = None
    """(column, values): only the rows whose column holds one of the values (bound as ``in_0`` …)."""

    def __post_init__(self) -> None:
        names = [self.window_column, *self.columns, *self.order_by, *(c for c, _ in self.equals)]
        for name in names + ([self.among[0]] if self.among else []):
            _identifier(name)
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")
        if self.among is not None and not self.among[1]:
            raise ValueError(f"no values for {self.among[0]} to be among")

    @property
    def sorts(self) -> bool:
        return bool(self.order_by)

    def parameters(self) -> dict[str, Any]:
        bound: dict[str, Any] = {"window_start": naive_utc(self.start), "window_end": naive_utc(self.end)}
        bound.update({f"eq_{n}": value for n, (_, value) in enumerate(self.equals)})
        return bound | (among_parameters(self.among[1]) if self.among else {})

    def render(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        selected = ", ".join(quote(c) for c in self.columns) if self.columns else "*"
        window = quote(self.window_column)
        conditions = [f"{window} >= {marker('window_start')}", f"{window} < {marker('window_end')}"]
        conditions += equal_to(self.equals, quote, marker)
        if self.among:
            column, values = self.among
            conditions.append(
                f"{quote(column)} in ({', '.join(marker(f'in_{n}') for n in range(len(values)))})"
            )
        return ordered(
            f"select {selected} from {table} where {' and '.join(conditions)}", self.order_by, quote
        )

    def render_count(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        inner = replace(self, columns=(), order_by=())
        return count_of(inner.render(table, quote, marker))


@dataclass(frozen=True)
class WindowCountsQuery:
    """How many rows of ``relation`` each of ``group_values`` (of ``group_column``) has in each of
    ``windows``: one grouped query instead of one count per business and window. Its rows are
    (group value, window index, row count), for the pairs with rows only."""

    relation: Relation
    window_column: str
    windows: tuple[tuple[datetime, datetime], ...]
    group_column: str
    group_values: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in (self.window_column, self.group_column):
            _identifier(name)
        if not self.windows or not self.group_values:
            raise ValueError("a count needs windows and values to group by")
        if any(end <= start for start, end in self.windows):
            raise ValueError(f"an empty window among {self.windows}")

    @property
    def sorts(self) -> bool:
        return False

    def parameters(self) -> dict[str, Any]:
        bound: dict[str, Any] = {}
        for n, (start, end) in enumerate(self.windows):
            bound |= {f"start_{n}": naive_utc(start), f"end_{n}": naive_utc(end)}
        return bound | among_parameters(self.group_values)

    def render(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        moment, group = quote(self.window_column), quote(self.group_column)
        cases = " ".join(
            f"when {moment} >= {marker(f'start_{n}')} and {moment} < {marker(f'end_{n}')} then {n}"
            for n in range(len(self.windows))
        )
        first = min(range(len(self.windows)), key=lambda n: self.windows[n][0])
        last = max(range(len(self.windows)), key=lambda n: self.windows[n][1])
        span = f"{moment} >= {marker(f'start_{first}')} and {moment} < {marker(f'end_{last}')}"
        groups = among(self.group_column, self.group_values, quote, marker)
        return (
            f"select {group} as group_value, case {cases} end as window_index, count(*) as row_count "
            f"from {table} where {span} and {groups} group by 1, 2"
        )

    def render_count(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        return count_of(self.render(table, quote, marker))


@dataclass(frozen=True)
class LatestQuery:
    """The newest version (by ``version_column``, then ``received_column``) of each ``key_column``
    among the rows received before ``as_of``: the state as the platform knew it then. Filtered by
    equality, and to ``since_column >= since`` when both are given (a look-back)."""

    relation: Relation
    key_column: str
    version_column: str
    received_column: str
    as_of: datetime
    equals: tuple[tuple[str, str], ...] = ()
    since_column: str | None = None
    since: datetime | None = None
    order_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [self.key_column, self.version_column, self.received_column, *self.order_by]
        for name in [
            *names,
            *(c for c, _ in self.equals),
            *([self.since_column] if self.since_column else []),
        ]:
            _identifier(name)
        if (self.since_column is None) != (self.since is None):
            raise ValueError("since_column and since go together")

    @property
    def sorts(self) -> bool:
        return True  # the newest version of each key: a window over every key

    def parameters(self) -> dict[str, Any]:
        bound: dict[str, Any] = {"as_of": naive_utc(self.as_of)}
        if self.since is not None:
            bound["since"] = naive_utc(self.since)
        bound.update({f"eq_{n}": value for n, (_, value) in enumerate(self.equals)})
        return bound

    def render(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        conditions = [f"{quote(self.received_column)} < {marker('as_of')}"]
        conditions += equal_to(self.equals, quote, marker)
        if self.since_column:
            conditions.append(f"{quote(self.since_column)} >= {marker('since')}")
        newest = f"{quote(self.version_column)} desc, {quote(self.received_column)} desc"
        sql = (
            f"select * from {table} where {' and '.join(conditions)} "
            f"qualify row_number() over (partition by {quote(self.key_column)} order by {newest}) = 1"
        )
        return ordered(sql, self.order_by, quote)

    def render_count(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str:
        return count_of(replace(self, order_by=()).render(table, quote, marker))


def equal_to(
    equals: tuple[tuple[str, str], ...], quote: Callable[[str], str], marker: Callable[[str], str]
) -> list[str]:
    """``column = <bound value>`` conditions; the values are bound as ``eq_0``, ``eq_1``, ..."""
    return [f"{quote(column)} = {marker(f'eq_{n}')}" for n, (column, _) in enumerate(equals)]


def among(
    column: str, values: tuple[str, ...], quote: Callable[[str], str], marker: Callable[[str], str]
) -> str:
    """``column in (<bound values>)``; the values are bound as ``in_0``, ``in_1``, ..."""
    return f"{quote(column)} in ({', '.join(marker(f'in_{n}') for n in range(len(values)))})"


def among_parameters(values: tuple[str, ...]) -> dict[str, str]:
    return {f"in_{n}": value for n, value in enumerate(values)}


def ordered(sql: str, order_by: tuple[str, ...], quote: Callable[[str], str]) -> str:
    return sql + (" order by " + ", ".join(quote(c) for c in order_by) if order_by else "")


def count_of(sql: str) -> str:
    return f"select count(*) as row_count from ({sql}) as counted"


class Query(Protocol):
    """What a backend needs of a query: the table it reads, its bound values, and its SQL."""

    @property
    def relation(self) -> Relation: ...

    @property
    def sorts(self) -> bool:
        """Whether the query sorts or partitions its rows (it needs more memory than a scan)."""
        ...

    def parameters(self) -> dict[str, Any]: ...

    def render(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str: ...

    def render_count(self, table: str, quote: Callable[[str], str], marker: Callable[[str], str]) -> str: ...


class Warehouse(Protocol):
    def stream(self, query: Query, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The query's rows, a bounded batch at a time."""
        ...

    def count(self, query: Query) -> int:
        """How many rows the query returns, counted in the warehouse."""
        ...


def _double_quote(name: str) -> str:
    return f'"{name}"'


class DuckDBWarehouse(dg.ConfigurableResource):
    """The embedded DuckDB file that dbt's ``dev`` target builds (opened read-only)."""

    path: str
    memory_limit: str = Field(default="32MB", pattern=MEMORY_SIZE)
    """DuckDB's memory while a scan streams (a window's rows, unordered). It is the file's DuckDB
    instance's, which every connection of the process to the file shares, and DuckDB keeps the
    file's blocks it has read up to it: a 1.25M-row stream took 90 MB above the process's imports
    at 32 MB and 180 MB at 128 MB, in the same time."""
    sort_memory_limit: str = Field(default="64MB", pattern=MEMORY_SIZE)
    """While a query that sorts streams (rows grouped by user, the newest version of each key): a
    sort of 1.25M rows fails at 32 MB and completes at 64 MB on one thread, spilling beyond it."""
    threads: int = 1
    """DuckDB's threads: a delivery's other work (encryption, hashing, uploads) uses the other
    cores, and each DuckDB thread holds its own sort memory."""
    max_streams: int = 1
    """Queries of this file streaming at once in the process. DuckDB fails a query that finds the
    shared memory limit taken instead of waiting: four deliveries sorting 1.25M rows each at once
    failed with out-of-memory. So deliveries take turns reading the warehouse and overlap in
    sealing and uploading, where their time goes. The first stream of a file fixes its count."""

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not Path(self.path).exists():
            raise WarehouseError(
                f"DuckDB warehouse file {self.path} does not exist: run `s3-sharing generate`"
            )
        config = {"memory_limit": self.memory_limit, "threads": self.threads}
        return duckdb.connect(self.path, read_only=True, config=config)

    @staticmethod
    def _table(relation: Relation) -> str:
        # The catalog name of a DuckDB file is its file name: leave it out so the file can move.
        return f"{_double_quote(relation.schema)}.{_double_quote(relation.identifier)}"

    def _execute(self, con: duckdb.DuckDBPyConnection, sql: str, query: Query) -> duckdb.DuckDBPyConnection:
        try:
            return con.execute(sql, query.parameters())
        except duckdb.CatalogException:
            raise RelationMissing(query.relation, self.path) from None

    def stream(self, query: Query, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        sql = query.render(self._table(query.relation), _double_quote, lambda name: f"${name}")
        with _stream_turn(self.path, self.max_streams) as alone, self._connect() as con:
            # The limit is the instance's: only a stream that is the only one may lower it.
            limit = self.memory_limit if alone and not query.sorts else self.sort_memory_limit
            con.execute(f"SET memory_limit = '{limit}'")
            yield from self._execute(con, sql, query).to_arrow_reader(batch_rows)

    def count(self, query: Query) -> int:
        sql = query.render_count(self._table(query.relation), _double_quote, lambda name: f"${name}")
        with self._connect() as con:
            row = self._execute(con, sql, query).fetchone()
        return int(row[0]) if row else 0


_TURNS: dict[str, threading.BoundedSemaphore] = {}
_TURNS_LOCK = threading.Lock()
_HELD = threading.local()


@contextmanager
def _stream_turn(path: str, max_streams: int) -> Iterator[bool]:
    """Wait for one of the file's ``max_streams`` turns; yields whether this stream is the only one
    reading the file. A thread that holds a turn already (a stream read inside another) goes on:
    it would otherwise wait for itself."""
    held: set[str] = _HELD.__dict__.setdefault("paths", set())
    if path in held:
        yield False
        return
    with _TURNS_LOCK:
        turns = _TURNS.setdefault(path, threading.BoundedSemaphore(max(1, max_streams)))
    with turns:
        held.add(path)
        try:
            yield max_streams <= 1
        finally:
            held.discard(path)


def _backtick(name: str) -> str:
    return f"`{name}`"


def _bigquery_parameter(name: str, value: Any) -> Any:
    from google.cloud import bigquery

    kind = "TIMESTAMP" if isinstance(value, datetime) else "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


class BigQueryWarehouse(dg.ConfigurableResource):
    """BigQuery (dbt target ``prod``); results stream through the BigQuery Storage Read API."""

    project: str
    location: str = "EU"

    def _client(self) -> Any:
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, location=self.location)

    def _run(self, sql: str, query: Query, page_size: int | None = None) -> Any:
        """The finished query's rows."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[_bigquery_parameter(k, v) for k, v in query.parameters().items()]
        )
        try:
            return (
                self._client()
                .query(sql, job_config=config, location=self.location)
                .result(page_size=page_size)
            )
        except NotFound:
            raise RelationMissing(query.relation, f"project {self.project}") from None

    @staticmethod
    def _table(relation: Relation) -> str:
        parts = [p for p in (relation.database, relation.schema, relation.identifier) if p]
        return ".".join(_backtick(p) for p in parts)

    def stream(self, query: Query, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        from google.cloud import bigquery_storage

        sql = query.render(self._table(query.relation), _backtick, lambda name: f"@{name}")
        rows = self._run(sql, query, page_size=batch_rows)
        yield from rows.to_arrow_iterable(bqstorage_client=bigquery_storage.BigQueryReadClient())

    def count(self, query: Query) -> int:
        sql = query.render_count(self._table(query.relation), _backtick, lambda name: f"@{name}")
        for row in self._run(sql, query):
            return int(row["row_count"])
        return 0
