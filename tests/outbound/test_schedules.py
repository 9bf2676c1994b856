"""Schedules, sharing sensors and sharing jobs: which window each tick requests, and what each job
selects."""

from datetime import UTC, datetime

import dagster as dg

from s3_sharing.outbound import sensors
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.jobs import CERTIFY_JOB
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB

from ..conftest import default_registry, registry_entry, write_registry

HOUR = "2026-01-01-05:00"


def test_the_certification_schedule_certifies_every_look_back_each_hour(settings):
    definition = build_outbound_location(settings).resolve_schedule_def("certification_schedule")
    assert definition.cron_schedule == "40 * * * *"
    assert definition.job_name == CERTIFY_JOB
    assert definition.default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_hourly_schedule_ticks_request_exactly_the_previous_hour(settings):
    definition = build_outbound_location(settings).resolve_schedule_def("hourly_sharing_schedule")
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 1, 5, 10, tzinfo=UTC)
        )
        (request,) = definition.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-01-01-04:00"
    assert definition.cron_schedule == "10 * * * *"


def test_the_daily_sharing_sensor_waits_until_every_hour_of_the_day_is_built_and_none_is_rebuilt(
    settings, monkeypatch
):
    """The instance's records stand for the hourly runs here (materializations reported without a
    run, runs created in the state they would be in); the dbt-built path is in test_sensors.py."""
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 2, 0, 10, tzinfo=UTC))
    defs = build_outbound_location(settings)
    sensor = defs.resolve_sensor_def("daily_sharing_sensor")
    marts_job = defs.resolve_job_def(HOURLY_MARTS_JOB)
    mart_keys = [dg.AssetKey(["marts", source.model]) for source in SOURCES.values()]
    hour = "2026-01-01-{:02d}:00".format

    def built(*hours: int) -> None:
        for key in mart_keys:
            for h in hours:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=hour(h)))

    def tick() -> dg.SensorResult:
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))

    with dg.DagsterInstance.ephemeral() as instance:
        built(*range(23))
        waiting = tick().skip_message  # 00:10: the hourly job has yet to build hour 23
        assert "2026-01-01-23:00 not built" in waiting and "22:00" not in waiting
        building = instance.create_run_for_job(
            marts_job, tags={"dagster/partition": hour(23)}, status=dg.DagsterRunStatus.STARTED
        )
        assert "2026-01-01-23:00 in progress" in tick().skip_message
        built(23)
        instance.report_run_canceled(building)
        (request,) = tick().run_requests
        assert (request.partition_key, request.run_key) == ("2026-01-01", "2026-01-01")

        rebuild = instance.create_run_for_job(
            marts_job, tags={"dagster/partition": hour(5)}, status=dg.DagsterRunStatus.STARTED
        )
        assert "2026-01-01-05:00 in progress" in tick().skip_message
        instance.report_run_failed(rebuild)
        assert "2026-01-01-05:00 failed" in tick().skip_message
    assert sensor.job_name == "daily_sharing_job"


def test_the_hourly_job_builds_the_marts_then_delivers_active_businesses_only(
    settings, keys, tmp_path, monkeypatch
):
    entries = default_registry(keys)
    entries[3]["active"] = False
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "inactive.yaml", entries)))
    from s3_sharing.platform.settings import Settings

    job = build_outbound_location(Settings.from_env()).resolve_job_def("hourly_sharing_job")
    keys_in_job = {k.path[-1] for k in job.asset_layer.selected_asset_keys}
    assert {"acme", "globex", "fi_data"} <= keys_in_job and "umbrella" not in keys_in_job


def test_many_businesses_are_checked_by_ops_of_at_most_200_and_the_certification_job_checks_all(
    settings, keys, tmp_path, monkeypatch
):
    """One check op for N businesses costs Dagster O(N²) to build a job: the checks are split."""
    ids = [f"biz{n:03d}" for n in range(450)]
    entries = [
        registry_entry(
            "acme",
            keys,
            id=b,
            destination={
                "bucket_arn": f"arn:aws:s3:::{b}",
                "region": "eu-west-1",
                "role_arn": f"arn:aws:iam::123456789012:role/deliver-{b}",
            },
        )
        for b in ids
    ]
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "many.yaml", entries)))
    from s3_sharing.platform.settings import Settings

    definitions = build_outbound_location(Settings.from_env())
    checks = {c.node_def.name: {k.asset_key.path[-1] for k in c.check_keys} for c in definitions.asset_checks}
    assert sorted(checks) == [
        "hourly_delivery_checks",
        "hourly_delivery_checks_2",
        "hourly_delivery_checks_3",
    ]
    assert [len(businesses) for businesses in checks.values()] == [200, 200, 50]
    assert checks["hourly_delivery_checks"] == set(ids[:200])  # registry order: a business keeps its op
    assert set().union(*checks.values()) == set(ids)
    job = definitions.resolve_job_def(CERTIFY_JOB)
    assert {node.name for node in job.graph.nodes} == set(checks)
    assert len(job.asset_layer.asset_graph.asset_check_keys) == 3 * len(ids)
