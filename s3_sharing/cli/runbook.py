"""What the runbook commands do (deliver, verify), through the same jobs and code as the assets."""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from s3_sharing.cli.runs import QUIET, Progress, dagster_instance, run_in_process
from s3_sharing.outbound.asset_keys import delivery_key
from s3_sharing.outbound.certification import Certifier, Status, Verdict
from s3_sharing.outbound.datasets import SOURCES
from s3_sharing.outbound.definitions import outbound_resources
from s3_sharing.outbound.delivery import RESTATEMENT_TAG
from s3_sharing.outbound.jobs import deliveries_job_name
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.registry import Business, Registry, read_registry
from s3_sharing.platform.resources import build_resources
from s3_sharing.platform.settings import Settings
from s3_sharing.platform.time import Cadence, cadence_partitions, parse_hourly_key, windows_inside
from s3_sharing.platform.warehouse import DuckDBWarehouse, WindowQuery
from s3_sharing.transform.dbt_assets import (
    HOURLY_MARTS_JOB,
    REFERENCE_MODELS_JOB,
    dbt_project,
    load_manifest,
    model_relation,
)


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
    refused: str | None = None
    """The permanent error (access denied, no bucket, a disabled key...) that stopped its deliveries:
    the later windows would fail the same way, so they are not attempted."""


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
    reason: str | None = None,
) -> dict[str, Outcome]:
    """Run the cadence's delivery job for each partition, for the chosen (default: active) businesses.
    ``reason``: why, for the manifests of windows that were delivered before (restatements)."""
    selected = chosen(registry.by_cadence(cadence), business_ids)
    outcomes = {b.id: Outcome(b.id, str(cadence)) for b in selected}
    if not selected:
        return outcomes
    job = defs.resolve_job_def(deliveries_job_name(cadence))
    counter = Progress(len(partition_keys))
    for key in partition_keys:
        selected = [b for b in selected if outcomes[b.id].refused is None]
        if not selected:
            break
        result = run_in_process(
            job,
            instance=instance,
            partition_key=key,
            asset_selection=[delivery_key(b.id) for b in selected],
            raise_on_error=False,
            run_config=QUIET,
            tags={RESTATEMENT_TAG: reason} if reason else None,
        )
        materialized = {
            e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
        }
        failures = {
            e.asset_key: e.asset_observation_data.asset_observation.metadata
            for e in result.get_asset_observation_events()
            if "delivery_failed" in e.asset_observation_data.asset_observation.metadata
        }
        for business in selected:
            _record(outcomes[business.id], key, materialized.get(delivery_key(business.id)))
            failure = failures.get(delivery_key(business.id))
            if failure is not None:
                progress(f"{cadence} {key}: {business.id}: {failure['delivery_failed'].value}")
                if not failure["retryable"].value:
                    outcomes[business.id].refused = str(failure["delivery_failed"].value)
        done = len(materialized)
        progress(
            counter.line(
                f"{cadence} {key}: {done} delivered, {len(selected) - done} failed (run {result.run_id[:8]})"
            )
        )
    for outcome in outcomes.values():
        if outcome.refused is not None:
            left = len(partition_keys) - len(outcome.failed) - len(outcome.delivered) - len(outcome.empty)
            progress(f"{outcome.business_id}: refused, not retried; {left} later windows not attempted")
    return outcomes


def _record(outcome: Outcome, key: str, metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        outcome.failed.append(key)
        return
    (outcome.empty if metadata["empty"].value else outcome.delivered).append(key)
    outcome.rows += int(metadata["dagster/row_count"].value)
    outcome.files += int(metadata["files"].value)


def verify(
    settings: Settings,
    start: datetime,
    end: datetime,
    business_ids: Sequence[str] | None = None,
    deep: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Verdict]:
    """Certify every window of the chosen (default: active) businesses that lies inside [start, end)."""
    registry = read_registry(settings.registry)
    project = dbt_project(settings)
    manifest = load_manifest(project)
    relations = {d: model_relation(manifest, s.model) for d, s in SOURCES.items()}
    with dg.build_resources(build_resources(settings) | outbound_resources(settings)) as resources:
        _, signing_cert = resources.keys.signing_key()
        certifier = Certifier(
            resources.warehouse,
            relations,
            resources.archive,
            resources.s3,
            signing_cert,
            resources.state,
            deep=deep,
        )
        verdicts: list[Verdict] = []
        businesses = chosen(registry.businesses, business_ids)
        windows = {
            cadence: windows_inside(cadence_partitions(cadence, settings.partition_start), start, end)
            for cadence in {b.cadence for b in businesses}
        }
        for cadence, of_cadence in windows.items():
            certifier.count_rows([b for b in businesses if b.cadence is cadence], of_cadence)
        for business in businesses:
            found = certifier.certify(business, windows[business.cadence])
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


def materialize(settings: Settings, first: str, last: str) -> None:
    """Build the staging views, then the marts for hours ``first``..``last`` in one dbt run."""
    settings.require_warehouse()
    defs = build_outbound_location(settings)
    instance = dagster_instance()
    started = time.perf_counter()
    run_in_process(defs.resolve_job_def(REFERENCE_MODELS_JOB), instance=instance, run_config=QUIET)
    run_in_process(
        defs.resolve_job_def(HOURLY_MARTS_JOB),
        instance=instance,
        run_config=QUIET,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )
    elapsed = time.perf_counter() - started
    start = parse_hourly_key(first)
    end = parse_hourly_key(last) + timedelta(hours=1)
    hours = int((end - start) / timedelta(hours=1))
    print(f"materialized {hours} hours {first} .. {last} in {elapsed:.1f}s")
    if settings.dbt_target == "dev":
        print_window_counts(settings, start, end)


def print_window_counts(settings: Settings, start: datetime, end: datetime) -> None:
    manifest = load_manifest(dbt_project(settings))
    warehouse = DuckDBWarehouse(path=str(settings.duckdb_path))
    for source in SOURCES.values():
        query = WindowQuery(model_relation(manifest, source.model), source.window_column, start, end)
        print(f"  marts.{source.model:<14} {warehouse.count(query):>10,} rows in window")


def print_verdicts(verdicts: list[Verdict], show_ok: bool = False) -> None:
    by_business: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_business.setdefault(verdict.business_id, []).append(verdict)
    for business_id, found in by_business.items():
        counts = Counter(v.status for v in found)
        print(f"{business_id:<10} " + "  ".join(f"{s} {counts[s]:>4}" for s in Status))
        for verdict in found:
            if show_ok or not verdict.ok:
                print(f"  {verdict.describe()}")
