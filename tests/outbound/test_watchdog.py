"""The watchdog's decisions as plain functions (no Dagster, no storage): redeliver a missed window
once, wait quietly for unbuilt hourly marts with one alert, say when it is blind. The sensor that
gathers the verdicts is tested against the local endpoints in ``test_sensors.py``."""

from s3_sharing.outbound.certification import Status, Verdict
from s3_sharing.outbound.watchdog import MEMORY, Watch, first_few
from s3_sharing.platform.time import Cadence

HOUR = "2026-01-01-05:00"


def verdict(business: str, status: Status, window: str = HOUR) -> Verdict:
    return Verdict(business, window, status, expected_rows=3, problems=("no manifest",))


def test_a_missed_window_is_redelivered_once_with_the_reason_and_one_alert():
    watch = Watch([])
    verdicts = [
        verdict("globex", Status.MISMATCHED),
        verdict("acme", Status.MISSING),
        verdict("zoe", Status.DELIVERED),
        verdict("umbrella", Status.PENDING),
    ]
    watch.window(Cadence.HOURLY, HOUR, verdicts, unbuilt=[])
    (redelivery,) = watch.redeliveries
    assert redelivery.business_ids == ["acme", "globex"]
    assert redelivery.run_key == f"watchdog:hourly:{HOUR}:acme,globex"
    assert redelivery.reason == "delivery_watchdog: acme missing; globex mismatched"
    (alert,) = watch.alerts
    assert alert.kind == "window_missed" and alert.partition == HOUR
    assert "2 hourly deliveries missed window" in alert.title
    assert "acme 2026-01-01-05:00: missing" in alert.text

    again = Watch(watch.cursor())  # the next tick, with this tick's cursor
    assert again.unwatched(["acme", "globex", "zoe"], HOUR) == ["zoe"]


def test_nothing_missed_decides_nothing():
    watch = Watch([])
    fine = [verdict("a", Status.DELIVERED), verdict("b", Status.EMPTY)]
    watch.window(Cadence.DAILY, "2026-01-01", fine, [])
    watch.blind([])
    assert not watch.redeliveries and not watch.alerts and watch.cursor() == []


def test_a_daily_window_waiting_for_its_hourly_marts_is_alerted_once_and_not_redelivered():
    unbuilt = [f"marts/fi_data 2026-01-01-{h:02d}:00 not built" for h in range(24)]
    watch = Watch([])
    watch.window(Cadence.DAILY, "2026-01-01", [verdict("initech", Status.MISSING, "2026-01-01")], unbuilt)
    assert not watch.redeliveries
    (alert,) = watch.alerts
    assert alert.kind == "window_waiting" and "24 hourly mart partitions" in alert.title
    assert alert.text.endswith("; and 4 more")
    later = Watch(watch.cursor())
    later.window(Cadence.DAILY, "2026-01-01", [verdict("initech", Status.MISSING, "2026-01-01")], unbuilt)
    assert not later.alerts and not later.redeliveries, "waiting is said once"
    built = Watch(later.cursor())
    built.window(Cadence.DAILY, "2026-01-01", [verdict("initech", Status.MISSING, "2026-01-01")], [])
    assert [r.business_ids for r in built.redeliveries] == [["initech"]], "then it is redelivered"


def test_a_blind_tick_says_which_businesses_it_could_not_certify():
    watch = Watch([])
    watch.blind(["acme 2026-01-01-05:00: StorageError: AccessDenied"])
    (alert,) = watch.alerts
    assert alert.kind == "watchdog_blind" and "could not certify 1 deliveries" in alert.title


def test_the_cursor_keeps_the_latest_entries_only():
    watch = Watch([f"old{i}@w" for i in range(MEMORY)])
    watch.window(Cadence.HOURLY, HOUR, [verdict("acme", Status.MISSING)], [])
    assert len(watch.cursor()) == MEMORY and watch.cursor()[-1] == f"acme@{HOUR}"
    assert first_few(["a", "b", "c"], limit=2) == "a; b; and 1 more"
