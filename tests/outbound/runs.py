"""Run a delivery or the certification job in process, as the tests of several features need."""

import dagster as dg

from s3_sharing.outbound.jobs import CERTIFY_JOB
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.registry import read_registry

HOUR = "2026-01-01-05:00"


def deliver(settings, partition: str, instance=None) -> None:
    defs = build_outbound_location(settings)
    result = defs.resolve_job_def("hourly_deliveries_job").execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False
    )
    assert result.get_asset_materialization_events()


def certify(
    settings,
    last: str = HOUR,
    lookback: int = 3,
    instance=None,
    daily_last: str = "2026-01-01",
    daily_lookback: int = 1,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    job = build_outbound_location(settings).resolve_job_def(CERTIFY_JOB)
    ops = {
        "hourly_delivery_checks": {"config": {"lookback": lookback, "last": last}},
        "daily_delivery_checks": {"config": {"lookback": daily_lookback, "last": daily_last}},
    }
    result = job.execute_in_process(
        run_config={"ops": {name: config for name, config in ops.items() if job.graph.has_node_named(name)}},
        instance=instance,
        raise_on_error=False,
    )
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def meta(evaluation: dg.AssetCheckEvaluation, name: str):
    return evaluation.metadata[name].value


def role(settings, business_id: str):
    """The business's bucket as the delivery role sees it (to damage a delivery on purpose)."""
    from s3_sharing.platform.storage import S3Buckets

    business = read_registry(settings.registry).get(business_id)
    return business.open_bucket(S3Buckets())
