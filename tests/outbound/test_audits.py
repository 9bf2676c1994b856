"""keys_valid and tenant_isolation, evaluated as the certification job does."""

import dagster as dg
import pytest

from s3_sharing.devtools.local_endpoints import local_stack
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.storage import GcsArchive

from ..conftest import ARCHIVE, default_registry, query, registry_entry, write_registry
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
