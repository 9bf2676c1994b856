"""keys_valid and tenant_isolation, evaluated as the certification job does."""

from urllib.parse import unquote

import dagster as dg
import duckdb
import pytest

from s3_sharing.devtools.local_endpoints import local_stack
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.storage import GcsArchive

from ..conftest import ARCHIVE, default_registry, query, registry_entry, write_registry
from ..gpg import Gpg
from .runs import HOUR, certify, deliver, meta

pytestmark = pytest.mark.e2e


def test_keys_valid_warns_ten_days_ahead_and_errors_when_expired(settings, keys, tmp_path, monkeypatch):
    entries = default_registry(keys)
    entries[0] = registry_entry("acme", keys, public_key={"file": str(keys["expiring"].public)})
    entries[1]["public_key"] = {"file": str(keys["expired"].public)}
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "keys.yaml", entries)))
    from s3_sharing.platform.settings import Settings

    with local_stack(read_registry(Settings.from_env().registry), ARCHIVE):
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
    assert meta(check, "sampled_files") > 0 and meta(check, "foreign_rows") == 0


def test_rows_of_another_business_are_counted_and_no_user_id_reaches_metadata(built, stack):
    deliver(built, HOUR)
    archive = GcsArchive(bucket=ARCHIVE)
    acme_files = sorted(k for k in archive.listing("acme/") if k.endswith(".csv.pgp"))
    globex_files = sorted(k for k in archive.listing("globex/") if k.endswith(".csv.pgp"))
    # acme's archived files replaced by a globex one (both open with the audit key).
    foreign = archive.read(globex_files[0]) or b""
    for name in acme_files:
        archive.upload_bytes(name, foreign, "application/pgp-encrypted")

    check = certify(built, lookback=1)[("acme", "tenant_isolation")]

    assert not check.passed
    assert meta(check, "files_with_foreign_rows") == meta(check, "sampled_files") > 0
    assert meta(check, "foreign_rows") > 0
    users = {u for (u,) in query(built, "SELECT user_id FROM raw.users")}
    shown = " ".join(str(v.value) for v in check.metadata.values())
    assert not [u for u in users if u in shown], "a user id reached the check's metadata"


def test_a_row_of_a_user_the_warehouse_gives_to_another_business_is_foreign(built, stack):
    deliver(built, HOUR)
    # One of the users in acme's delivered hour now belongs to globex in the warehouse: acme's
    # files carry rows of a user not its own, though every row says business acme.
    (user, rows), *_ = query(
        built,
        "SELECT user_id, count(*) FROM main_marts.fi_data WHERE business_id = 'acme'"
        " AND loaded_at >= TIMESTAMP '2026-01-01 05:00' AND loaded_at < TIMESTAMP '2026-01-01 06:00'"
        " GROUP BY user_id ORDER BY user_id",
    )
    with duckdb.connect(str(built.duckdb_path)) as con:
        con.execute("UPDATE raw.users SET business_id = 'globex' WHERE user_id = ?", [user])

    checks = certify(built, lookback=1)

    acme = checks[("acme", "tenant_isolation")]
    assert not acme.passed
    assert meta(acme, "foreign_rows") >= rows and meta(acme, "files_with_foreign_rows") >= 1
    assert checks[("globex", "tenant_isolation")].passed


def test_a_spreadsheet_safe_business_gets_neutralised_text_and_still_passes_its_audit(
    built, keys, tmp_path, monkeypatch
):
    from s3_sharing.platform.settings import Settings

    entries = default_registry(keys)
    entries[0] = registry_entry("acme", keys, spreadsheet_safe=True)
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "safe.yaml", entries)))
    safe = Settings.from_env()
    (user,) = query(safe, "SELECT min(user_id) FROM main_marts.fi_data WHERE business_id = 'acme'")[0]
    formula = f'=HYPERLINK("http://evil","{user}")'
    with duckdb.connect(str(safe.duckdb_path)) as con:  # a user id a spreadsheet would run
        for table in ("raw.users", "main_marts.fi_data", "main_marts.analytics"):
            con.execute(f"UPDATE {table} SET user_id = ? WHERE user_id = ?", [formula, user])
    with local_stack(read_registry(safe.registry), ARCHIVE) as stack:
        deliver(safe, HOUR)
        checks = certify(safe, lookback=1)
        reader = stack.reader_client()
        keys_listed = [o["Key"] for o in reader.list_objects_v2(Bucket="acme-bucket")["Contents"]]
        (file_key,) = [k for k in keys_listed if "FI_DATA" in k and "HYPERLINK" in unquote(k)]
        body = reader.get_object(Bucket="acme-bucket", Key=file_key)["Body"].read()
    gpg = Gpg(keys["acme"].secret, keys["platform-signing"].public)  # the partner's own client
    rows = gpg.open(body).rows
    gpg.close()
    assert rows and {r["user_id"] for r in rows} == {"'" + formula}, "the formula is neutralised"
    assert all(not r["amount"].startswith("'") for r in rows), "numbers are never changed"
    assert checks[("acme", "tenant_isolation")].passed, checks[("acme", "tenant_isolation")].metadata
    assert checks[("acme", "delivered")].passed, checks[("acme", "delivered")].metadata
