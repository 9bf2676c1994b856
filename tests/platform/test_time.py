from datetime import UTC, datetime

import dagster as dg
import pytest

from s3_sharing.platform.time import (
    PartitionKeyError,
    hourly_key,
    hourly_partitions,
    parse_hourly_key,
    require_partition,
)


def test_hourly_key_round_trip():
    start = datetime(2026, 3, 4, 17, tzinfo=UTC)
    assert hourly_key(start) == "2026-03-04-17:00"
    assert parse_hourly_key("2026-03-04-17:00") == start


@pytest.mark.parametrize("key", ["2026-13-01-00:00", "2026-01-01", "yesterday", "2026-01-01-10:30"])
def test_invalid_keys_get_a_clear_error(key):
    with pytest.raises(PartitionKeyError, match=key):
        parse_hourly_key(key)


def test_partitions_are_hourly_utc():
    partitions = hourly_partitions("2026-01-01-00:00")
    assert isinstance(partitions, dg.HourlyPartitionsDefinition)
    assert partitions.timezone == "UTC"
    assert partitions.get_partition_keys()[0] == "2026-01-01-00:00"


def test_require_partition_names_the_valid_range():
    partitions = hourly_partitions("2026-01-01-00:00")
    require_partition(partitions, "2026-01-01-05:00")
    with pytest.raises(PartitionKeyError, match="outside the partitions 2026-01-01-00:00 to"):
        require_partition(partitions, "2025-12-31-23:00")
