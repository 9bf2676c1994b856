"""Schedules and sharing jobs: which window each tick requests, and what each job selects."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from s3_sharing.definitions import build_definitions
from s3_sharing.outbound.jobs import CERTIFY_JOB

from ..conftest import default_registry, write_registry

HOUR = "2026-01-01-05:00"


def test_the_certification_schedule_certifies_every_look_back_each_hour(settings):
    definition = build_definitions(settings).resolve_schedule_def("certification_schedule")
    assert definition.cron_schedule == "40 * * * *"
    assert definition.job_name == CERTIFY_JOB
    assert definition.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(
    ("schedule", "tick", "partition"),
    [
        ("hourly_sharing_schedule", datetime(2026, 1, 1, 5, 10, tzinfo=UTC), "2026-01-01-04:00"),
        ("daily_sharing_schedule", datetime(2026, 1, 2, 0, 10, tzinfo=UTC), "2026-01-01"),
    ],
)
def test_schedule_ticks_request_exactly_the_previous_window(settings, schedule, tick, partition):
    defs = build_definitions(settings)
    definition = defs.resolve_schedule_def(schedule)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        (request,) = definition.evaluate_tick(context).run_requests
    assert request.partition_key == partition
    assert definition.cron_schedule.startswith("10 ")


def test_the_hourly_job_builds_the_marts_then_delivers_active_businesses_only(
    settings, keys, tmp_path, monkeypatch
):
    entries = default_registry(keys)
    entries[3]["active"] = False
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "inactive.yaml", entries)))
    from s3_sharing.platform.settings import Settings

    job = build_definitions(Settings.from_env()).resolve_job_def("hourly_sharing_job")
    keys_in_job = {k.path[-1] for k in job.asset_layer.selected_asset_keys}
    assert {"acme", "globex", "fi_data"} <= keys_in_job and "umbrella" not in keys_in_job
