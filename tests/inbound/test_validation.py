"""The Arrow validation of an import file, below PostgreSQL: which dates and timestamps exist, and
whether a clean row repeats another's key."""

import io
import itertools

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from s3_sharing.inbound import validation
from s3_sharing.inbound.repeats import KeyFingerprints
from s3_sharing.inbound.sources import ImportSource
from s3_sharing.inbound.validation import validate

MAPPING = {
    "referenceCode": "Code",
    "parentReferenceCode": "Risk",
    "name": "Name",
    "occurredOn": "Date",
    "discoveredAt": "Found",
}
SOURCE = ImportSource.model_validate(
    {
        "id": "dates",
        "name": "dates",
        "connection": {
            "bucket": "customer-bucket",
            "region": "eu-west-1",
            "role_arn": "arn:aws:iam::123456789012:role/import-dates",
            "external_id": "dates-external-id",
        },
        "entities": [{"entity": "events", "folder": "e/", "action": "upsert", "mapping": MAPPING}],
    }
)


class Discard:
    def write(self, buffer: memoryview) -> int:
        return len(buffer)


def problems(tmp_path, rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each row's (date, timestamp) → the columns reported for it, by reference code."""
    path = tmp_path / "events.csv"
    lines = ["Code,Risk,Name,Date,Found"] + [f"E-{n},R-1,event,{d},{t}" for n, (d, t) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    errors = io.StringIO()
    validate(path, SOURCE.entity("events"), Discard(), errors)
    reported: dict[str, list[str]] = {}
    for line in errors.getvalue().splitlines():
        _, key, column, *_ = line.split(",")
        reported.setdefault(key, []).append(column)
    return reported


def test_only_days_that_exist_pass_as_dates_and_as_the_day_of_a_timestamp(tmp_path):
    good = [
        ("2024-02-29", "2024-02-29T23:59:59Z"),  # a leap day
        ("2026-12-31", "2026-12-31 00:00:00+05:30"),
        ("0001-01-01", "9999-12-31T10:00Z"),
    ]
    bad = [
        ("2026-02-29", "2026-02-29T10:00:00Z"),  # not a leap year: strptime alone rolls it over
        ("2026-04-31", "2026-04-31T10:00:00Z"),
        ("2026-13-01", "2026-13-01T10:00:00Z"),
        ("2026-01-00", "2026-01-00T10:00:00Z"),
        ("2026-1-5", "2026-01-05T10:00:00"),  # no leading zero; no UTC offset
    ]

    reported = problems(tmp_path, good + bad)

    assert reported == {f"E-{n}": ["Date", "Found"] for n in range(len(good), len(good) + len(bad))}


def repeated_keys(tmp_path, keys: list[str], date: str = "2026-01-01") -> bool | None:
    path = tmp_path / "events.csv"
    path.write_text("Code,Risk,Name,Date,Found\n" + "".join(f"{k},R-1,event,{date},\n" for k in keys))
    return validate(path, SOURCE.entity("events"), Discard(), io.StringIO()).repeated_keys


def test_a_key_repeated_in_a_later_batch_is_found_but_not_one_repeated_by_a_rejected_row(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(validation, "BLOCK_SIZE", 64)  # a batch of a row or two
    keys = [f"E-{n}" for n in range(50)]

    assert repeated_keys(tmp_path, keys) is False
    assert repeated_keys(tmp_path, [*keys, "E-0"]) is True
    assert repeated_keys(tmp_path, [*keys, " E-0 "]) is True, "keys are compared trimmed, as stored"
    # the database would never see the second row: its date does not exist
    path = tmp_path / "events.csv"
    path.write_text("Code,Risk,Name,Date,Found\nE-1,R-1,a,2026-01-01,\nE-1,R-1,b,2026-02-30,\n")
    result = validate(path, SOURCE.entity("events"), Discard(), io.StringIO())
    assert (result.rows_rejected, result.repeated_keys) == (1, False)


def test_keys_beyond_the_budget_are_not_counted_here(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "KEYS_BUDGET", 100)

    assert repeated_keys(tmp_path, ["E-1", "E-2"]) is False
    assert repeated_keys(tmp_path, [f"E-{n}" for n in range(50)]) is None, "the database must look"


@given(
    keys=st.lists(st.text(min_size=1, max_size=12), max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=5),
)
def test_a_repeat_is_never_missed_however_the_keys_fall_into_batches(keys, cuts):
    count = KeyFingerprints(budget=1 << 20)
    bounds = sorted({0, len(keys), *(c for c in cuts if c < len(keys))})
    whole = pa.array(keys, pa.string())
    for start, end in itertools.pairwise(bounds):
        count.add(whole.slice(start, end - start))  # a slice, as Arrow may hand a batch's column over

    # False may only mean no repeat; True for unique keys (a collision) is about 2**-52 likely here
    assert count.repeated() is (len(set(keys)) < len(keys))
