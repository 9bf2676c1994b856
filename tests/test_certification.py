"""Certification, keys, schedules, the watchdog and alerts, against the local endpoints."""

import json
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from s3_sharing import cli
from s3_sharing.definitions import build_definitions
from s3_sharing.devtools.local_endpoints import local_stack
from s3_sharing.outbound import sensors
from s3_sharing.outbound.checks import run_windows
from s3_sharing.outbound.jobs import CERTIFY_JOB
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.notify import Notifier
from s3_sharing.platform.resources import build_resources
from s3_sharing.transform.dbt_assets import dbt_project

from .conftest import ARCHIVE, default_registry, registry_entry, write_registry
from .webhook import WebhookReceiver

HOUR = "2026-01-01-05:00"


def deliver(settings, partition: str, instance=None) -> None:
    defs = build_definitions(settings)
    result = defs.resolve_job_def("hourly_deliveries_job").execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False
    )
    assert result.get_asset_materialization_events()


def certify(
    settings, last: str = HOUR, lookback: int = 3, instance=None
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    defs = build_definitions(settings)
    config = {"lookback": lookback, "last": last}
    result = defs.resolve_job_def(CERTIFY_JOB).execute_in_process(
        run_config={
            "ops": {
                "hourly_delivery_checks": {"config": config},
                "daily_delivery_checks": {"config": {"lookback": 1, "last": "2026-01-01"}},
            }
        },
        instance=instance,
        raise_on_error=False,
    )
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def meta(evaluation: dg.AssetCheckEvaluation, name: str):
    return evaluation.metadata[name].value


def role(settings, business_id: str):
    """The business's bucket as the delivery role sees it (to damage a delivery on purpose)."""
    from s3_sharing.platform.storage import S3Buckets

    business = read_registry(settings.registry_path).get(business_id)
    return business.open_bucket(S3Buckets())


def test_delivered_passes_after_delivery_and_an_undelivered_empty_window_passes(built, stack):
    for hour in ("2026-01-01-03:00", "2026-01-01-04:00", HOUR):
        deliver(built, hour)
    checks = certify(built)
    assert checks[("acme", "delivered")].passed
    assert meta(checks[("acme", "delivered")], "delivered") == 3
    # Never delivered and empty in the warehouse: nothing to certify, so it passes as empty.
    quiet = certify(built, last="2026-01-01-11:00", lookback=1)
    umbrella_rows = (
        duckdb.connect(str(built.duckdb_path), read_only=True)
        .execute(
            "select count(*) from main_marts.fi_data where business_id = 'umbrella' and hour(updated_at) = 11"
        )
        .fetchone()[0]
    )
    assert quiet[("umbrella", "delivered")].passed == (umbrella_rows == 0)


def test_a_deleted_object_fails_delivered_and_names_the_partition(built, stack):
    deliver(built, HOUR)
    bucket = role(built, "acme")
    victim = next(key for key in bucket.sizes() if key.endswith(".csv.pgp"))
    bucket.delete(victim)
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert meta(check, "mismatched") == [HOUR]
    assert any(f"{victim} missing in S3" in p for p in meta(check, "problems"))


def test_a_tampered_manifest_fails_delivered(built, stack):
    deliver(built, HOUR)
    bucket = role(built, "acme")
    key = "_manifests/20260101T0500Z.json"
    body = json.loads(bucket.read(key))
    body["rows"]["FI_DATA"] += 1
    bucket.upload_bytes(key, json.dumps(body).encode(), "application/json")
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    problems = " ".join(meta(check, "problems"))
    assert "S3 and GCS manifests differ" in problems and "signature does not verify" in problems


def test_a_late_row_in_a_delivered_window_fails_delivered(built, stack):
    deliver(built, HOUR)
    with duckdb.connect(str(built.duckdb_path)) as con:
        con.execute(
            "insert into main_marts.fi_data select * replace ('late_txn' as transaction_id) "
            "from main_marts.fi_data where business_id = 'acme' and hour(updated_at) = 5 limit 1"
        )
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    assert any("FI_DATA: manifest has" in p and "warehouse now" in p for p in meta(check, "problems"))
    assert meta(check, "missing") == []


def test_keys_valid_warns_ten_days_ahead_and_errors_when_expired(settings, keys, tmp_path, monkeypatch):
    entries = default_registry(keys)
    entries[0] = registry_entry("acme", keys, public_key={"file": str(keys["expiring"].public)})
    entries[1]["public_key"] = {"file": str(keys["expired"].public)}
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "keys.yaml", entries)))
    from s3_sharing.platform.settings import Settings

    with local_stack(read_registry(Settings.from_env().registry_path), ARCHIVE):
        checks = certify(Settings.from_env())
    soon, expired = checks[("acme", "keys_valid")], checks[("globex", "keys_valid")]
    assert not soon.passed and soon.severity == dg.AssetCheckSeverity.WARN
    assert any("expires in" in f for f in meta(soon, "findings"))
    assert not expired.passed and expired.severity == dg.AssetCheckSeverity.ERROR
    assert any("expired on 2020-01-02" in f for f in meta(expired, "findings"))
    assert checks[("umbrella", "keys_valid")].passed


def test_tenant_isolation_samples_the_latest_delivery_with_the_audit_key(built, stack):
    deliver(built, HOUR)
    check = certify(built, lookback=1)[("acme", "tenant_isolation")]
    assert check.passed, check.metadata
    assert meta(check, "sampled_files") and meta(check, "foreign_rows") == []


def test_in_a_delivery_run_delivered_certifies_the_windows_that_run_delivered(built, stack):
    """Earlier windows with rows are still undelivered (as during a backfill, when sibling runs
    deliver them at the same time): the run's own check must not fail on them; the scheduled
    look-back certification does."""
    defs = build_definitions(built)
    result = defs.resolve_job_def("hourly_deliveries_job").execute_in_process(
        partition_key=HOUR, asset_selection=[dg.AssetKey(["deliveries", "acme"])], raise_on_error=False
    )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "delivered"]
    assert evaluation.passed and meta(evaluation, "delivered") == 1
    lookback = certify(built, lookback=3)[("acme", "delivered")]
    assert not lookback.passed
    assert meta(lookback, "missing") == ["2026-01-01-03:00", "2026-01-01-04:00"]


def test_run_windows_follow_the_run_partition_or_range():
    partitions = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", fmt="%Y-%m-%d-%H:%M")
    assert [w.key for w in run_windows({"dagster/partition": HOUR}, partitions)] == [HOUR]
    ranged = {
        "dagster/asset_partition_range_start": "2026-01-01-02:00",
        "dagster/asset_partition_range_end": "2026-01-01-04:00",
    }
    assert [w.key for w in run_windows(ranged, partitions)] == [
        "2026-01-01-02:00",
        "2026-01-01-03:00",
        "2026-01-01-04:00",
    ]
    assert run_windows({}, partitions) is None


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


def test_the_watchdog_waits_quietly_until_the_marts_are_built(settings, stack, monkeypatch):
    """A new deployment: raw data, no marts yet. Nothing can have been delivered, and the sensor
    tick must not fail (under dagster dev it ran before the first dbt run)."""
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 1, 7, 5, tzinfo=UTC))
    defs = build_definitions(settings)
    with WebhookReceiver() as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = build_resources(settings, dbt_project(settings)) | {
            "notifier": Notifier(webhook_url=hook.url)
        }
        result = defs.resolve_sensor_def("delivery_watchdog").evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        )
    assert result.run_requests == [] and hook.received == []


def test_the_watchdog_requests_a_missed_window_once_and_alerts_once(built, stack, monkeypatch):
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 1, 7, 5, tzinfo=UTC))
    defs = build_definitions(built)
    watchdog = defs.resolve_sensor_def("delivery_watchdog")
    with WebhookReceiver() as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = build_resources(built, dbt_project(built)) | {"notifier": Notifier(webhook_url=hook.url)}
        first = watchdog.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        )
        (request,) = first.run_requests
        assert request.partition_key == HOUR and request.run_key.startswith(f"watchdog:hourly:{HOUR}:")
        assert {k.path[-1] for k in request.asset_selection} >= {"acme", "globex"}
        assert len(hook.received) == 1 and hook.received[0]["kind"] == "window_missed"
        again = watchdog.evaluate_tick(
            dg.build_sensor_context(
                instance=instance, resources=resources, cursor=first.cursor, definitions=defs
            )
        )
        assert again.run_requests == [] and len(hook.received) == 1


def _alert_on_run(settings, instance, run: dg.DagsterRun, notifier: Notifier) -> None:
    """Evaluate the alert sensor as the daemon does when ``run`` succeeds."""
    (record,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
    context = dg.build_run_status_sensor_context(
        sensor_name="check_failure_alerts",
        dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"notifier": notifier},
    )
    build_definitions(settings).resolve_sensor_def("check_failure_alerts")(context)


def test_one_alert_per_failed_check_of_a_finished_run(built, stack):
    """On a persistent instance with the default (run-sharded SQLite) event log, as under
    ``dagster dev``, where a scan of the whole event log is refused."""
    with WebhookReceiver() as hook, dg.instance_for_test() as instance:
        notifier = Notifier(webhook_url=hook.url)
        deliver(built, HOUR, instance)
        (delivery_run,) = instance.get_runs()
        _alert_on_run(built, instance, delivery_run, notifier)
        assert hook.received == []  # every check of the delivery run passed

        role(built, "acme").delete(next(k for k in role(built, "acme").sizes() if k.endswith(".csv.pgp")))
        certify(built, instance=instance)
        certification_run = instance.get_runs(limit=1)[0]
        records = instance.get_records_for_run(
            certification_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
        failed = [e for e in evaluations if not e.passed]
        assert failed and len(failed) < len(evaluations)
        _alert_on_run(built, instance, certification_run, notifier)
        assert len(hook.received) == len(failed)
        assert sorted(a["business_id"] for a in hook.received) == sorted(e.asset_key.path[-1] for e in failed)
        assert any("mismatched" in a["text"] for a in hook.received)
        assert all("BEGIN PGP" not in json.dumps(a) for a in hook.received)


def test_a_six_hour_range_is_delivered_and_verified_from_the_runbook(settings, stack, capsys):
    hours = ["--from", "2026-01-01-02:00", "--to", "2026-01-01-07:00"]
    assert cli.main(["materialize", *hours]) == 0  # dbt runs once for the six hours
    capsys.readouterr()
    assert cli.main(["deliver", *hours]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("hourly 2026-01-01-0") for line in out.splitlines()) == 6, out[-3000:]
    assert cli.main(["verify", *hours]) == 0
    assert "verify: 18 of 18 windows certified" in capsys.readouterr().out  # 3 hourly businesses x 6
    bucket = role(settings, "acme")
    bucket.delete(next(k for k in bucket.sizes() if k.startswith("2026-01-01/03/")))
    assert cli.main(["verify", *hours]) == 1
    assert cli.main(["status", *hours]) == 0
    out = capsys.readouterr().out
    assert "acme 2026-01-01-03:00: mismatched" in out and "verify: 17 of 18 windows certified" in out
