"""Assembles the code location from the settings: assets, checks, jobs and resources."""

import dagster as dg

from s3_sharing.datasets import SOURCES
from s3_sharing.dbt_models import DbtAssets, model_relation
from s3_sharing.deliveries import build_delivery_assets
from s3_sharing.partitions import hourly_partitions
from s3_sharing.registry import load_registry
from s3_sharing.resources import build_resources
from s3_sharing.settings import Settings

HOURLY_MARTS_JOB = "hourly_marts_job"
REFERENCE_MODELS_JOB = "reference_models_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = hourly_partitions(settings.partition_start)
    dbt = DbtAssets(settings, partitions)
    registry, public_keys = load_registry(settings.registry_path)
    deliveries = build_delivery_assets(
        registry,
        public_keys,
        relations={d: model_relation(dbt.manifest, s.model) for d, s in SOURCES.items()},
        partition_start=settings.partition_start,
        mart_keys={d: dbt.model_key(s.model) for d, s in SOURCES.items()},
    )
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
        *(
            dg.define_asset_job(
                f"{assets.node_def.name}_job",
                selection=dg.AssetSelection.assets(assets),
                description=f"Deliver every business of the {assets.node_def.name.split('_')[0]} cadence.",
            )
            for assets in deliveries
        ),
    ]
    return dg.Definitions(
        assets=[*dbt.all(), *deliveries],
        jobs=jobs,
        resources=build_resources(settings, dbt.project),
    )
