"""The outbound jobs and their names: per cadence, one job that delivers chosen businesses (runbook,
watchdog, backfills) and one scheduled sharing job; and the certification job.

The hourly sharing job builds the marts of the previous hour and then delivers the hourly
businesses; daily and weekly sharing jobs deliver from the hourly marts. Only active businesses
are selected by the sharing jobs.
"""

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from s3_sharing.outbound.asset_keys import delivery_key
from s3_sharing.outbound.registry import Business
from s3_sharing.platform.time import Cadence

CERTIFY_JOB = "certify_deliveries_job"

# The hourly sharing job holds the marts (a single-run backfill policy: a range of hours is one dbt
# run) and the hourly deliveries (one window per run). Dagster warns that the job then backfills one
# partition per run, which is what that job is for: its schedule runs one window at a time, and a
# backfill of a range selects the assets, whose own policies apply. Only that warning is silenced.
warnings.filterwarnings(
    "ignore",
    message=r"Asset job hourly_sharing_job materializes assets with varying BackfillPolicies",
    category=UserWarning,
)


def deliveries_job_name(cadence: Cadence) -> str:
    return f"{cadence}_deliveries_job"


def sharing_job_name(cadence: Cadence) -> str:
    return f"{cadence}_sharing_job"


def build_delivery_jobs(assets: Mapping[Cadence, dg.AssetsDefinition]) -> dict[Cadence, Any]:
    """Unresolved asset jobs that deliver any chosen businesses of a cadence, with their checks."""
    return {
        cadence: dg.define_asset_job(
            deliveries_job_name(cadence),
            selection=dg.AssetSelection.assets(definition),
            description=f"Deliver chosen businesses of the {cadence} cadence, with their checks.",
        )
        for cadence, definition in assets.items()
    }


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


def build_certify_job(checks: Sequence[dg.AssetChecksDefinition]) -> Any | None:
    if not checks:
        return None
    return dg.define_asset_job(
        CERTIFY_JOB,
        selection=dg.AssetSelection.checks(*checks),
        description="Certify the look-back of every business (scheduled hourly; on demand: set "
        "lookback, last or full_history).",
    )
