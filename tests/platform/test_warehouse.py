import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from s3_sharing.outbound import certification
from s3_sharing.platform import warehouse as wh
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import (
    BigQueryWarehouse,
    DuckDBWarehouse,
    Relation,
    WindowCountsQuery,
    WindowQuery,
)

START = datetime(2026, 1, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=1)


@pytest.fixture
def duckdb_file(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.rows (business_id varchar, n integer, updated_at timestamp)")
        con.execute(
            """insert into marts.rows
               select case when i % 2 = 0 then 'acme' else 'globex' end, i,
                      timestamp '2026-01-01 09:59:59' + to_seconds(i)
               from range(0, 3700) t(i)"""
        )
    return path


def _query(**overrides) -> WindowQuery:
    values = {
        "relation": Relation("ignored_catalog", "marts", "rows"),
        "window_column": "updated_at",
        "start": START,
        "end": END,
        "equals": (("business_id", "acme"),),
        "order_by": ("n",),
    }
    return WindowQuery(**{**values, **overrides})


def test_duckdb_streams_bounded_batches_of_the_window(duckdb_file):
    warehouse = DuckDBWarehouse(path=str(duckdb_file))
    batches = list(warehouse.stream(_query(), batch_rows=500))
    assert len(batches) > 1
    assert all(b.num_rows <= 500 for b in batches)
    table = pa.Table.from_batches(batches)
    n = table.column("n").to_pylist()
    # i=1 is 10:00:00 (inside), i=3601 is 11:00:00 (outside: the window is half-open).
    assert n == [i for i in range(1, 3601) if i % 2 == 0]
    assert set(table.column("business_id").to_pylist()) == {"acme"}
    assert warehouse.count(_query()) == len(n)


def test_values_are_bound_never_spliced(duckdb_file):
    warehouse = DuckDBWarehouse(path=str(duckdb_file))
    hostile = _query(equals=(("business_id", "acme' or '1'='1"),))
    assert warehouse.count(hostile) == 0
    assert "acme" not in hostile.render("t", str, lambda name: f"${name}")


def test_rows_per_business_and_window_are_counted_by_grouped_queries(duckdb_file, monkeypatch):
    monkeypatch.setattr(certification, "WINDOWS_PER_COUNT", 4)  # 7 windows: two queries
    sent = []
    monkeypatch.setattr(wh.DuckDBWarehouse, "_execute", _recording(wh.DuckDBWarehouse._execute, sent))
    warehouse = DuckDBWarehouse(path=str(duckdb_file))
    minutes = [0, 10, 20, 30, 40, 52, 65]  # ten-minute windows; the last two adjacent to none
    windows = [
        Window(f"m{m}", START + timedelta(minutes=m), START + timedelta(minutes=m + 10)) for m in minutes
    ]
    relation = Relation(None, "marts", "rows")
    businesses = ["acme", "globex", "initech"]  # initech has no rows
    counts = certification.counts_by_window(warehouse, relation, "updated_at", businesses, windows)
    expected = {
        b: [warehouse.count(_query(start=w.start, end=w.end, equals=(("business_id", b),))) for w in windows]
        for b in businesses
    }
    assert counts == expected
    assert counts["acme"][0] == 300 and counts["initech"] == [0] * 7
    assert len(sent) == 2 + 21  # the two grouped queries, then the 21 counts of the expectation


def _recording(execute, sent):
    def recorded(self, con, sql, query):
        sent.append(sql)
        return execute(self, con, sql, query)

    return recorded


def test_grouped_counts_bind_their_values():
    query = WindowCountsQuery(
        Relation(None, "marts", "rows"), "updated_at", ((START, END),), "business_id", ("x' or 1=1",)
    )
    sql = query.render("t", str, lambda name: f"@{name}")
    assert "x'" not in sql and "@in_0" in sql and "@start_0" in sql
    assert query.parameters() == {
        "start_0": START.replace(tzinfo=None),
        "end_0": END.replace(tzinfo=None),
        "in_0": "x' or 1=1",
    }


@pytest.mark.parametrize("name", ["a b", "x;drop", 'q"', ""])
def test_identifiers_are_validated(name):
    with pytest.raises(ValueError, match="not a valid SQL identifier"):
        _query(window_column=name)


def test_missing_duckdb_file_is_a_clear_error(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "absent.duckdb"))
    with pytest.raises(wh.WarehouseError, match=r"absent\.duckdb does not exist"):
        warehouse.count(_query())


def test_a_model_not_built_yet_is_named(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    warehouse = DuckDBWarehouse(path=str(path))
    with pytest.raises(
        wh.RelationMissing, match=r"marts\.rows does not exist in .*empty\.duckdb: build the marts first"
    ):
        warehouse.count(_query())
    with pytest.raises(wh.RelationMissing):
        next(warehouse.stream(_query()))


class _FakeBigQuery:
    """BigQuery itself cannot run here: this stands in for google.cloud.bigquery.Client and records
    what the resource sends, so the test checks the SQL text and the bound parameters."""

    def __init__(self, rows: pa.Table) -> None:
        self.rows = rows
        self.sent: list[tuple[str, object]] = []

    def query(self, sql, job_config, location):
        self.sent.append((sql, job_config))
        return self

    def result(self, page_size=None):
        return self

    def to_arrow_iterable(self, bqstorage_client):
        return iter(self.rows.to_batches(max_chunksize=2))


def test_bigquery_renders_backticks_and_named_parameters(monkeypatch):
    fake = _FakeBigQuery(pa.table({"n": [1, 2, 3]}))
    monkeypatch.setattr(BigQueryWarehouse, "_client", lambda self: fake)
    monkeypatch.setattr("google.cloud.bigquery_storage.BigQueryReadClient", lambda: None)
    warehouse = BigQueryWarehouse(project="proj", location="EU")
    batches = list(warehouse.stream(_query(relation=Relation("proj", "s3_sharing_marts", "fi_data"))))
    assert sum(b.num_rows for b in batches) == 3
    sql, config = fake.sent[0]
    assert sql == (
        "select * from `proj`.`s3_sharing_marts`.`fi_data` where `updated_at` >= @window_start"
        " and `updated_at` < @window_end and `business_id` = @eq_0 order by `n`"
    )
    parameters = {p.name: (p.type_, p.value) for p in config.query_parameters}
    assert parameters == {
        "window_start": ("TIMESTAMP", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        "window_end": ("TIMESTAMP", datetime(2026, 1, 1, 11, tzinfo=UTC)),
        "eq_0": ("STRING", "acme"),
    }


def test_a_bigquery_table_not_built_yet_is_named(monkeypatch):
    """Mocked BigQuery (see ``_FakeBigQuery``): the job fails with BigQuery's NotFound."""
    from google.api_core.exceptions import NotFound

    class _Missing(_FakeBigQuery):
        def result(self, page_size=None):
            raise NotFound("Not found: Table proj:s3_sharing_marts.fi_data")

    monkeypatch.setattr(BigQueryWarehouse, "_client", lambda self: _Missing(pa.table({})))
    warehouse = BigQueryWarehouse(project="proj")
    query = _query(relation=Relation("proj", "s3_sharing_marts", "fi_data"))
    with pytest.raises(wh.RelationMissing, match=r"s3_sharing_marts\.fi_data does not exist in project proj"):
        warehouse.count(query)


def test_latest_query_gives_each_keys_newest_version_received_before_the_moment(tmp_path):
    path = tmp_path / "versions.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.versions (k varchar, business_id varchar, status varchar, "
            "booked_at timestamp, updated_at timestamp, loaded_at timestamp)"
        )
        con.execute(
            """insert into marts.versions values
               ('a', 'acme', 'pending', '2026-01-01 08:00', '2026-01-01 08:00', '2026-01-01 08:01'),
               ('a', 'acme', 'settled', '2026-01-01 08:00', '2026-01-01 09:00', '2026-01-01 09:01'),
               ('a', 'acme', 'reversed', '2026-01-01 08:00', '2026-01-01 11:00', '2026-01-01 11:01'),
               ('b', 'acme', 'pending', '2025-11-01 08:00', '2025-11-01 08:00', '2025-11-01 08:01'),
               ('c', 'globex', 'pending', '2026-01-01 08:00', '2026-01-01 08:00', '2026-01-01 08:01')"""
        )
    warehouse = DuckDBWarehouse(path=str(path))
    latest = wh.LatestQuery(
        Relation(None, "marts", "versions"),
        "k",
        "updated_at",
        "loaded_at",
        START,  # 10:00: the 11:00 version was not received yet
        (("business_id", "acme"),),
        order_by=("k",),
    )
    rows = pa.Table.from_batches(list(warehouse.stream(latest))).select(["k", "status"]).to_pylist()
    assert rows == [{"k": "a", "status": "settled"}, {"k": "b", "status": "pending"}]
    assert warehouse.count(latest) == 2
    recent = wh.LatestQuery(
        **{**latest.__dict__, "since_column": "booked_at", "since": START - timedelta(days=30)}
    )
    assert warehouse.count(recent) == 1
    sql = recent.render("`t`", lambda name: f"`{name}`", lambda name: f"@{name}")
    assert sql == (
        "select * from `t` where `loaded_at` < @as_of and `business_id` = @eq_0 and `booked_at` >= @since "
        "qualify row_number() over (partition by `k` order by `updated_at` desc, `loaded_at` desc) = 1 "
        "order by `k`"
    )
    with pytest.raises(ValueError, match="since_column and since go together"):
        wh.LatestQuery(**{**latest.__dict__, "since_column": "booked_at"})


def _sortable_table(path, rows: int = 200_000) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            f"""create table marts.rows as
               select 'acme' as business_id, i as n, timestamp '2026-01-01 10:00:00' as updated_at,
                      repeat(md5(i::varchar), 4) as padding
               from range(0, {rows}) t(i)"""
        )


def test_concurrent_sorted_streams_take_turns_within_the_memory_limit(tmp_path):
    """DuckDB fails a query that finds the instance's memory taken instead of waiting: four sorts
    at once over a 64 MB limit did (two of four failed). With turns, every stream completes whole."""
    path = tmp_path / "sorts.duckdb"
    _sortable_table(path)
    query = _query(end=START + timedelta(days=1), order_by=("padding",))
    warehouse = DuckDBWarehouse(path=str(path), sort_memory_limit="64MB", max_streams=1)
    active, most = 0, 0
    lock = threading.Lock()

    def read() -> int:
        nonlocal active, most
        rows = 0
        for number, batch in enumerate(warehouse.stream(query, batch_rows=20_000)):
            if number == 0:
                with lock:
                    active += 1
                    most = max(most, active)
            rows += batch.num_rows
        with lock:
            active -= 1
        return rows

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda _: read(), range(4))) == [200_000] * 4
    assert most == 1


def test_a_stream_read_inside_another_in_the_same_thread_does_not_wait_for_itself(duckdb_file):
    warehouse = DuckDBWarehouse(path=str(duckdb_file), max_streams=1)
    outer = [len(list(warehouse.stream(_query(), batch_rows=500))) for _ in warehouse.stream(_query())]
    assert outer and all(count > 1 for count in outer)


def _memory_limit(warehouse: DuckDBWarehouse) -> str:
    """The limit of the file's DuckDB instance now, as a new connection to it sees it."""
    with warehouse._connect() as con:
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_a_sort_streams_within_the_sort_limit_and_a_scan_within_the_smaller_one(tmp_path):
    """A sort of 1M rows fails within the scan's 32 MB, so a stream that sorts gets the larger limit,
    and a scan after it gets the small one back (DuckDB keeps the file's blocks up to the limit)."""
    path = tmp_path / "sorts.duckdb"
    _sortable_table(path, rows=1_000_000)
    whole_day = {"end": START + timedelta(days=1)}
    sort, scan = _query(**whole_day, order_by=("padding",)), _query(**whole_day, order_by=())
    warehouse = DuckDBWarehouse(path=str(path))
    assert (warehouse.memory_limit, warehouse.sort_memory_limit) == ("32MB", "64MB")

    limits_seen = {}
    for name, query in (("sort", sort), ("scan", scan)):
        rows = 0
        for batch in warehouse.stream(query):
            limits_seen[name] = _memory_limit(warehouse)
            rows += batch.num_rows
        assert rows == 1_000_000
    assert limits_seen == {"sort": "61.0 MiB", "scan": "30.5 MiB"}

    starved = DuckDBWarehouse(path=str(path), sort_memory_limit="32MB")
    with pytest.raises(duckdb.OutOfMemoryException):
        sum(batch.num_rows for batch in starved.stream(sort))


def test_a_scan_read_inside_a_sort_does_not_lower_the_limit_under_it(tmp_path):
    path = tmp_path / "sorts.duckdb"
    _sortable_table(path, rows=1_000_000)
    warehouse = DuckDBWarehouse(path=str(path))
    sort = _query(end=START + timedelta(days=1), order_by=("padding",))
    rows, limits_seen = 0, set()
    for number, batch in enumerate(warehouse.stream(sort)):
        if number == 0:
            inner = warehouse.stream(_query(end=START + timedelta(days=1), order_by=(), columns=("n",)))
            assert sum(b.num_rows for b in inner) == 1_000_000
        limits_seen.add(_memory_limit(warehouse))
        rows += batch.num_rows
    assert rows == 1_000_000
    assert limits_seen == {"61.0 MiB"}


@pytest.mark.parametrize("limit", ["32MB'; DROP TABLE rows; --", "lots", "32 TB"])
def test_a_memory_limit_that_is_not_a_size_is_refused_before_it_reaches_sql(duckdb_file, limit):
    with pytest.raises(ValueError, match="memory_limit"):
        DuckDBWarehouse(path=str(duckdb_file), memory_limit=limit)
    with pytest.raises(ValueError, match="sort_memory_limit"):
        DuckDBWarehouse(path=str(duckdb_file), sort_memory_limit=limit)
    assert DuckDBWarehouse(path=str(duckdb_file), memory_limit="1.5 GiB").memory_limit == "1.5 GiB"
