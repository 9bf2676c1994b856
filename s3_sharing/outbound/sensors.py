"""Sensors: daily and weekly sharing once their marts are built, the watchdog (at time t, was
window t-2 → t-1 delivered?) and the alerts.

Open-source Dagster has no built-in alert on a failed asset check. Check evaluations happen in
runs, so the alerts follow runs: when a run ends, its failed check evaluations are read from that
run's own events. Dagster's run status sensors keep the cursor (a restarted daemon resumes where
it stopped, so no alert is sent twice) and work on every event log storage, including the
run-sharded SQLite one of ``dagster dev``, where a global scan of the event log is refused.
"""

import json
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from s3_sharing.outbound.asset_keys import delivery_key
from s3_sharing.outbound.certification import Certifier
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.delivery import RESTATEMENT_TAG
from s3_sharing.outbound.readiness import summarise, unbuilt_hours
from s3_sharing.outbound.registry import Business
from s3_sharing.outbound.watchdog import Watch
from s3_sharing.platform.notify import Alert, Notifier
from s3_sharing.platform.resources import PlatformKeys
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Cadence, Window
from s3_sharing.platform.warehouse import Relation, RelationMissing, Warehouse


def utc_now() -> datetime:
    """The sensors' clock (tests set it)."""
    return datetime.now(UTC)


LATE_AFTER = timedelta(minutes=50)
"""A daily or weekly window is delivered a few minutes after it closes: watched once it is this late."""


def watched_window(
    cadence: Cadence, partitions: dg.TimeWindowPartitionsDefinition, now: datetime
) -> Window | None:
    """Hourly: the window before the latest complete one (t-2 → t-1, the partner feed's overlap
    rule). Daily and weekly: the latest complete window once it closed ``LATE_AFTER`` ago, so a
    missed day or week is noticed within the hour after it should have been delivered."""
    if cadence is Cadence.HOURLY:
        keys = partitions.get_partition_keys(current_time=now)
        return Window.of(partitions, keys[-2]) if len(keys) >= 2 else None
    return latest_window(partitions, now - LATE_AFTER)


def latest_window(partitions: dg.TimeWindowPartitionsDefinition, now: datetime) -> Window | None:
    """The latest window that is complete at ``now``."""
    keys = partitions.get_partition_keys(current_time=now)
    return Window.of(partitions, keys[-1]) if keys else None


def build_sharing_sensors(
    jobs: Mapping[Cadence, Any],
    partitions: Mapping[Cadence, dg.TimeWindowPartitionsDefinition],
    marts: dg.AssetsDefinition,
) -> list[dg.SensorDefinition]:
    """Daily and weekly sharing: one run per window (the partition key is the run key), launched as
    soon as every hourly mart partition of the window is built and none is being rebuilt. A schedule
    at a fixed minute would race the hourly job building the window's last hour."""
    return [
        _sharing_sensor(cadence, job, partitions[cadence], marts)
        for cadence, job in jobs.items()
        if cadence is not Cadence.HOURLY
    ]


def _sharing_sensor(
    cadence: Cadence, job: Any, partitions: dg.TimeWindowPartitionsDefinition, marts: dg.AssetsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{cadence}_sharing_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Delivers each {cadence} window to the active {cadence} businesses once every "
        "hourly mart partition of the window is built and none is being rebuilt.",
    )
    def sharing(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        window = latest_window(partitions, utc_now())
        if window is None:
            return dg.SkipReason(f"no {cadence} window has closed yet")
        unbuilt = unbuilt_hours(context.instance, marts, window)
        if unbuilt:
            return dg.SkipReason(
                f"{cadence} window {window.key} waits for its hourly marts: {summarise(unbuilt)}"
            )
        return dg.RunRequest(run_key=window.key, partition_key=window.key)

    return sharing


def build_watchdog(
    businesses: Mapping[Cadence, Sequence[Business]],
    partitions: Mapping[Cadence, dg.TimeWindowPartitionsDefinition],
    jobs: Mapping[Cadence, Any],
    relations: Mapping[Dataset, Relation],
    marts: dg.AssetsDefinition,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="delivery_watchdog",
        jobs=list(jobs.values()),
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Redelivers, and alerts on, every active business whose window t-2 → t-1 had rows "
        "but was not delivered.",
    )
    def watchdog(
        context: dg.SensorEvaluationContext,
        warehouse: dg.ResourceParam[Warehouse],
        archive: GcsArchive,
        s3: S3Buckets,
        keys: PlatformKeys,
        notifier: Notifier,
        state: StateStore,
    ) -> dg.SensorResult:
        try:
            return _watch(context, warehouse, archive, s3, keys, notifier, state)
        except Exception as error:  # a tick that fails says so, where people look
            _send(
                context,
                notifier,
                Alert(
                    kind="watchdog_failed",
                    title="the delivery watchdog tick failed",
                    text=f"{type(error).__name__}: {error}",
                ),
            )
            raise

    def _watch(
        context: dg.SensorEvaluationContext,
        warehouse: Warehouse,
        archive: GcsArchive,
        s3: S3Buckets,
        keys: PlatformKeys,
        notifier: Notifier,
        state: StateStore,
    ) -> dg.SensorResult:
        now = utc_now()
        watch = Watch(json.loads(context.cursor) if context.cursor else [])
        _, signing_cert = keys.signing_key()
        certifier = Certifier(
            warehouse, relations, archive, s3, signing_cert, state, grace=timedelta(0), now=now
        )
        unwatched: list[str] = []
        for cadence, active in businesses.items():
            window = watched_window(cadence, partitions[cadence], now)
            if window is None or not active:
                continue
            ids = set(watch.unwatched([b.id for b in active], window.key))
            watched = [b for b in active if b.id in ids]
            with suppress(Exception):  # each business below meets it again, and logs or reports it
                certifier.count_rows(watched, [window])
            verdicts = []
            for business in watched:
                try:
                    verdicts += certifier.certify(business, [window])
                except RelationMissing as missing:  # nothing built, so nothing to deliver yet
                    context.log.info(f"{business.id} {window.key} not watched: {missing}")
                except Exception as error:  # one broken business does not blind the watchdog to the rest
                    unwatched.append(f"{business.id} {window.key}: {type(error).__name__}: {error}")
                    context.log.error(f"watchdog could not certify {unwatched[-1]}")
            needs_marts = cadence is not Cadence.HOURLY and any(v.status.failing for v in verdicts)
            unbuilt = unbuilt_hours(context.instance, marts, window) if needs_marts else []
            watch.window(cadence, window.key, verdicts, [u.describe() for u in unbuilt])
        watch.blind(unwatched)
        for alert in watch.alerts:
            _send(context, notifier, alert)
        requests = [
            dg.RunRequest(
                run_key=redelivery.run_key,
                job_name=jobs[redelivery.cadence].name,
                partition_key=redelivery.window,
                asset_selection=[delivery_key(i) for i in redelivery.business_ids],
                tags={"s3_sharing/trigger": "watchdog", RESTATEMENT_TAG: redelivery.reason},
            )
            for redelivery in watch.redeliveries
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(watch.cursor()))

    return watchdog


def _send(context: dg.SensorEvaluationContext, notifier: Notifier, alert: Alert) -> None:
    """A notifier that is down loses this alert (logged), not the run requests of the tick."""
    try:
        notifier.send(alert)
    except Exception as error:
        context.log.error(f"alert {alert.kind!r} not sent ({type(error).__name__}: {error}): {alert.title}")
