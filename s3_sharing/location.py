"""Assembles the code location from the settings: assets, checks, jobs, schedules, sensors, resources."""

import dagster as dg

from s3_sharing.checks import build_delivery_checks
from s3_sharing.datasets import SOURCES
from s3_sharing.dbt_models import DbtAssets, model_relation
from s3_sharing.deliveries import build_delivery_assets, cadence_partitions
from s3_sharing.layout import Cadence
from s3_sharing.partitions import hourly_partitions
from s3_sharing.registry import load_registry
from s3_sharing.resources import build_resources
from s3_sharing.schedules import build_schedules, build_sharing_jobs
from s3_sharing.sensors import build_watchdog, check_failure_alerts, run_failure_alerts
from s3_sharing.settings import Settings

HOURLY_MARTS_JOB = "hourly_marts_job"
REFERENCE_MODELS_JOB = "reference_models_job"
CERTIFY_JOB = "certify_deliveries_job"


def deliveries_job_name(cadence: Cadence) -> str:
    """The job that delivers any chosen businesses of a cadence (runbook, watchdog, backfills)."""
    return f"{cadence}_deliveries_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = hourly_partitions(settings.partition_start)
    dbt = DbtAssets(settings, partitions)
    registry, public_keys = load_registry(settings.registry_path)
    relations = {d: model_relation(dbt.manifest, s.model) for d, s in SOURCES.items()}
    cadences = {c: registry.by_cadence(c) for c in Cadence if registry.by_cadence(c)}
    windows = {c: cadence_partitions(c, settings.partition_start) for c in Cadence}
    deliveries = build_delivery_assets(
        registry,
        public_keys,
        relations=relations,
        partition_start=settings.partition_start,
        mart_keys={d: dbt.model_key(s.model) for d, s in SOURCES.items()},
    )
    checks = [
        build_delivery_checks(
            c, businesses, public_keys, relations, model_relation(dbt.manifest, "stg_users"), windows[c]
        )
        for c, businesses in cadences.items()
    ]
    active = {c: [b for b in businesses if b.active] for c, businesses in cadences.items()}
    sharing_jobs = build_sharing_jobs(active, dbt.hourly_marts)
    delivery_jobs = {
        c: dg.define_asset_job(
            deliveries_job_name(c),
            selection=dg.AssetSelection.assets(assets),
            description=f"Deliver chosen businesses of the {c} cadence, with their checks.",
        )
        for c, assets in zip(cadences, deliveries, strict=True)
    }
    certify_job = (
        dg.define_asset_job(
            CERTIFY_JOB,
            selection=dg.AssetSelection.checks(*checks),
            description="Certify the look-back of every business (scheduled hourly; on demand: set "
            "lookback, last or full_history).",
        )
        if checks
        else None
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
        *delivery_jobs.values(),
        *sharing_jobs.values(),
        *([certify_job] if certify_job else []),
    ]
    return dg.Definitions(
        assets=[*dbt.all(), *deliveries],
        asset_checks=checks,
        jobs=jobs,
        schedules=build_schedules(sharing_jobs, settings.schedule_minute, certify_job),
        sensors=[
            build_watchdog(active, windows, delivery_jobs, relations),
            check_failure_alerts,
            run_failure_alerts,
        ],
        resources=build_resources(settings, dbt.project),
    )
