"""Benchmark: one whole hour of the platform, as a fraction of the hour it has to keep up with.

    .venv/bin/python bench/hourly_cycle.py [--businesses 500 --events-per-hour 2000]

Synthetic raw data (``s3-sharing generate``) for ``--businesses`` businesses, two hours of it:
the first hour is built and delivered beforehand (a running platform's marts are never empty, and
the certification looks back at it), then the second hour is timed as the platform runs it every
hour, each stage through its Dagster job on the local endpoints (moto S3/STS/IAM/KMS, local GCS):

1. ``hourly_marts_job``: dbt builds the hour's marts (DuckDB);
2. ``hourly_deliveries_job``: every business's delivery of the hour, with the run's checks;
3. ``certify_deliveries_job``: the hourly certification (48 windows ending at the hour, every
   business).

Every business gets FI_DATA and ANALYTICS in the per-data-set layout, all encrypted to one
business key (a key per business would only slow the setup). ``--events-per-hour`` is per
business: 500 x 2,000 is about 1M new rows an hour. Each stage also reports the CPU time of the
local S3 and GCS servers, which share the machine's cores here and would not in the cloud.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import own_peak_rss_mb  # noqa: E402


def registry_entries(ids: list[str], business_key: Path) -> list[dict]:
    return [
        {
            "id": business,
            "name": business,
            "cadence": "hourly",
            "datasets": ["FI_DATA", "ANALYTICS"],
            "layout": "{dataset}/{date}/{hour}/{dataset}.csv.pgp",
            "destination": {
                "bucket_arn": f"arn:aws:s3:::{business.replace('_', '-')}-cycle",
                "region": "eu-west-1",
                "role_arn": f"arn:aws:iam::123456789012:role/deliver-{business}",
            },
            "public_key": {"file": str(business_key)},
        }
        for business in ids
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--businesses", type=int, default=500)
    parser.add_argument("--users-per-business", type=int, default=100)
    parser.add_argument("--events-per-hour", type=int, default=2000, help="per business, on average")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="s3-sharing-cycle-") as tmp:
        work = Path(tmp)
        keys = work / "keys"
        from s3_sharing.devtools import datagen
        from s3_sharing.devtools.keygen import generate_key_pair

        for name in ("platform-signing", "audit", "business"):
            generate_key_pair(keys, name)
        ids = datagen.business_ids(args.businesses)
        registry_path = work / "registry.yaml"
        registry_path.write_text(yaml.safe_dump({"businesses": registry_entries(ids, keys / "business.pub")}))
        os.environ.update(
            {
                "S3_SHARING_DUCKDB_PATH": str(work / "warehouse.duckdb"),
                "S3_SHARING_REGISTRY": str(registry_path),
                "S3_SHARING_SIGNING_KEY_FILE": str(keys / "platform-signing.sec"),
                "S3_SHARING_AUDIT_KEY_FILE": str(keys / "audit.pub"),
                "S3_SHARING_AUDIT_SECRET_KEY_FILE": str(keys / "audit.sec"),
            }
        )
        end = datetime(2026, 1, 2, 12)  # naive UTC, as the warehouse stores it
        scale = datagen.Scale(
            end=end,
            businesses=args.businesses,
            users_per_business=args.users_per_business,
            events_per_hour=args.events_per_hour,
            hours=2,
        )
        started = time.perf_counter()
        counts = datagen.generate(work / "warehouse.duckdb", scale)
        print(f"generated {sum(counts.values()):,} raw rows in {time.perf_counter() - started:.0f}s")
        run_cycle(args, end - timedelta(hours=2), end - timedelta(hours=1))


def run_cycle(args: argparse.Namespace, history_hour: datetime, measured_hour: datetime) -> None:
    import dagster as dg

    from s3_sharing.cli.runbook import deliver
    from s3_sharing.cli.runs import QUIET
    from s3_sharing.devtools.local_endpoints import local_stack
    from s3_sharing.outbound.checks import CHECK_OP_BUSINESSES, check_op_name
    from s3_sharing.outbound.jobs import CERTIFY_JOB
    from s3_sharing.outbound.location import build_outbound_location
    from s3_sharing.outbound.registry import read_registry
    from s3_sharing.platform.settings import Settings
    from s3_sharing.platform.time import Cadence, hourly_key
    from s3_sharing.transform.dbt_assets import HOURLY_MARTS_JOB, REFERENCE_MODELS_JOB, dbt_project, prepare

    settings = Settings.from_env()
    prepare(dbt_project(settings))
    registry = read_registry(settings.registry)
    hour, history = (hourly_key(h.replace(tzinfo=UTC)) for h in (measured_hour, history_hour))
    with (
        local_stack(registry, settings.archive_bucket) as endpoints,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        defs = build_outbound_location(settings)
        defs.resolve_job_def(REFERENCE_MODELS_JOB).execute_in_process(instance=instance, run_config=QUIET)
        marts = defs.resolve_job_def(HOURLY_MARTS_JOB)
        marts.execute_in_process(instance=instance, partition_key=history, run_config=QUIET)
        deliver(defs, instance, registry, Cadence.HOURLY, [history])  # certified with the hour below

        stages: dict[str, float] = {}
        servers: dict[str, float] = {}  # CPU seconds of the local S3 and GCS servers in each stage

        @contextmanager
        def stage(name: str) -> Iterator[None]:
            started, cpu = time.perf_counter(), cpu_seconds(endpoints.processes)
            yield
            stages[name] = time.perf_counter() - started
            servers[name] = cpu_seconds(endpoints.processes) - cpu

        with stage("dbt build of the hour"):
            marts.execute_in_process(instance=instance, partition_key=hour, run_config=QUIET)

        with stage("deliveries (with the run's checks)"):
            outcomes = deliver(defs, instance, registry, Cadence.HOURLY, [hour])
        failed = [o.business_id for o in outcomes.values() if o.failed]
        rows = sum(o.rows for o in outcomes.values())
        files = sum(o.files for o in outcomes.values())

        ops = len(range(0, len(registry.businesses), CHECK_OP_BUSINESSES))
        config = {"config": {"last": hour, "lookback": 48}}
        with stage("hourly certification (48 windows)"):
            certification = defs.resolve_job_def(CERTIFY_JOB).execute_in_process(
                instance=instance,
                run_config={**QUIET, "ops": {check_op_name(Cadence.HOURLY, n): config for n in range(ops)}},
                raise_on_error=False,
            )
        evaluations = certification.get_asset_check_evaluations()
        certified = sum(e.passed for e in evaluations if e.check_name == "delivered")

    total = sum(stages.values())
    print(f"\none hour ({hour}) for {args.businesses} businesses: {rows:,} rows in {files:,} files delivered")
    for name, seconds in stages.items():
        print(
            f"  {name:<38} {seconds:8.1f}s  {seconds / total:6.1%} of the cycle"
            f"  (local S3+GCS servers' CPU {servers[name]:6.1f}s)"
        )
    print(f"  {'whole cycle':<38} {total:8.1f}s  {total / 3600:6.1%} of the hour (target < 10%)")
    print(
        f"  the local S3 and GCS servers used {sum(servers.values()):.1f} CPU seconds of it, on the "
        f"same {os.cpu_count()} cores (in the cloud they are not the platform's CPU)"
    )
    dominant = max(stages, key=stages.__getitem__)
    print(f"dominant stage: {dominant}; peak RSS of this process {own_peak_rss_mb():.0f} MB")
    print(f"deliveries failed: {len(failed)}; delivered check passed for {certified} of {args.businesses}")


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User and system CPU of running child processes, from /proc (Linux)."""
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
