"""The import sources registry refuses what would break or leak, naming file, source and field."""

import copy

import pytest

from s3_sharing.inbound.sources import read_sources
from s3_sharing.platform.yaml_registry import RegistryError

from .conftest import EVENTS, RISKS, source_entry, write_sources


def bad(**changes: object) -> dict[str, object]:
    entry = copy.deepcopy(source_entry())
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = entry
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return entry


@pytest.mark.parametrize(
    ("entry", "field", "reason"),
    [
        (bad(connection__bucket="Bad_Bucket"), "connection.bucket", "is not an S3 bucket name"),
        (bad(connection__secret_access_key_env="X"), "connection", "not both"),
        (bad(connection__role_arn=None), "connection", "give role_arn"),
        (bad(schedule__timezone="Mars/Olympus"), "schedule.timezone", "not an IANA time zone"),
        (bad(schedule__frequency="weekly"), "schedule", "needs a weekday"),
        (bad(schedule__time="25:00"), "schedule.time", "should match pattern"),
        (bad(entities__0__entity="widgets"), "entities.0.entity", "unknown entity 'widgets'"),
        (bad(entities__0__folder="../other/"), "entities.0.folder", "no '.' or '..'"),
        (
            bad(entities__0__mapping={"referenceCode": "Código"}),
            "entities.0",
            "required field name is not mapped",
        ),
        (
            bad(entities__0__mapping={**RISKS["mapping"], "colour": "Color"}),
            "entities.0",
            "colour not fields of risks",
        ),
        (
            bad(entities__0__mapping={**RISKS["mapping"], "description": "Nombre"}),
            "entities.0",
            "'Nombre' is mapped to two",
        ),
        (bad(entities__1__parent="customers"), "entities.1", "its parent is risks"),
        (bad(entities__1__action="delete"), "entities.1.action", "'create', 'update' or 'upsert'"),
        (bad(entities=[RISKS, {**EVENTS, "folder": "riesgos/eventos/"}]), "entities", "lies inside folder"),
        (bad(entities=[RISKS, RISKS]), "entities", "imported twice"),
        (bad(password="hunter2"), "password", "Extra inputs are not permitted"),
    ],
)
def test_each_bad_entry_names_file_source_and_field(tmp_path, entry, field, reason):
    path = write_sources(tmp_path / "imports.yaml", [entry])
    with pytest.raises(RegistryError) as error:
        read_sources(path)
    assert f"{path}: source 'pirani': {field}: " in str(error.value) and reason in str(error.value), (
        error.value
    )


def test_a_good_registry_gives_cron_schedules_in_the_customers_time_zone(tmp_path):
    weekly = source_entry("weekly_one", schedule={"frequency": "weekly", "day": "tuesday", "time": "03:30"})
    monthly = source_entry(
        "monthly_one", schedule={"frequency": "monthly", "day": 5, "timezone": "Europe/Madrid"}
    )
    sources = read_sources(write_sources(tmp_path / "imports.yaml", [source_entry(), weekly, monthly]))
    assert [s.schedule.cron() for s in sources.sources] == ["0 2 * * *", "30 3 * * 2", "0 2 5 * *"]
    assert sources.get("pirani").entity("events").required_fields() == [
        "referenceCode",
        "name",
        "occurredOn",
        "parentReferenceCode",
    ]
