"""Delivery writers in processes of their own, as two runs or two machines would be.

``start`` is a process pool's initializer (the environment points at the test's local endpoints);
``deliver`` delivers one window of one business, beginning at a given moment so that writers
really overlap, and returns what happened instead of raising.
"""

import os
import time
from datetime import timedelta

from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.delivery import Deliverer
from s3_sharing.outbound.registry import Registry, load_registry
from s3_sharing.platform import crypto
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Window, hourly_partitions
from s3_sharing.platform.warehouse import DuckDBWarehouse
from s3_sharing.transform.dbt_assets import dbt_project, load_manifest, model_relation

_deliverer: Deliverer
_registry: Registry
_public_keys: dict[str, str]
_settings: Settings


def start(environment: dict[str, str], lease_ttl_seconds: float = 120) -> None:
    global _deliverer, _registry, _public_keys, _settings
    os.environ.update(environment)
    _settings = Settings.from_env()
    _registry, _public_keys = load_registry(_settings.registry)
    manifest = load_manifest(dbt_project(_settings))
    signer, _ = crypto.load_signer(_settings.signing_key_file.read_text(), None)
    _deliverer = Deliverer(
        warehouse=DuckDBWarehouse(path=str(_settings.duckdb_path)),
        relations={d: model_relation(manifest, s.model) for d, s in SOURCES.items()},
        archive=GcsArchive(bucket=_settings.archive_bucket),
        s3=S3Buckets(),
        signer=signer,
        audit_cert=crypto.load_cert(_settings.audit_key_file.read_text(), "audit key"),
        state=StateStore(bucket=_settings.state_bucket),
        lease_ttl=timedelta(seconds=lease_ttl_seconds),
        work_root=_settings.work_dir,
    )


def deliver(business_id: str, partition: str, run_id: str, at: float = 0.0) -> tuple[str, bool]:
    """("ok" or the error, whether this writer had to wait for another)."""
    waited: list[str] = []
    time.sleep(max(0.0, at - time.time()))
    window = Window.of(hourly_partitions(_settings.partition_start), partition)
    business = _registry.get(business_id)
    try:
        _deliverer.deliver(business, _public_keys[business_id], window, run_id, waited.append)
    except Exception as error:
        return f"{type(error).__name__}: {error}", bool(waited)
    return "ok", bool(waited)
