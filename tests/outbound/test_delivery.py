"""End to end against real local endpoints: moto's server (S3/STS/IAM/KMS, IAM enforced) and the
GCS emulator, real dbt on DuckDB, real OpenPGP checked with GnuPG."""

import json

import boto3
import dagster as dg
import duckdb
import pytest
from botocore.exceptions import ClientError
from google.cloud import storage

from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.manifest import Manifest, sha256_hex
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform.storage import S3Buckets

from ..conftest import ARCHIVE, default_registry, query, registry_entry, write_registry
from ..gpg import Gpg

pytestmark = pytest.mark.e2e

HOUR = "2026-01-01-05:00"
WINDOW = ("2026-01-01 05:00:00", "2026-01-01 06:00:00")


def deliver(settings, cadence: str, partition: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    defs = build_outbound_location(settings)
    return defs.resolve_job_def(f"{cadence}_deliveries_job").execute_in_process(
        partition_key=partition, raise_on_error=raise_on_error
    )


def bucket_objects(stack, bucket: str) -> dict[str, bytes]:
    s3 = stack.reader_client()
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def archive_names(prefix: str = "") -> set[str]:
    return {b.name for b in storage.Client().list_blobs(ARCHIVE, prefix=prefix)}


def warehouse_rows(settings, mart: str, business_id: str, column: str = "loaded_at") -> dict[str, tuple]:
    key = {"fi_data": "transaction_id", "analytics": "analytics_id", "identity": "user_id"}.get(mart)
    key = key or {"payments": "payment_id", "transactions": "transaction_id"}.get(mart, "beneficiary_id")
    rows = query(
        settings,
        f"select {key}, user_id from main_marts.{mart} "
        f"where business_id = ? and {column} >= ? and {column} < ?",
        business_id,
        *WINDOW,
    )
    return {row[0]: row for row in rows}


def test_every_file_decrypts_with_gpg_is_signed_and_equals_the_warehouse_rows(built, stack, keys, gpg_for):
    result = deliver(built, "hourly", HOUR)
    assert result.success
    gpg = gpg_for("acme")
    objects = bucket_objects(stack, "acme-bucket")
    data_files = {k: v for k, v in objects.items() if k.endswith(".csv.pgp")}
    delivered: dict[str, dict[str, dict[str, str]]] = {"FI_DATA": {}, "ANALYTICS": {}}
    for key, body in data_files.items():
        # per-user layout: shared/<date>/<hour>/<user_id>/<DATASET>.csv.pgp
        _, date, hour, user_id, name = key.split("/")
        assert (date, hour) == ("2026-01-01", "05")
        opened = gpg.open(body)
        assert opened.signed_by(keys["platform-signing"].fingerprint)
        for row in opened.rows:
            assert row["business_id"] == "acme" and row["user_id"] == user_id
            id_column = "transaction_id" if name.startswith("FI_DATA") else "analytics_id"
            delivered[name.split(".")[0]][row[id_column]] = row
    expected_fi = warehouse_rows(built, "fi_data", "acme")
    assert expected_fi and set(delivered["FI_DATA"]) == set(expected_fi)
    assert set(delivered["ANALYTICS"]) == set(warehouse_rows(built, "analytics", "acme", "window_start"))
    # Tricky text (commas, quotes, newlines, non-ASCII) survives the CSV round trip exactly.
    merchants = dict(
        query(built, "select transaction_id, merchant from main_marts.fi_data where business_id = 'acme'")
    )
    assert all(row["merchant"] == merchants[txn] for txn, row in delivered["FI_DATA"].items())
    # The audit key opens the same files.
    audit = Gpg(keys["audit"].secret, keys["platform-signing"].public)
    try:
        assert audit.open(next(iter(data_files.values()))).plaintext
    finally:
        audit.close()


def test_the_per_data_set_layout_writes_one_file_per_data_set(built, stack, gpg_for):
    assert deliver(built, "hourly", HOUR).success
    objects = bucket_objects(stack, "globex-bucket")
    manifest = Manifest.from_bytes(objects["psp/inbound/_manifests/20260101T0500Z.json"])
    for file in manifest.files:
        assert file.key == f"{file.dataset}/2026-01-01/05/{file.dataset}_20260101T0500Z.csv.pgp"
        rows = gpg_for("globex").open(objects["psp/inbound/" + file.key]).rows
        assert len(rows) == file.rows and {r["business_id"] for r in rows} == {"globex"}
    assert manifest.rows["PAYMENTS"] == len(warehouse_rows(built, "payments", "globex"))


def test_objects_are_written_by_the_assumed_role_with_acl_and_sse(built, stack):
    assert deliver(built, "hourly", HOUR).success
    s3 = stack.reader_client()
    globex = s3.list_objects_v2(Bucket="globex-bucket")["Contents"]
    for item in globex:
        head = s3.head_object(Bucket="globex-bucket", Key=item["Key"])
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == stack.kms_key_arns["globex"] or head["SSEKMSKeyId"].endswith(
            "alias/globex"
        )
    acme_key = s3.list_objects_v2(Bucket="acme-bucket")["Contents"][0]["Key"]
    assert s3.head_object(Bucket="acme-bucket", Key=acme_key)["ServerSideEncryption"] == "AES256"
    grants = s3.get_object_acl(Bucket="acme-bucket", Key=acme_key)["Grants"]
    assert any(g["Permission"] == "FULL_CONTROL" for g in grants)
    # IAM is enforced: the platform's own credentials cannot write to a business bucket, so the
    # objects above can only have been written with the assumed role's credentials.
    platform = boto3.session.Session().client("s3")
    with pytest.raises(ClientError, match="AccessDenied"):
        platform.put_object(Bucket="acme-bucket", Key="shared/forged.csv", Body=b"x")


def test_buckets_opened_through_one_resource_each_keep_their_own_role(built, stack):
    """One boto3 session makes every business's clients; each client still holds only the
    credentials of its own business's role, which the other business's bucket refuses."""
    s3, registry = S3Buckets(), read_registry(built.registry)
    acme, globex = (registry.get(b).open_bucket(s3) for b in ("acme", "globex"))
    acme.upload_bytes("probe.txt", b"acme", "text/plain")
    assert acme.read("probe.txt") == b"acme"
    with pytest.raises(ClientError, match="AccessDenied"):
        globex.client.get_object(Bucket="acme-bucket", Key="shared/probe.txt")
    with pytest.raises(ClientError, match="AccessDenied"):
        acme.client.put_object(Bucket="globex-bucket", Key="shared/forged.csv", Body=b"x")


def test_a_rerun_keeps_the_object_set_and_chains_a_new_manifest(built, stack):
    assert deliver(built, "hourly", HOUR).success
    first = bucket_objects(stack, "acme-bucket")
    assert deliver(built, "hourly", HOUR).success
    second = bucket_objects(stack, "acme-bucket")
    assert set(first) == set(second)
    manifest_key = "shared/_manifests/20260101T0500Z.json"
    old, new = Manifest.from_bytes(first[manifest_key]), Manifest.from_bytes(second[manifest_key])
    assert [(f.key, f.rows, f.plain_sha256) for f in old.files] == [
        (f.key, f.rows, f.plain_sha256) for f in new.files
    ]
    assert new.previous is not None and new.run_id != old.run_id
    archived_previous = storage.Client().bucket(ARCHIVE).blob(new.previous.key).download_as_bytes()
    assert sha256_hex(archived_previous) == new.previous.sha256
    assert Manifest.from_bytes(archived_previous).run_id == old.run_id


def test_a_changed_window_replaces_its_files_and_removes_stale_ones(built, stack):
    assert deliver(built, "hourly", HOUR).success
    before = bucket_objects(stack, "acme-bucket")
    (moved_user,) = query(
        built,
        "select user_id from main_marts.fi_data where business_id = 'acme' "
        "and loaded_at >= ? and loaded_at < ? order by user_id limit 1",
        *WINDOW,
    )[0]
    with duckdb.connect(str(built.duckdb_path)) as con:  # the user's changes now belong to a later hour
        for mart, column in (("fi_data", "loaded_at"), ("analytics", "window_start")):
            con.execute(
                f"update main_marts.{mart} set {column} = {column} + interval 3 hour "
                f"where user_id = ? and {column} >= ? and {column} < ?",
                [moved_user, *WINDOW],
            )
    assert deliver(built, "hourly", HOUR).success
    after = bucket_objects(stack, "acme-bucket")
    gone = {k for k in before if f"/{moved_user}/" in k}
    assert gone and not gone & set(after)
    assert not {k.removeprefix("shared/") for k in gone} & {
        n.removeprefix("acme/") for n in archive_names("acme/")
    }
    manifest = Manifest.from_bytes(after["shared/_manifests/20260101T0500Z.json"])
    assert moved_user not in {f.user_id for f in manifest.files}
    assert set(after) == {"shared/" + f.key for f in manifest.files} | {
        "shared/_manifests/20260101T0500Z.json",
        "shared/_manifests/20260101T0500Z.json.sig",
    }


def test_an_empty_window_writes_no_data_files_and_is_recorded_as_empty(built, stack):
    quiet_hours = query(
        built,
        """select h from range(0, 12) t(h) where not exists (
             select 1 from main_marts.fi_data where business_id = 'umbrella'
             and hour(loaded_at) = h)""",
    )
    assert quiet_hours, "TINY data should leave the last business quiet for some hours"
    hour = f"2026-01-01-{quiet_hours[0][0]:02d}:00"
    result = deliver(built, "hourly", hour)
    metadata = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["deliveries", "umbrella"])
    )
    assert metadata["empty"].value is True and metadata["dagster/row_count"].value == 0
    objects = bucket_objects(stack, "umbrella-bucket")
    manifest_key = f"shared/_manifests/20260101T{quiet_hours[0][0]:02d}00Z.json"
    assert set(objects) == {manifest_key, manifest_key + ".sig"}
    manifest = Manifest.from_bytes(objects[manifest_key])
    assert manifest.empty and manifest.files == [] and manifest.rows == {"FI_DATA": 0}


def test_the_manifest_is_signed_and_lists_sizes_and_checksums(built, stack, keys, gpg_for):
    assert deliver(built, "hourly", HOUR).success
    objects = bucket_objects(stack, "acme-bucket")
    body = objects["shared/_manifests/20260101T0500Z.json"]
    assert gpg_for("acme").verify_detached(body, objects["shared/_manifests/20260101T0500Z.json.sig"])
    assert not gpg_for("acme").verify_detached(
        body.replace(b'"rows"', b'"Rows"'), objects["shared/_manifests/20260101T0500Z.json.sig"]
    )
    manifest = Manifest.from_bytes(body)
    assert manifest.window_start == "2026-01-01T05:00:00Z" and manifest.window_end == "2026-01-01T06:00:00Z"
    for file in manifest.files:
        cipher = objects["shared/" + file.key]
        assert len(cipher) == file.cipher_bytes and sha256_hex(cipher) == file.cipher_sha256
        plain = gpg_for("acme").open(cipher).plaintext
        assert len(plain) == file.plain_bytes and sha256_hex(plain) == file.plain_sha256
    assert sum(manifest.rows.values()) == sum(f.rows for f in manifest.files)
    assert json.loads(body)["empty"] is False


def test_one_failing_business_does_not_stop_the_others(settings, built, keys, tmp_path, monkeypatch):
    entries = default_registry(keys)
    entries[0] = registry_entry("acme", keys, public_key={"file": str(keys["signing-only"].public)})
    entries[1] = registry_entry(
        "globex",
        keys,
        destination={
            "bucket_arn": "arn:aws:s3:::no-such-bucket",
            "region": "eu-west-1",
            "role_arn": "arn:aws:iam::123456789012:role/deliver-globex",
        },
    )
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "failing.yaml", entries)))
    from s3_sharing.devtools.local_endpoints import local_stack
    from s3_sharing.outbound.registry import read_registry
    from s3_sharing.platform.settings import Settings

    failing = Settings.from_env()
    provisioned = read_registry(built.registry)  # globex's real bucket exists; no-such-bucket does not
    with local_stack(provisioned, ARCHIVE) as stack:
        result = deliver(failing, "hourly", HOUR, raise_on_error=False)
        assert not result.success
        materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert materialized == {"umbrella"}
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.error.message
        assert "business 'acme': cannot encrypt to its key" in message
        assert "business 'globex'" in message and "no-such-bucket" in message
        assert bucket_objects(stack, "umbrella-bucket")
        assert not bucket_objects(stack, "acme-bucket")
        # The check step is skipped after the failed step; the step evaluated the checks itself.
        checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
        assert checks[("umbrella", "delivered")].passed and checks[("umbrella", "tenant_isolation")].passed
        assert checks[("umbrella", "tenant_isolation")].metadata["sampled_files"].value > 0
        assert not checks[("acme", "keys_valid")].passed and not checks[("acme", "delivered")].passed
        assert "no-such-bucket" in str(checks[("globex", "delivered")].metadata["error"].value)


def test_an_expired_business_key_blocks_its_delivery(built, keys, tmp_path, monkeypatch):
    entries = default_registry(keys)
    entries[0] = registry_entry("acme", keys, public_key={"file": str(keys["expired"].public)})
    monkeypatch.setenv("S3_SHARING_REGISTRY", str(write_registry(tmp_path / "expired.yaml", entries)))
    from s3_sharing.devtools.local_endpoints import local_stack
    from s3_sharing.outbound.registry import read_registry
    from s3_sharing.platform.settings import Settings

    expired = Settings.from_env()
    with local_stack(read_registry(expired.registry), ARCHIVE) as stack:
        result = deliver(expired, "hourly", HOUR, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "business 'acme'" in failure.step_failure_data.error.message
        assert "expired on 2020-01-02" in failure.step_failure_data.error.message
        assert not bucket_objects(stack, "acme-bucket")


def test_the_endpoints_command_serves_until_stopped(settings, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    env_file = tmp_path / "endpoints.env"
    process = subprocess.Popen(
        [sys.executable, "-m", "s3_sharing.cli", "endpoints", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        variables = dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
        assert variables["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert variables["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        session = boto3.session.Session(
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            region_name="eu-west-1",
        )
        sts = session.client("sts", endpoint_url=variables["AWS_ENDPOINT_URL"])
        assert sts.get_caller_identity()["Arn"].endswith(":user/s3-sharing-platform")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "local endpoints stopped" in output
    assert not env_file.exists()
    assert os.environ.get("AWS_ENDPOINT_URL") is None
