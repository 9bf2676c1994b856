"""Hourly partitions of the marts and the UTC windows they stand for."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

HOURLY_KEY_FORMAT = "%Y-%m-%d-%H:%M"


class PartitionKeyError(ValueError):
    """A partition key that is not an hourly key of the marts."""


def hourly_partitions(start: str) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(start_date=start, timezone="UTC", fmt=HOURLY_KEY_FORMAT)


def parse_hourly_key(key: str) -> datetime:
    """The UTC start of hourly partition ``key`` (``YYYY-MM-DD-HH:00``)."""
    try:
        start = datetime.strptime(key, HOURLY_KEY_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise PartitionKeyError(f"partition key {key!r} is not an hourly key like 2026-01-01-13:00") from None
    if start.minute:
        raise PartitionKeyError(f"partition key {key!r} does not start on the hour")
    return start


def hourly_key(start: datetime) -> str:
    return start.astimezone(UTC).strftime(HOURLY_KEY_FORMAT)


def require_partition(partitions: dg.PartitionsDefinition, key: str) -> None:
    """Fail with a message naming the valid range when ``key`` is not a partition."""
    parse_hourly_key(key)
    keys = partitions.get_partition_keys()
    if key not in keys:
        first, last = (keys[0], keys[-1]) if keys else ("none", "none")
        raise PartitionKeyError(f"partition key {key!r} is outside the partitions {first} to {last}")
