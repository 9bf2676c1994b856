"""Whether the hourly marts of a daily or weekly window are built, as the Dagster instance knows it.

A daily or weekly file is cut from the hourly marts. At 00:10 the hourly job is still building hour
23 while the day is due, so a daily or weekly delivery waits until every hour of its window is
materialized, and none is being rebuilt or failed its last build.
"""

from dataclasses import dataclass

import dagster as dg

from s3_sharing.outbound.watchdog import first_few
from s3_sharing.platform.time import Window


@dataclass(frozen=True)
class UnbuiltHour:
    asset: str
    hour: str
    status: str  # "not built", "in progress" or "failed"

    def describe(self) -> str:
        return f"{self.asset} {self.hour} {self.status}"


STATUS_NAMES = {
    dg.AssetPartitionStatus.IN_PROGRESS: "in progress",
    dg.AssetPartitionStatus.FAILED: "failed",
    None: "not built",
}


def unbuilt_hours(
    instance: dg.DagsterInstance, marts: dg.AssetsDefinition, window: Window
) -> list[UnbuiltHour]:
    """Every (mart, hour) of ``window`` that is not materialized, or is being (or failed being) rebuilt."""
    partitions = marts.partitions_def
    if not isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        raise TypeError(f"the hourly marts need time-window partitions, got {partitions!r}")
    hours = partitions.get_partition_keys_in_time_window(dg.TimeWindow(window.start, window.end))
    unbuilt = []
    for key in sorted(marts.keys):
        statuses = instance.get_status_by_partition(key, hours, partitions) or {}
        unbuilt += [
            UnbuiltHour(key.to_user_string(), hour, STATUS_NAMES[status])
            for hour in hours
            if (status := statuses.get(hour)) is not dg.AssetPartitionStatus.MATERIALIZED
        ]
    return unbuilt


def summarise(unbuilt: list[UnbuiltHour], limit: int = 5) -> str:
    """A short account for a log line or an alert: the first few, and how many more."""
    return first_few([u.describe() for u in unbuilt], limit)
