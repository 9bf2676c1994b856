"""The hourly sharing schedule and the hourly certification (daily and weekly sharing wait for
their marts in sensors instead: ``sensors.build_sharing_sensors``).

Each tick runs a few minutes after its window closes and processes exactly that window; the
partition key is the run key, so a tick never launches a window twice.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from s3_sharing.platform.time import Cadence

CERTIFY_SCHEDULE = "certification_schedule"


def build_schedules(jobs: Mapping[Cadence, Any], minute_offset: int, certify_job: Any | None) -> list[Any]:
    """The hourly sharing schedule, and the hourly certification of every look-back half an hour
    after the hourly delivery (so a window's delivery has had time to finish)."""
    schedules = [
        dg.build_schedule_from_partitioned_job(
            jobs[Cadence.HOURLY],
            name="hourly_sharing_schedule",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            minute_of_hour=minute_offset,
        )
    ]
    if certify_job is not None:
        schedules.append(
            dg.ScheduleDefinition(
                name=CERTIFY_SCHEDULE,
                job=certify_job,
                cron_schedule=f"{(minute_offset + 30) % 60} * * * *",
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        )
    return schedules
