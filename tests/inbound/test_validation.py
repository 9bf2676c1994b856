"""The Arrow validation of an import file, below PostgreSQL: which dates and timestamps exist."""

import io

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
