"""The outbound feature's definitions: a delivery asset per business on dbt's marts, its checks,
the delivery, sharing and certification jobs, their schedules and sensors."""

import dagster as dg

from s3_sharing.outbound.assets import build_delivery_assets
from s3_sharing.outbound.checks import build_delivery_checks
from s3_sharing.outbound.datasets import SOURCES, USERS_MODEL
from s3_sharing.outbound.jobs import build_certify_job, build_delivery_jobs, build_sharing_jobs
from s3_sharing.outbound.registry import load_registry
from s3_sharing.outbound.schedules import build_schedules
from s3_sharing.outbound.sensors import build_sharing_sensors, build_watchdog
from s3_sharing.platform.resources import state_resource, warehouse_resource
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.time import Cadence, cadence_partitions
from s3_sharing.transform.dbt_assets import DbtAssets, model_relation


def build_outbound_definitions(settings: Settings, dbt: DbtAssets) -> dg.Definitions:
    """Deliveries, their checks, jobs, schedules and sensors for the registry, on dbt's marts."""
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
    return dg.Definitions(
        assets=list(deliveries.values()),
        asset_checks=checks,
        jobs=[
            *delivery_jobs.values(),
            *sharing_jobs.values(),
            *([certify_job] if certify_job else []),
        ],
        schedules=build_schedules(sharing_jobs, settings.schedule_minute, certify_job),
        sensors=[
            *build_sharing_sensors(sharing_jobs, windows, dbt.hourly_marts),
            build_watchdog(active, windows, delivery_jobs, relations, dbt.hourly_marts),
        ],
        resources=outbound_resources(settings),
    )


def outbound_resources(settings: Settings) -> dict[str, object]:
    """What deliveries, checks and the watchdog use besides the platform's shared resources."""
    return {"warehouse": warehouse_resource(settings), "state": state_resource(settings)}
