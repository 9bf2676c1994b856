"""One partitioned job and one schedule per cadence (never one per business).

The hourly job builds the marts of the previous hour and then delivers the hourly businesses;
daily and weekly jobs deliver from the hourly marts. Each tick runs a few minutes after its window
closes and processes exactly that window; the partition key is the run key, so a tick never
launches a window twice. Only active businesses are selected.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from s3_sharing.deliveries import delivery_key
from s3_sharing.layout import Cadence
from s3_sharing.registry import Business


def sharing_job_name(cadence: Cadence) -> str:
    return f"{cadence}_sharing_job"


def build_sharing_jobs(
    active: Mapping[Cadence, Sequence[Business]], hourly_marts: dg.AssetsDefinition
) -> dict[Cadence, Any]:
    """Unresolved asset jobs (``define_asset_job``), keyed by cadence."""
    jobs = {}
    for cadence in Cadence:
        selection = dg.AssetSelection.assets(*(delivery_key(b.id) for b in active.get(cadence, ())))
        if cadence is Cadence.HOURLY:
            selection = selection | dg.AssetSelection.assets(hourly_marts)
        elif not active.get(cadence):
            continue
        jobs[cadence] = dg.define_asset_job(
            sharing_job_name(cadence),
            selection=selection,
            description=f"Every {cadence} window: deliver it to the active {cadence} businesses"
            + (" after building the marts" if cadence is Cadence.HOURLY else ""),
        )
    return jobs


CERTIFY_SCHEDULE = "certification_schedule"


def build_schedules(jobs: Mapping[Cadence, Any], minute_offset: int, certify_job: Any | None) -> list[Any]:
    """The sharing schedules, and the hourly certification of every look-back half an hour after
    the hourly delivery (so a window's delivery has had time to finish)."""
    when = {
        Cadence.HOURLY: {"minute_of_hour": minute_offset},
        Cadence.DAILY: {"hour_of_day": 0, "minute_of_hour": minute_offset},
        Cadence.WEEKLY: {"day_of_week": 1, "hour_of_day": 0, "minute_of_hour": minute_offset},
    }
    schedules = [
        dg.build_schedule_from_partitioned_job(
            job,
            name=f"{cadence}_sharing_schedule",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            **when[cadence],
        )
        for cadence, job in jobs.items()
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
