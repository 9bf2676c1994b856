"""The delivered certification against the local endpoints: what it passes, what it catches."""

import json

import dagster as dg
import duckdb
import pytest

from s3_sharing.devtools.local_endpoints import local_stack
from s3_sharing.outbound.checks import run_windows
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.storage import GcsArchive

from ..conftest import ARCHIVE, default_registry, write_registry
from .runs import HOUR, certify, deliver, meta, role


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
            "select count(*) from main_marts.fi_data where business_id = 'umbrella' and hour(loaded_at) = 11"
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


def test_an_archive_copy_that_differs_from_its_intact_history_copy_fails_delivered(built, stack):
    """The certifier reuses a manifest the chain walk read when a store lists the same MD5: a copy
    changed in place (a new MD5) must still be read, and caught."""
    deliver(built, HOUR)
    archive = GcsArchive(bucket=ARCHIVE)
    name = "acme/_manifests/20260101T0500Z.json"
    body = json.loads(archive.read(name))
    body["rows"]["FI_DATA"] += 1
    archive.upload_bytes(name, json.dumps(body).encode(), "application/json")
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    assert "S3 and GCS manifests differ" in " ".join(meta(check, "problems"))


def test_a_late_row_in_a_delivered_window_fails_delivered(built, stack):
    deliver(built, HOUR)
    with duckdb.connect(str(built.duckdb_path)) as con:
        con.execute(
            "insert into main_marts.fi_data select * replace ('late_txn' as transaction_id) "
            "from main_marts.fi_data where business_id = 'acme' and hour(loaded_at) = 5 limit 1"
        )
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    assert any("FI_DATA: manifest has" in p and "warehouse now" in p for p in meta(check, "problems"))
    assert meta(check, "missing") == []


def test_in_a_delivery_run_delivered_certifies_the_windows_that_run_delivered(built, stack):
    """Earlier windows with rows are still undelivered (as during a backfill, when sibling runs
    deliver them at the same time): the run's own check must not fail on them; the scheduled
    look-back certification does."""
    defs = build_outbound_location(built)
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


@pytest.mark.e2e
def test_an_inactive_business_raises_no_false_alarm_and_the_metadata_says_why(
    built, keys, tmp_path, monkeypatch
):
    entries = default_registry(keys)
    entries[3]["active"] = False  # umbrella: never delivered, rows in every hour
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "inactive.yaml", entries)))
    settings = Settings.from_env()
    with local_stack(read_registry(settings.registry), ARCHIVE):
        checks = certify(settings)
    umbrella, acme = checks[("umbrella", "delivered")], checks[("acme", "delivered")]
    assert umbrella.passed and meta(umbrella, "windows") == 0
    assert meta(umbrella, "not_certified") == "3 windows: inactive since its registration"
    assert not acme.passed and meta(acme, "missing")  # an active business is still held to account


def _archive(settings):
    from s3_sharing.platform.storage import GcsArchive

    return GcsArchive(bucket=settings.archive_bucket)


def test_a_manifest_copied_under_another_windows_key_fails_delivered(built, stack):
    """A valid, signed manifest of 04:00 copied over 05:00's in both stores (signature included)."""
    for hour in ("2026-01-01-04:00", HOUR):
        deliver(built, hour)
    bucket, archive = role(built, "acme"), _archive(built)
    for suffix in (".json", ".json.sig"):
        source, target = f"_manifests/20260101T0400Z{suffix}", f"_manifests/20260101T0500Z{suffix}"
        body = bucket.read(source)
        bucket.upload_bytes(target, body, "application/octet-stream")
        archive.upload_bytes(f"acme/{target}", body, "application/octet-stream")
    check = certify(built, lookback=2)[("acme", "delivered")]
    assert not check.passed and HOUR in meta(check, "mismatched")
    problems = " ".join(meta(check, "problems"))
    assert (
        "manifest under _manifests/20260101T0500Z.json is for business 'acme', window 2026-01-01T04:00"
        in problems
    )


def test_an_object_no_manifest_lists_fails_delivered_and_is_named(built, stack):
    deliver(built, HOUR)
    stray = "2026-01-01/05/usr_stray/FI_DATA.csv.pgp"
    role(built, "acme").upload_bytes(stray, b"stray", "application/pgp-encrypted")
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    assert any(f"{stray} in S3 is listed by no manifest" in p for p in meta(check, "problems"))


def test_a_forked_manifest_chain_fails_delivered_and_names_the_unreachable_manifest(built, stack):
    """A second writer's manifest that the chain head never linked (what two unserialized writers
    leave): archived in the history, unreachable from the head."""
    from s3_sharing.outbound.delivery import HISTORY

    deliver(built, HOUR)
    archive = _archive(built)
    history = f"acme/{HISTORY}"
    (name,) = archive.listing(history)
    forked = name.replace(".json", "-forked.json")
    archive.upload_bytes(forked, archive.read(name), "application/json")
    check = certify(built, lookback=1)[("acme", "delivered")]
    assert not check.passed and meta(check, "mismatched") == [HOUR]
    assert any(f"manifest chain forked: {forked} is not reachable" in p for p in meta(check, "problems"))
