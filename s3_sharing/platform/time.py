"""The one time model: cadences, partition keys, the partitions of each cadence, and windows.

Every window is a UTC interval [start, end) with the partition key that names it. Hourly keys look
like ``2026-01-01-13:00``, daily ones ``2026-01-01``, weekly ones the Monday that starts the week.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import dagster as dg

HOURLY_KEY_FORMAT = "%Y-%m-%d-%H:%M"


class Cadence(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


class PartitionKeyError(ValueError):
    """A partition key that is not a key of the partitions it was given for."""


@dataclass(frozen=True)
class Window:
    """One partition: its key and its UTC bounds [start, end)."""

    key: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError(
                f"window {self.key!r} needs aware UTC bounds with start < end, got {self.start}..{self.end}"
            )

    @classmethod
    def of(cls, partitions: dg.TimeWindowPartitionsDefinition, key: str) -> Window:
        """Partition ``key`` of a time-window partitions definition, with its UTC bounds."""
        window = partitions.time_window_for_partition_key(key)
        return cls(key, window.start, window.end)


def hourly_partitions(start: str) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(start_date=start, timezone="UTC", fmt=HOURLY_KEY_FORMAT)


def cadence_partitions(cadence: Cadence, partition_start: str) -> dg.TimeWindowPartitionsDefinition:
    """Windows of a cadence, in UTC, starting with the marts' first partition."""
    if cadence is Cadence.HOURLY:
        return hourly_partitions(partition_start)
    day = parse_hourly_key(partition_start).strftime("%Y-%m-%d")
    if cadence is Cadence.DAILY:
        return dg.DailyPartitionsDefinition(start_date=day, timezone="UTC")
    return dg.WeeklyPartitionsDefinition(start_date=day, timezone="UTC", day_offset=1)  # weeks start Monday


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
    """Fail with a message naming the valid range when ``key`` is not an hourly partition."""
    parse_hourly_key(key)
    keys = partitions.get_partition_keys()
    if key not in keys:
        first, last = (keys[0], keys[-1]) if keys else ("none", "none")
        raise PartitionKeyError(f"partition key {key!r} is outside the partitions {first} to {last}")


def windows_inside(
    partitions: dg.TimeWindowPartitionsDefinition, start: datetime, end: datetime
) -> list[Window]:
    """The complete windows that lie wholly inside [start, end) (what a range of hours covers)."""
    keys = partitions.get_partition_keys(current_time=end)
    return [w for w in (Window.of(partitions, k) for k in keys) if w.start >= start and w.end <= end]


def windows_closed_by(
    partitions: dg.TimeWindowPartitionsDefinition, start: datetime, end: datetime
) -> list[Window]:
    """The windows that have ended by ``end`` and overlap [start, end) (what a demo day closes)."""
    keys = partitions.get_partition_keys(current_time=end)
    return [w for w in (Window.of(partitions, k) for k in keys) if start < w.end <= end]


def last_windows(
    partitions: dg.TimeWindowPartitionsDefinition,
    last: str | None,
    count: int,
    full_history: bool = False,
    now: datetime | None = None,
) -> list[Window]:
    """The ``count`` complete windows ending at ``last`` (default: the latest), or all of them."""
    keys: Sequence[str] = partitions.get_partition_keys(current_time=now or datetime.now(UTC))
    if last is not None:
        if last not in keys:
            raise PartitionKeyError(f"partition {last!r} is not a complete partition")
        keys = keys[: keys.index(last) + 1]
    return [Window.of(partitions, k) for k in (keys if full_history else keys[-count:])]
