"""The delivery checks' evaluation as plain code, against the in-memory storage fakes (no Dagster
run): what ``delivered``, ``keys_valid`` and ``tenant_isolation`` decide and say. The checks as
Dagster records them are tested end to end in ``test_certification.py`` and ``test_audits.py``."""

from concurrent.futures import ThreadPoolExecutor

from s3_sharing.outbound.datasets import SOURCES, USERS_MODEL
from s3_sharing.outbound.delivery import Deliverer
from s3_sharing.outbound.evaluation import DeliveryCheck, Evaluation
from s3_sharing.outbound.registry import load_registry
from s3_sharing.platform import crypto
from s3_sharing.platform.keys import Severity
from s3_sharing.platform.resources import PlatformKeys
from s3_sharing.platform.time import Window, hourly_partitions
from s3_sharing.platform.warehouse import DuckDBWarehouse
from s3_sharing.transform.dbt_assets import dbt_project, load_manifest, model_relation

from ..conftest import PARTITION_START
from ..fakes import MemoryArchive, MemoryBuckets, MemoryState

HOUR = Window.of(hourly_partitions(PARTITION_START), "2026-01-01-05:00")


def platform_keys(keys, audit_secret: bool = True) -> PlatformKeys:
    return PlatformKeys(
        signing_key_file=str(keys["platform-signing"].secret),
        audit_key_file=str(keys["audit"].public),
        audit_secret_key_file=str(keys["audit"].secret) if audit_secret else None,
    )


def evaluation(settings, keys, audit_secret: bool = True):
    manifest = load_manifest(dbt_project(settings))
    relations = {d: model_relation(manifest, s.model) for d, s in SOURCES.items()}
    warehouse = DuckDBWarehouse(path=str(settings.duckdb_path))
    archive, s3, state = MemoryArchive(), MemoryBuckets(), MemoryState()
    found = Evaluation(
        warehouse,
        archive,  # type: ignore[arg-type]
        s3,  # type: ignore[arg-type]
        platform_keys(keys, audit_secret),
        relations,
        model_relation(manifest, USERS_MODEL),
        state,  # type: ignore[arg-type]
        key_warning_days=30,
    )
    signer, _ = crypto.load_signer(keys["platform-signing"].secret.read_text(), None)
    audit = crypto.load_cert(keys["audit"].public.read_text(), "audit key")
    deliverer = Deliverer(warehouse, relations, archive, s3, signer, audit, state)  # type: ignore[arg-type]
    return found, deliverer


def test_delivered_passes_once_the_window_is_delivered_and_names_what_is_missing_before(built, keys):
    registry, public_keys = load_registry(built.registry)
    acme = registry.get("acme")
    checks, deliverer = evaluation(built, keys)
    before = checks.evaluate(DeliveryCheck.DELIVERED, acme, [HOUR], public_keys["acme"])
    assert not before.passed and before.severity is Severity.ERROR
    assert before.metadata["missing"] == [HOUR.key] and before.metadata["windows"] == 1
    deliverer.deliver(acme, public_keys["acme"], HOUR, "run-1")
    after = checks.evaluate(DeliveryCheck.DELIVERED, acme, [HOUR], public_keys["acme"])
    assert after.passed and after.metadata["delivered"] == 1 and after.metadata["missing"] == []


def test_keys_valid_warns_before_expiry_errors_when_expired_and_a_bad_key_fails_only_its_check(
    settings, keys
):
    registry, _ = load_registry(settings.registry)
    acme = registry.get("acme")
    checks, _ = evaluation(settings, keys)
    good = checks.evaluate(DeliveryCheck.KEYS_VALID, acme, [], keys["acme"].public.read_text())
    assert good.passed and good.metadata["findings"] == []
    soon = checks.evaluate(DeliveryCheck.KEYS_VALID, acme, [], keys["expiring"].public.read_text())
    assert not soon.passed and soon.severity is Severity.WARN
    assert any("expires in" in f for f in soon.metadata["findings"])
    expired = checks.evaluate(DeliveryCheck.KEYS_VALID, acme, [], keys["expired"].public.read_text())
    assert not expired.passed and expired.severity is Severity.ERROR
    broken = checks.evaluate(DeliveryCheck.KEYS_VALID, acme, [], "not a key")
    assert not broken.passed and broken.severity is Severity.ERROR and broken.metadata["error"]


def test_tenant_isolation_samples_the_latest_delivery_or_says_why_it_cannot(built, keys):
    registry, public_keys = load_registry(built.registry)
    acme = registry.get("acme")
    checks, deliverer = evaluation(built, keys)
    with ThreadPoolExecutor(2) as pool:
        (nothing_yet,) = checks.tenant_isolation([acme], pool).values()
        assert nothing_yet.passed and nothing_yet.metadata["reason"] == "no delivery yet"
        deliverer.deliver(acme, public_keys["acme"], HOUR, "run-1")
        (sampled,) = checks.tenant_isolation([acme], pool).values()
    assert sampled.passed and sampled.metadata["sampled_files"] > 0 and sampled.metadata["foreign_rows"] == 0
    blind, _ = evaluation(built, keys, audit_secret=False)
    with ThreadPoolExecutor(1) as pool:
        (unsampled,) = blind.tenant_isolation([acme], pool).values()
    assert not unsampled.passed and unsampled.severity is Severity.WARN
    assert "no audit secret key configured" in unsampled.metadata["reason"]
