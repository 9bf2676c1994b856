"""What a partner parses: null and empty text told apart, timestamps in ISO 8601 UTC with the zone."""

import csv
import datetime as dt
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from s3_sharing.outbound.csvfile import CsvFileWriter, iso_utc, restore_neutralised


def test_nulls_empty_strings_and_timestamps_are_written_for_partners(tmp_path):
    plus_two = dt.timezone(dt.timedelta(hours=2))
    batch = pa.record_batch(
        [
            pa.array(["a", "", None]),
            pa.array(
                [dt.datetime(2026, 11, 22, 13, 7, 0, 120000), None, dt.datetime(2026, 1, 1)],
                pa.timestamp("us"),
            ),
            pa.array(
                [dt.datetime(2026, 11, 22, 15, 7, tzinfo=plus_two)] * 3, pa.timestamp("ms", tz="+02:00")
            ),
            pa.array([dt.date(2026, 11, 22)] * 3, pa.date32()),
            pa.array([1.5, None, -2.0]),
        ],
        names=["note", "updated_at", "booked_at", "day", "amount"],
    )
    path = tmp_path / "f.csv"
    with CsvFileWriter(path, batch.schema) as writer:
        writer.write(batch)
        written = writer.close()

    assert path.read_text() == (
        '"note","updated_at","booked_at","day","amount"\n'
        '"a","2026-11-22T13:07:00.120000Z","2026-11-22T13:07:00.000Z",2026-11-22,1.5\n'
        '"",,"2026-11-22T13:07:00.000Z",2026-11-22,\n'
        ',"2026-01-01T00:00:00.000000Z","2026-11-22T13:07:00.000Z",2026-11-22,-2\n'
    )
    assert (written.rows, written.size) == (3, path.stat().st_size)
    assert written.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_spreadsheet_safe_neutralises_text_that_starts_a_formula_and_never_numbers(tmp_path):
    values = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", "'=kept", None, ""]
    batch = pa.record_batch(
        [pa.array(values), pa.array([-1.5] * len(values)), pa.array([-3] * len(values))],
        names=["note", "amount", "count"],
    )
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    for path, opted_in in ((plain, False), (safe, True)):
        with CsvFileWriter(path, batch.schema, spreadsheet_safe=opted_in) as writer:
            writer.write(batch)
            writer.close()

    def rows(path):
        return list(csv.reader(path.open(newline="")))[1:]

    assert [r[0] for r in rows(plain)] == [v or "" for v in values], "unchanged unless opted in"
    neutralised = [r[0] for r in rows(safe)]
    assert neutralised[:6] == ["'" + v for v in values[:6]]
    assert neutralised[6:] == ["plain", "''=kept", "", ""], "a leading ' is doubled, so it can be undone"
    assert all(r[1:] == ["-1.5", "-3"] for r in rows(safe)), "numeric columns are never changed"
    assert '"",' in safe.read_text() and "\n," in safe.read_text(), "null and empty text still differ"
    assert [restore_neutralised(v) for v in neutralised[:8]] == values[:8]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Europe/Madrid", "America/Los_Angeles"])
def test_timestamps_are_iso_utc_as_strftime_writes_them_over_the_whole_calendar(unit, zone):
    """``iso_utc`` is a fast route to strftime's text: compared value by value, years 1 to 9999
    for the coarse units (nanoseconds reach 1677 to 2262), with nulls."""
    random = np.random.default_rng(7)
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    low, high = (-9_200_000_000, 9_200_000_000) if unit == "ns" else (-62_135_596_800, 253_402_300_799)
    values = random.integers(low * per_second, high * per_second, 5000, dtype=np.int64).tolist()
    column = pa.array([*values, None, 0, -1], pa.timestamp(unit, zone))
    utc = column.cast(pa.timestamp(unit, "UTC")) if zone else column
    assert iso_utc(column).to_pylist() == pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
