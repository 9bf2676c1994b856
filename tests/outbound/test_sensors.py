"""The watchdog and the alert sensors, against the local endpoints."""

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

from s3_sharing.outbound import sensors
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.definitions import outbound_resources
from s3_sharing.outbound.delivery import RESTATEMENT_TAG
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.platform.notify import Notifier
from s3_sharing.platform.resources import build_resources
from s3_sharing.platform.settings import Settings
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB

from ..conftest import default_registry, write_registry
from ..webhook import WebhookReceiver
from .runs import HOUR, certify, deliver, meta, role


def resources_with_hook(settings, hook) -> dict[str, object]:
    """The outbound location's resources, alerts going to the test's webhook."""
    return (
        build_resources(settings)
        | outbound_resources(settings)
        | {"notifier": Notifier(webhook_url=hook.url)}
    )


def test_the_watchdog_waits_quietly_until_the_marts_are_built(settings, stack, monkeypatch):
    """A new deployment: raw data, no marts yet. Nothing can have been delivered, and the sensor
    tick must not fail (under dagster dev it ran before the first dbt run)."""
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 1, 7, 5, tzinfo=UTC))
    defs = build_outbound_location(settings)
    with WebhookReceiver() as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = (
            build_resources(settings)
            | outbound_resources(settings)
            | {"notifier": Notifier(webhook_url=hook.url)}
        )
        result = defs.resolve_sensor_def("delivery_watchdog").evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        )
    assert result.run_requests == [] and hook.received == []


def test_the_watchdog_requests_a_missed_window_once_and_alerts_once(built, stack, monkeypatch):
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 1, 7, 5, tzinfo=UTC))
    defs = build_outbound_location(built)
    watchdog = defs.resolve_sensor_def("delivery_watchdog")
    with WebhookReceiver() as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_with_hook(built, hook)
        first = watchdog.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        )
        (request,) = first.run_requests
        assert request.partition_key == HOUR and request.run_key.startswith(f"watchdog:hourly:{HOUR}:")
        assert {k.path[-1] for k in request.asset_selection} >= {"acme", "globex"}
        # A window redelivered by the watchdog says why in its manifest (a restatement, if published).
        assert "acme missing" in request.tags[RESTATEMENT_TAG]
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
    build_outbound_location(settings).resolve_sensor_def("check_failure_alerts")(context)


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


def test_a_broken_role_and_a_failing_webhook_blind_the_watchdog_to_nothing_else(
    built, stack, keys, tmp_path, monkeypatch
):
    """acme's delivery role does not exist (deleted on its side) and the webhook refuses the first
    alert: globex is still requested, and the alert that can be sent names what went unseen."""
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 1, 7, 5, tzinfo=UTC))
    entries = default_registry(keys)
    entries[0]["destination"]["role_arn"] = "arn:aws:iam::123456789012:role/deleted-by-acme"
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "broken.yaml", entries)))
    broken = Settings.from_env()
    defs = build_outbound_location(broken)
    with WebhookReceiver(refuse_first=1) as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = (
            build_resources(broken)
            | outbound_resources(broken)
            | {"notifier": Notifier(webhook_url=hook.url)}
        )
        result = defs.resolve_sensor_def("delivery_watchdog").evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        )
    (request,) = result.run_requests
    selected = {k.path[-1] for k in request.asset_selection}
    assert "globex" in selected and "acme" not in selected
    assert hook.refused == 1, "the window_missed alert was refused by the webhook"
    (blind,) = hook.received
    assert blind["kind"] == "watchdog_blind" and "acme" in blind["text"], blind


def test_a_daily_or_weekly_window_is_watched_within_the_hour_after_its_delivery_was_due():
    from s3_sharing.platform.time import Cadence, cadence_partitions

    def watched(cadence: Cadence, *now: int) -> str | None:
        partitions = cadence_partitions(cadence, "2026-01-01-00:00")
        window = sensors.watched_window(cadence, partitions, datetime(*now, tzinfo=UTC))
        return window.key if window else None

    assert watched(Cadence.HOURLY, 2026, 1, 1, 7, 5) == "2026-01-01-05:00"
    assert watched(Cadence.DAILY, 2026, 1, 2, 0, 45) is None  # the 00:10 delivery may still run
    assert watched(Cadence.DAILY, 2026, 1, 2, 1, 0) == "2026-01-01"
    assert watched(Cadence.DAILY, 2026, 1, 3, 1, 0) == "2026-01-02"
    weeks = cadence_partitions(Cadence.WEEKLY, "2026-01-01-00:00").get_partition_keys(
        current_time=datetime(2026, 2, 1, tzinfo=UTC)
    )
    monday = datetime.fromisoformat(weeks[2])  # the day the week weeks[1] closed
    assert watched(Cadence.WEEKLY, monday.year, monday.month, monday.day, 0, 45) == weeks[0]
    assert watched(Cadence.WEEKLY, monday.year, monday.month, monday.day, 1, 0) == weeks[1]


def _build_marts(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> None:
    """As the hourly job (or a backfill of the marts) does: dbt builds the hours, Dagster records them."""
    defs.resolve_job_def(HOURLY_MARTS_JOB).execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


@pytest.mark.dbt
def test_at_00_10_the_daily_delivery_waits_for_hour_23_and_then_delivers_the_whole_day(
    built, stack, monkeypatch
):
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 2, 0, 10, tzinfo=UTC))
    defs = build_outbound_location(built)
    sharing = defs.resolve_sensor_def("daily_sharing_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        _build_marts(defs, instance, "2026-01-01-00:00", "2026-01-01-22:00")
        early = sharing.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert early.run_requests == [], "the day was delivered before its last hour was built"
        assert "2026-01-01-23:00 not built" in early.skip_message
        missing = certify(built, instance=instance)[("initech", "delivered")]
        assert not missing.passed and meta(missing, "missing") == ["2026-01-01"], missing.metadata

        _build_marts(defs, instance, "2026-01-01-23:00", "2026-01-01-23:00")
        (request,) = sharing.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs)
        ).run_requests
        assert request.partition_key == "2026-01-01"
        run = defs.resolve_job_def("daily_sharing_job").execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags
        )
        assert run.success
        delivered = certify(built, instance=instance)[("initech", "delivered")]
        assert delivered.passed and meta(delivered, "delivered") == 1, delivered.metadata


def test_the_watchdog_alerts_on_a_late_day_whose_marts_are_not_built_and_requests_it_once_they_are(
    built, stack, monkeypatch
):
    monkeypatch.setattr(sensors, "utc_now", lambda: datetime(2026, 1, 2, 1, 0, tzinfo=UTC))
    defs = build_outbound_location(built)
    watchdog = defs.resolve_sensor_def("delivery_watchdog")
    with WebhookReceiver() as hook, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_with_hook(built, hook)

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(
                instance=instance, resources=resources, cursor=cursor, definitions=defs
            )
            return watchdog.evaluate_tick(context)

        waiting = tick(None)
        assert not [r for r in waiting.run_requests if r.partition_key == "2026-01-01"]
        (alert,) = [a for a in hook.received if a["kind"] == "window_waiting"]
        assert alert["partition"] == "2026-01-01" and "2026-01-01-00:00 not built" in alert["text"]
        assert f"{24 * len(SOURCES)} hourly mart partitions of it are not built" in alert["title"]
        assert not [r for r in tick(waiting.cursor).run_requests if r.partition_key == "2026-01-01"]
        assert [a["kind"] for a in hook.received].count("window_waiting") == 1, "alerted once"

        for source in SOURCES.values():  # the hourly runs of the day, as the instance records them
            for hour in range(24):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(["marts", source.model], partition=f"2026-01-01-{hour:02d}:00")
                )
        (request,) = [r for r in tick(waiting.cursor).run_requests if r.partition_key == "2026-01-01"]
        assert request.run_key == "watchdog:daily:2026-01-01:initech"
