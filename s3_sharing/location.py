"""Assembles the code location from the settings: assets, checks, jobs and resources."""

from __future__ import annotations

import dagster as dg

from s3_sharing.dbt_models import DbtAssets
from s3_sharing.partitions import hourly_partitions
from s3_sharing.resources import build_resources
from s3_sharing.settings import Settings

HOURLY_MARTS_JOB = "hourly_marts_job"
REFERENCE_MODELS_JOB = "reference_models_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = hourly_partitions(settings.partition_start)
    dbt = DbtAssets(settings, partitions)
    jobs = [
        dg.define_asset_job(
            HOURLY_MARTS_JOB,
            selection=dg.AssetSelection.assets(dbt.hourly_marts),
            description="Build the marts for one hourly window (or a range, in one dbt run).",
        ),
        dg.define_asset_job(
            REFERENCE_MODELS_JOB,
            selection=dg.AssetSelection.assets(dbt.reference_models),
            description="Build the unpartitioned staging views.",
        ),
    ]
    return dg.Definitions(
        assets=dbt.all(),
        jobs=jobs,
        resources=build_resources(settings, dbt.project),
    )
