"""What the CLI's runbook commands and the demo do, through the same code path as the assets."""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from s3_sharing.certification import Certifier, PartitionWindow, Verdict
from s3_sharing.datasets import SOURCES
from s3_sharing.dbt_models import dbt_project, load_manifest, model_relation
from s3_sharing.deliveries import cadence_partitions, delivery_key
from s3_sharing.keygen import generate_key_pair
from s3_sharing.layout import Cadence
from s3_sharing.local_endpoints import BusinessBucket, LocalEndpoints
from s3_sharing.location import deliveries_job_name
from s3_sharing.registry import Business, Registry, read_registry
from s3_sharing.resources import build_resources
from s3_sharing.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def ensure_demo_keys(settings: Settings, registry: Registry, keys_dir: Path) -> None:
    """The platform's signing and audit keys and a key pair per business, made once with GnuPG."""
    for name, path in (("platform-signing", settings.signing_key_file), ("audit", settings.audit_key_file)):
        if not path.exists():
            generate_key_pair(path.parent, name)
    for business in registry.businesses:
        if not (keys_dir / f"{business.id}.pub").exists():
            generate_key_pair(keys_dir, business.id)


@contextmanager
def local_stack(registry: Registry, archive_bucket: str) -> Iterator[LocalEndpoints]:
    """Local S3/STS/IAM/KMS and GCS with the registry's buckets and roles; the process environment
    points at them while the block runs."""
    saved = dict(os.environ)
    with LocalEndpoints() as endpoints:
        endpoints.provision([BusinessBucket.of(b) for b in registry.businesses], archive_bucket)
        endpoints.enforce_iam()
        os.environ.update(endpoints.environment())
        try:
            yield endpoints
        finally:
            os.environ.clear()
            os.environ.update(saved)


@dataclass
class Outcome:
    """What happened to one business over a range of its partitions."""

    business_id: str
    cadence: str
    delivered: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rows: int = 0
    files: int = 0


def chosen(businesses: Sequence[Business], business_ids: Sequence[str] | None) -> list[Business]:
    """The named businesses, or every active one when none is named."""
    return [b for b in businesses if (b.id in business_ids if business_ids else b.active)]


def deliver(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    registry: Registry,
    cadence: Cadence,
    partition_keys: Sequence[str],
    business_ids: Sequence[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Outcome]:
    """Run the cadence's delivery job for each partition, for the chosen (default: active) businesses."""
    selected = chosen(registry.by_cadence(cadence), business_ids)
    outcomes = {b.id: Outcome(b.id, str(cadence)) for b in selected}
    if not selected:
        return outcomes
    job = defs.resolve_job_def(deliveries_job_name(cadence))
    selection = [delivery_key(b.id) for b in selected]
    for key in partition_keys:
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            asset_selection=selection,
            raise_on_error=False,
            run_config=QUIET,
        )
        materialized = {
            e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
        }
        for business in selected:
            _record(outcomes[business.id], key, materialized.get(delivery_key(business.id)))
        done = len(materialized)
        progress(
            f"{cadence} {key}: {done} delivered, {len(selected) - done} failed (run {result.run_id[:8]})"
        )
    return outcomes


def _record(outcome: Outcome, key: str, metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        outcome.failed.append(key)
        return
    (outcome.empty if metadata["empty"].value else outcome.delivered).append(key)
    outcome.rows += int(metadata["dagster/row_count"].value)
    outcome.files += int(metadata["files"].value)


def windows_in(
    partitions: dg.TimeWindowPartitionsDefinition, start: datetime, end: datetime
) -> list[PartitionWindow]:
    """The cadence's windows that lie inside [start, end)."""
    windows = [PartitionWindow.of(partitions, key) for key in partitions.get_partition_keys(current_time=end)]
    return [w for w in windows if w.start >= start and w.end <= end]


def verify(
    settings: Settings,
    start: datetime,
    end: datetime,
    business_ids: Sequence[str] | None = None,
    deep: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Verdict]:
    """Certify every window of the chosen (default: active) businesses that lies inside [start, end)."""
    registry = read_registry(settings.registry_path)
    project = dbt_project(settings)
    manifest = load_manifest(project)
    relations = {d: model_relation(manifest, s.model) for d, s in SOURCES.items()}
    with dg.build_resources(build_resources(settings, project)) as resources:
        _, signing_cert = resources.keys.signing_key()
        certifier = Certifier(
            resources.warehouse, relations, resources.archive, resources.s3, signing_cert, deep=deep
        )
        verdicts: list[Verdict] = []
        for business in chosen(registry.businesses, business_ids):
            windows = windows_in(cadence_partitions(business.cadence, settings.partition_start), start, end)
            found = certifier.certify(business, windows)
            progress(f"{business.id}: {sum(v.ok for v in found)} of {len(found)} windows certified")
            verdicts += found
    return verdicts


def summary_table(outcomes: Sequence[Outcome]) -> str:
    header = "business   cadence  delivered  empty failed      rows  files"
    lines = [header, "-" * len(header)]
    for o in outcomes:
        lines.append(
            f"{o.business_id:<10} {o.cadence:<8} {len(o.delivered):>9} {len(o.empty):>6} "
            f"{len(o.failed):>6} {o.rows:>9,} {o.files:>6,}"
        )
    return "\n".join(lines)
