"""What a partner parses: null and empty text told apart, timestamps in ISO 8601 UTC with the zone."""

import csv
import datetime as dt
import hashlib

import pyarrow as pa

from s3_sharing.outbound.csvfile import CsvFileWriter, restore_neutralised


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
