"""The s3_sharing code location (``dagster dev -w workspace.yaml``), assembled from the settings:
assets, checks, jobs, schedules, sensors and resources. Nothing is read from the environment at
import; ``defs`` reads it when Dagster loads the location."""

import dagster as dg

from s3_sharing.inbound.assets import build_import_definitions
from s3_sharing.inbound.rewards.assets import build_rewards_assets
from s3_sharing.inbound.rewards.registry import read_fi_registry
from s3_sharing.inbound.sources import read_sources
from s3_sharing.outbound.assets import build_delivery_assets
from s3_sharing.outbound.checks import build_delivery_checks
from s3_sharing.outbound.datasets import SOURCES, USERS_MODEL
from s3_sharing.outbound.jobs import build_certify_job, build_delivery_jobs, build_sharing_jobs
from s3_sharing.outbound.registry import load_registry
from s3_sharing.outbound.schedules import build_schedules
from s3_sharing.outbound.sensors import (
    build_sharing_sensors,
    build_watchdog,
    check_failure_alerts,
    run_failure_alerts,
)
from s3_sharing.platform.resources import build_resources
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.time import Cadence, cadence_partitions, hourly_partitions
from s3_sharing.transform.dbt_assets import DbtAssets, model_relation


def build_definitions(settings: Settings) -> dg.Definitions:
    dbt = DbtAssets(settings, hourly_partitions(settings.partition_start))
    registry, public_keys = load_registry(settings.registry)
    relations = {d: model_relation(dbt.manifest, s.model) for d, s in SOURCES.items()}
    cadences = {c: registry.by_cadence(c) for c in Cadence if registry.by_cadence(c)}
    windows = {c: cadence_partitions(c, settings.partition_start) for c in Cadence}
    users = model_relation(dbt.manifest, USERS_MODEL)
    deliveries = build_delivery_assets(
        registry,
        public_keys,
        relations=relations,
        users=users,
        partition_start=settings.partition_start,
        mart_keys={d: dbt.model_key(s.model) for d, s in SOURCES.items()},
    )
    checks = [
        check
        for c, businesses in cadences.items()
        for check in build_delivery_checks(c, businesses, public_keys, relations, users, windows[c])
    ]
    active = {c: [b for b in businesses if b.active] for c, businesses in cadences.items()}
    sharing_jobs = build_sharing_jobs(active, dbt.hourly_marts)
    delivery_jobs = build_delivery_jobs(deliveries)
    certify_job = build_certify_job(checks)
    import_assets, import_jobs, import_schedules = build_import_definitions(
        read_sources(settings.import_sources)
    )
    fi_registry = read_fi_registry(settings.fi_registry) if settings.fi_registry else None
    rewards = build_rewards_assets(fi_registry, settings.partition_start) if fi_registry else None
    return dg.Definitions(
        assets=[*dbt.all(), *deliveries.values(), *import_assets, *([rewards.asset] if rewards else [])],
        asset_checks=checks,
        jobs=[
            *dbt.jobs(),
            *delivery_jobs.values(),
            *sharing_jobs.values(),
            *([certify_job] if certify_job else []),
            *import_jobs,
            *([rewards.job] if rewards else []),
        ],
        schedules=[*build_schedules(sharing_jobs, settings.schedule_minute, certify_job), *import_schedules],
        sensors=[
            *build_sharing_sensors(sharing_jobs, windows, dbt.hourly_marts),
            build_watchdog(active, windows, delivery_jobs, relations, dbt.hourly_marts),
            check_failure_alerts,
            run_failure_alerts,
            *([rewards.sensor] if rewards else []),
        ],
        resources=build_resources(settings, dbt.project),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Built when Dagster loads the location, so the environment is read then, not at import."""
    return build_definitions(Settings.from_env())
