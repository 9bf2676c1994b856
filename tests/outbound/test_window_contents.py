"""What a window holds (issue: change feed and snapshots), as a partner sees it.

Real dbt on a DuckDB file, the local S3 and GCS, real gpg. The hourly schedule's normal behaviour is
kept: after a change lands, only the newest hour is built.
"""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from pydantic import ValidationError

from s3_sharing.outbound.contents import window_query
from s3_sharing.outbound.datasets import SOURCES, Dataset
from s3_sharing.outbound.delivery import RESTATEMENT_TAG, history_key
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.manifest import Manifest, sha256_hex
from s3_sharing.outbound.registry import Business, read_registry
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import DuckDBWarehouse, Query
from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB, dbt_project, load_manifest, model_relation

from ..conftest import query, registry_entry, write_registry
from .runs import certify, meta, role

DAY = datetime(2026, 1, 1, tzinfo=UTC)


def _hour(hour: int, day: int = 1) -> str:
    return f"2026-01-{day:02d}-{hour:02d}:00"


def _build_hour(settings, partition: str) -> None:
    """What the hourly schedule does after an hour closes: build that hour's marts, nothing older."""
    result = (
        build_outbound_location(settings)
        .resolve_job_def(HOURLY_MARTS_JOB)
        .execute_in_process(partition_key=partition)
    )
    assert result.success


def _deliver(settings, cadence: str, partition: str, tags=None) -> None:
    result = (
        build_outbound_location(settings)
        .resolve_job_def(f"{cadence}_deliveries_job")
        .execute_in_process(partition_key=partition, tags=tags)
    )
    assert result.success and result.get_asset_materialization_events()


def _new_version(settings, transaction_id: str, status: str, updated_at: str, loaded_at: str) -> None:
    """A newer version of a transaction lands in the raw change log, as the loader writes it."""
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(
            """insert into raw.transactions
               select * replace (? as status, cast(? as timestamp) as updated_at,
                                 cast(? as timestamp) as loaded_at)
               from raw.transactions where transaction_id = ? order by updated_at desc limit 1""",
            [status, updated_at, loaded_at, transaction_id],
        )


def _first_transaction(settings, business_id: str, hour: int) -> str:
    (found,) = query(
        settings,
        "select min(transaction_id) from main_marts.fi_data where business_id = ? and hour(loaded_at) = ?"
        " and status != 'failed'",
        business_id,
        hour,
    )[0]
    assert found is not None
    return found


def _files(settings, gpg, business_id: str, prefix: str, dataset: str) -> dict[str, list[dict[str, str]]]:
    """Every delivered file of ``dataset`` under ``prefix``, decrypted by gpg: rows by object key."""
    bucket = role(settings, business_id)
    return {
        key: gpg.open(bucket.read(key)).rows
        for key in sorted(bucket.sizes())
        if key.startswith(prefix) and key.endswith(f"/{dataset}.csv.pgp")
    }


def _analytics_implied_by(fi_data_rows: list[dict[str, str]]) -> dict[tuple[str, str], tuple]:
    """What ANALYTICS must say, from FI_DATA's rows: per user and category, count, debits, credits."""
    implied: dict[tuple[str, str], list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row in fi_data_rows:
        if row["status"] == "failed":
            continue
        totals = implied[(row["user_id"], row["category"])]
        totals[0] += 1
        totals[1 if row["direction"] == "debit" else 2] += Decimal(row["amount"])
    return {key: tuple(value) for key, value in implied.items()}


def _analytics_said(analytics_rows: list[dict[str, str]]) -> dict[tuple[str, str], tuple]:
    said: Counter = Counter()
    for row in analytics_rows:
        said[(row["user_id"], row["category"])] += 1
    assert max(said.values(), default=1) == 1, "one ANALYTICS row per user and category in a window"
    return {
        (r["user_id"], r["category"]): (
            int(r["transaction_count"]),
            Decimal(r["debit_amount"]),
            Decimal(r["credit_amount"]),
        )
        for r in analytics_rows
    }


def test_late_changes_go_into_the_window_that_received_them_and_delivered_windows_stay_certified(
    built, stack, keys, gpg_for
):
    write_registry(built.registry, [registry_entry("acme", keys)])
    for hour in range(3, 9):
        _deliver(built, "hourly", _hour(hour))
    bucket = role(built, "acme")
    published = {hour: bucket.read(f"_manifests/20260101T{hour:02d}00Z.json") for hour in (3, 4)}

    # A status change at 09:07 of a transaction received at 03:00, and a change whose business time is
    # 04:30 but which the platform only receives at 09:20.
    status_changed = _first_transaction(built, "acme", 3)
    arrived_late = _first_transaction(built, "acme", 4)
    _new_version(built, status_changed, "reversed", "2026-01-01 09:07:00", "2026-01-01 09:07:30")
    _new_version(built, arrived_late, "settled", "2026-01-01 04:30:00", "2026-01-01 09:20:00")
    _build_hour(built, _hour(9))
    _deliver(built, "hourly", _hour(9))

    check = certify(built, last=_hour(9), lookback=7)[("acme", "delivered")]
    assert check.passed, meta(check, "problems")
    assert meta(check, "mismatched") == [] and meta(check, "missing") == []
    for hour, body in published.items():  # what was delivered never changes, and needs no restating
        assert bucket.read(f"_manifests/20260101T{hour:02d}00Z.json") == body

    fi_data = [
        row
        for rows in _files(built, gpg_for("acme"), "acme", "2026-01-01/09/", "FI_DATA").values()
        for row in rows
    ]
    changes = {row["transaction_id"]: row for row in fi_data}
    assert changes[status_changed]["change_type"] == "update"
    assert changes[status_changed]["status"] == "reversed"
    assert changes[status_changed]["updated_at"].startswith("2026-01-01T09:07:00")
    assert changes[arrived_late]["updated_at"].startswith("2026-01-01T04:30:00")
    assert changes[arrived_late]["loaded_at"].startswith("2026-01-01T09:20:00")
    assert all(row["loaded_at"].startswith("2026-01-01T09:") for row in fi_data)

    analytics = [
        r
        for rows in _files(built, gpg_for("acme"), "acme", "2026-01-01/09/", "ANALYTICS").values()
        for r in rows
    ]
    assert _analytics_said(analytics) == _analytics_implied_by(fi_data)

    manifest = Manifest.from_bytes(bucket.read("_manifests/20260101T0900Z.json"))
    assert manifest.contents == "changes" and manifest.restatement is None


def _latest_as_of(settings, business_id: str, as_of: str, since: str) -> dict[str, tuple[str, str]]:
    """An independent oracle, from the raw change log: each transaction of the business's users as it
    stood at ``as_of`` (its newest version received before then), booked since ``since``."""
    rows = query(
        settings,
        """select t.transaction_id, t.status, u.user_id
           from raw.transactions t
           join (select distinct account_id, user_id from raw.accounts) a using (account_id)
           join (select distinct user_id, business_id from raw.users) u using (user_id)
           where u.business_id = ? and t.loaded_at < cast(? as timestamp)
             and t.booked_at >= cast(? as timestamp)
           qualify row_number() over (partition by t.transaction_id order by t.updated_at desc) = 1""",
        business_id,
        as_of,
        since,
    )
    return {txn: (status, user) for txn, status, user in rows}


def test_a_snapshot_business_gets_every_users_full_data_as_of_each_days_end(built, stack, keys, gpg_for):
    entry = registry_entry(
        "initech",
        keys,
        cadence="daily",
        contents="snapshot",
        lookback_days=2,
        datasets=["FI_DATA", "ANALYTICS"],
    )
    write_registry(built.registry, [entry])
    _deliver(built, "daily", "2026-01-01")
    changed = _first_transaction(built, "initech", 3)
    _new_version(built, changed, "reversed", "2026-01-02 10:00:00", "2026-01-02 10:00:05")
    _build_hour(built, _hour(10, day=2))
    _deliver(built, "daily", "2026-01-02")

    gpg = gpg_for("initech")
    for day, as_of, since in (
        ("2026-01-01", "2026-01-02 00:00:00", "2025-12-31 00:00:00"),
        ("2026-01-02", "2026-01-03 00:00:00", "2026-01-01 00:00:00"),
    ):
        expected = _latest_as_of(built, "initech", as_of, since)
        files = _files(built, gpg, "initech", f"{day}/", "FI_DATA")
        delivered = {}
        for key, rows in files.items():
            user = key.split("/")[-2]
            assert {row["user_id"] for row in rows} == {user}, "a user's folder holds only their rows"
            delivered.update({row["transaction_id"]: (row["status"], row["user_id"]) for row in rows})
        assert delivered == expected, day
        assert len(files) == len({user for _, user in expected.values()}), "one folder per user with data"
        analytics = _files(built, gpg, "initech", f"{day}/", "ANALYTICS")
        for key, rows in files.items():
            assert _analytics_said(analytics[key.replace("FI_DATA", "ANALYTICS")]) == _analytics_implied_by(
                rows
            )
        manifest = Manifest.from_bytes(
            role(built, "initech").read(f"_manifests/{day.replace('-', '')}T0000Z.json")
        )
        assert (manifest.contents, manifest.lookback_days) == ("snapshot", 2)
    assert (
        _latest_as_of(built, "initech", "2026-01-03 00:00:00", "2026-01-01 00:00:00")[changed][0]
        == "reversed"
    )
    assert (
        _latest_as_of(built, "initech", "2026-01-02 00:00:00", "2025-12-31 00:00:00")[changed][0]
        != "reversed"
    )

    checks = certify(built, last=_hour(11), lookback=1, daily_last="2026-01-02", daily_lookback=2)
    check = checks[("initech", "delivered")]
    assert check.passed and meta(check, "delivered") == 2, meta(check, "problems")


def _rows(warehouse: DuckDBWarehouse, window_query: Query) -> list[dict[str, str]]:
    batches = warehouse.stream(window_query)
    return [{k: str(v) for k, v in row.items()} for batch in batches for row in batch.to_pylist()]


@pytest.mark.parametrize("contents", ["changes", "snapshot"])
def test_analytics_is_what_fi_data_implies_in_every_window_of_the_demo_day(built, keys, contents):
    """Both data sets as delivery streams them, for every business and every hour of the day."""
    warehouse = DuckDBWarehouse(path=str(built.duckdb_path))
    manifest = load_manifest(dbt_project(built))
    relations = {d: model_relation(manifest, s.model) for d, s in SOURCES.items()}
    compared = 0
    for business_id in ("acme", "globex", "initech", "umbrella"):
        extra = {"contents": contents} | ({"lookback_days": 90} if contents == "snapshot" else {})
        business = Business.model_validate(registry_entry(business_id, keys, **extra))
        for hour in range(12):
            window = Window(_hour(hour), DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))

            fi_data = _rows(warehouse, window_query(business, Dataset.FI_DATA, window, relations))
            analytics = _rows(warehouse, window_query(business, Dataset.ANALYTICS, window, relations))
            assert _analytics_said(analytics) == _analytics_implied_by(fi_data), (business_id, hour)
            compared += len(fi_data)
    assert compared > 0


def test_delivering_a_window_again_is_an_explicit_restatement(built, stack, keys):
    write_registry(built.registry, [registry_entry("acme", keys)])
    _deliver(built, "hourly", _hour(5))
    bucket = role(built, "acme")
    first = bucket.read("_manifests/20260101T0500Z.json")
    _deliver(built, "hourly", _hour(5), tags={RESTATEMENT_TAG: "ticket 42: corrected merchant names"})
    second = Manifest.from_bytes(bucket.read("_manifests/20260101T0500Z.json"))
    assert Manifest.from_bytes(first).restatement is None
    assert second.restatement is not None
    assert second.restatement.reason == "ticket 42: corrected merchant names"
    assert second.restatement.replaces == history_key("acme", Manifest.from_bytes(first))
    assert second.restatement.replaces_sha256 == sha256_hex(first)
    assert certify(built, last=_hour(5), lookback=1)[("acme", "delivered")].passed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"contents": "everything"}, "contents"),
        ({"lookback_days": 30}, "lookback_days: only for contents: snapshot"),
        ({"contents": "snapshot", "lookback_days": 0}, "lookback_days"),
    ],
)
def test_the_registry_refuses_unclear_window_contents(tmp_path, keys, overrides, message):
    path = write_registry(tmp_path / "registry.yaml", [registry_entry("acme", keys, **overrides)])
    with pytest.raises((ValueError, ValidationError)) as error:
        read_registry(path)
    assert "acme" in str(error.value) and message in str(error.value)


def test_manifests_of_the_first_version_still_read():
    """Manifests published before ``contents`` and ``restatement`` existed stay readable (chain walks)."""
    old = Manifest.from_bytes(
        b'{"business_id": "acme", "cadence": "hourly", "window_start": "2026-01-01T05:00:00Z",'
        b' "window_end": "2026-01-01T06:00:00Z", "run_id": "r", "created_at": "2026-01-01T06:05:00Z",'
        b' "rows": {}, "schema_versions": {}, "files": [], "previous": null, "manifest_version": 1,'
        b' "empty": true}'
    )
    assert (old.contents, old.restatement, old.manifest_version) == ("changes", None, 1)
