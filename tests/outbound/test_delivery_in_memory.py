"""Delivery and certification against the in-memory storage fakes: the fast tier's view of the
whole outbound path (real warehouse, real dbt marts, real OpenPGP; storage in memory)."""

import io
from datetime import UTC, datetime, timedelta

import pyarrow.csv as pacsv
import pysequoia
import pytest

from s3_sharing.outbound.certification import Certifier, Status
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.delivery import Deliverer, chain_head
from s3_sharing.outbound.layout import manifest_key
from s3_sharing.outbound.manifest import Manifest, sha256_hex
from s3_sharing.outbound.registry import load_registry
from s3_sharing.platform import crypto
from s3_sharing.platform.time import Window, hourly_partitions
from s3_sharing.platform.warehouse import DuckDBWarehouse
from s3_sharing.transform.dbt_assets import dbt_project, load_manifest, model_relation

from ..conftest import PARTITION_START
from ..fakes import MemoryArchive, MemoryBuckets, MemoryState

HOURS = hourly_partitions(PARTITION_START)
HOUR = Window.of(HOURS, "2026-01-01-05:00")


@pytest.fixture
def outbound(built, keys):
    """A deliverer and a certifier sharing one warehouse, one archive and one set of buckets."""
    registry, public_keys = load_registry(built.registry)
    manifest = load_manifest(dbt_project(built))
    relations = {d: model_relation(manifest, s.model) for d, s in SOURCES.items()}
    warehouse = DuckDBWarehouse(path=str(built.duckdb_path))
    signer, signing_cert = crypto.load_signer(keys["platform-signing"].secret.read_text(), None)
    archive, s3 = MemoryArchive(), MemoryBuckets()
    audit = crypto.load_cert(keys["audit"].public.read_text(), "audit key")
    state = MemoryState()
    deliverer = Deliverer(warehouse, relations, archive, s3, signer, audit, state)
    later = HOUR.end + timedelta(days=1)
    certifier = Certifier(warehouse, relations, archive, s3, signing_cert, state, now=later)
    return registry, public_keys, deliverer, certifier, archive, s3


def test_a_delivered_window_is_certified_and_each_file_opens_with_the_business_key(outbound, keys):
    registry, public_keys, deliverer, certifier, archive, s3 = outbound
    acme = registry.get("acme")
    report = deliverer.deliver(acme, public_keys["acme"], HOUR, "run-1")
    assert report.rows > 0 and report.manifest.files
    objects = s3.buckets["acme-bucket"]
    assert f"shared/{manifest_key(HOUR.start)}" in objects
    decryptor = pysequoia.Tsk.from_file(str(keys["acme"].secret)).decryptor()
    for file in report.manifest.files:
        body = objects["shared/" + file.key]
        assert archive.read(f"acme/{file.key}") == body
        plain = pysequoia.decrypt(body, decryptor=decryptor).bytes
        assert sha256_hex(plain) == file.plain_sha256
        assert pacsv.read_csv(io.BytesIO(plain)).num_rows == file.rows
    (verdict,) = certifier.certify(acme, [HOUR])
    assert verdict.status is Status.DELIVERED, verdict.describe()


def test_a_deleted_object_is_mismatched_and_named(outbound):
    registry, public_keys, deliverer, certifier, _, s3 = outbound
    acme = registry.get("acme")
    report = deliverer.deliver(acme, public_keys["acme"], HOUR, "run-1")
    victim = report.manifest.files[0].key
    del s3.buckets["acme-bucket"]["shared/" + victim]
    (verdict,) = certifier.certify(acme, [HOUR])
    assert verdict.status is Status.MISMATCHED
    assert f"{victim} missing in S3" in verdict.problems


def test_an_undelivered_window_with_rows_is_pending_then_missing(outbound):
    registry, _, _, certifier, _, _ = outbound
    acme = registry.get("acme")
    (missing,) = certifier.certify(acme, [HOUR])
    assert missing.status is Status.MISSING and missing.expected_rows > 0
    certifier.now = HOUR.end + timedelta(minutes=5)
    (pending,) = certifier.certify(acme, [HOUR])
    assert pending.status is Status.PENDING


def test_a_rerun_keeps_the_object_set_and_links_the_new_manifest_to_the_old(outbound):
    registry, public_keys, deliverer, certifier, archive, s3 = outbound
    acme = registry.get("acme")
    first = deliverer.deliver(acme, public_keys["acme"], HOUR, "run-1")
    head = chain_head(deliverer.state, "acme")
    objects = set(s3.buckets["acme-bucket"])
    second = deliverer.deliver(acme, public_keys["acme"], HOUR, "run-2")
    assert set(s3.buckets["acme-bucket"]) == objects
    assert second.manifest.previous == head and head.sha256 == first.manifest_sha256
    assert Manifest.from_bytes(archive.read(head.key)).run_id == "run-1"
    (verdict,) = certifier.certify(acme, [HOUR])
    assert verdict.status is Status.DELIVERED


def test_a_window_without_rows_writes_no_data_file_and_certifies_empty(outbound):
    registry, public_keys, deliverer, certifier, _, s3 = outbound
    quiet = Window("quiet", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 1, tzinfo=UTC))
    report = deliverer.deliver(registry.get("umbrella"), public_keys["umbrella"], quiet, "run-1")
    assert report.manifest.empty and report.manifest.files == []
    assert [k for k in s3.buckets["umbrella-bucket"] if k.endswith(".csv.pgp")] == []
    (verdict,) = certifier.certify(registry.get("umbrella"), [quiet])
    assert verdict.status is Status.EMPTY


def _copy(objects: dict[str, bytes], source: str, target: str) -> None:
    objects[target] = objects[source]


def test_an_object_no_manifest_lists_fails_the_window_and_is_named(outbound):
    registry, public_keys, deliverer, certifier, archive, s3 = outbound
    report = deliverer.deliver(registry.get("acme"), public_keys["acme"], HOUR, "run-1")
    stray = "2026-01-01/05/usr_ghost/FI_DATA.csv.pgp"  # what a crashed or concurrent run leaves
    _copy(s3.buckets["acme-bucket"], "shared/" + report.manifest.files[0].key, "shared/" + stray)
    _copy(archive.objects, "acme/" + report.manifest.files[0].key, "acme/" + stray)
    (verdict,) = certifier.certify(registry.get("acme"), [HOUR])
    assert verdict.status is Status.MISMATCHED
    assert f"{stray} in S3 is listed by no manifest" in verdict.problems
    assert f"{stray} in GCS is listed by no manifest" in verdict.problems


def test_files_without_their_manifest_are_pending_then_missing_and_named(outbound):
    """The state a run killed after its uploads and before its manifest leaves behind."""
    registry, public_keys, deliverer, certifier, archive, s3 = outbound
    report = deliverer.deliver(registry.get("acme"), public_keys["acme"], HOUR, "run-1")
    for name in (manifest_key(HOUR.start), manifest_key(HOUR.start) + ".sig"):
        del s3.buckets["acme-bucket"]["shared/" + name], archive.objects["acme/" + name]
    (missing,) = certifier.certify(registry.get("acme"), [HOUR])
    assert missing.status is Status.MISSING
    assert {f"{f.key} in S3 is listed by no manifest" for f in report.manifest.files} <= set(missing.problems)
    certifier.now = HOUR.end + timedelta(minutes=5)
    (pending,) = certifier.certify(registry.get("acme"), [HOUR])
    assert pending.status is Status.PENDING and len(pending.problems) == 1 + 2 * len(report.manifest.files)


def test_a_valid_manifest_copied_under_another_window_does_not_certify_that_window(outbound):
    registry, public_keys, deliverer, certifier, archive, s3 = outbound
    deliverer.deliver(registry.get("acme"), public_keys["acme"], HOUR, "run-1")
    later = Window.of(HOURS, "2026-01-01-06:00")
    for suffix in ("", ".sig"):
        source, target = manifest_key(HOUR.start) + suffix, manifest_key(later.start) + suffix
        _copy(s3.buckets["acme-bucket"], "shared/" + source, "shared/" + target)
        _copy(archive.objects, "acme/" + source, "acme/" + target)
    (verdict,) = certifier.certify(registry.get("acme"), [later])
    assert verdict.status is Status.MISMATCHED
    assert (
        f"manifest under {manifest_key(later.start)} is for business 'acme', "
        "window 2026-01-01T05:00:00Z → 2026-01-01T06:00:00Z" in verdict.problems
    )
