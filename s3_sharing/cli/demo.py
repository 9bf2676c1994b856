"""The demo: a day of synthetic data end to end on the local endpoints, optionally kept open in
the Dagster UI; and the local endpoints on their own for other shells."""

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import dagster as dg

from s3_sharing.cli import runbook
from s3_sharing.cli.imports import history, history_table, run_source
from s3_sharing.cli.rewards import describe, process_files
from s3_sharing.cli.runs import dagster_instance
from s3_sharing.devtools import datagen, fi_files
from s3_sharing.devtools.dagster_dev import dagster_dev
from s3_sharing.devtools.import_files import demo_import_files
from s3_sharing.devtools.keygen import generate_key_pair
from s3_sharing.devtools.local_endpoints import LocalEndpoints, local_stack, write_env_file
from s3_sharing.inbound.database import command_postgres
from s3_sharing.inbound.location import build_inbound_location
from s3_sharing.inbound.rewards.processor import open_landing, pending
from s3_sharing.inbound.rewards.registry import read_fi_registry
from s3_sharing.inbound.sources import read_sources
from s3_sharing.outbound.location import build_outbound_location
from s3_sharing.outbound.registry import Registry, read_registry
from s3_sharing.platform import crypto
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.settings import LOCAL_DIR, PREFIX, SECRETS, Settings, variable
from s3_sharing.platform.storage import S3Buckets
from s3_sharing.platform.time import Cadence, cadence_partitions, hourly_key, windows_closed_by
from s3_sharing.transform.dbt_assets import dbt_project, prepare

DEMO_SCALE = {"businesses": 6, "users_per_business": 50, "events_per_hour": 120}
DEMO_HOURS = 24


def ensure_demo_keys(settings: Settings, registry: Registry, keys_dir: Path) -> None:
    """The platform's signing and audit keys and a key pair per business, made once with GnuPG."""
    for name, path in (("platform-signing", settings.signing_key_file), ("audit", settings.audit_key_file)):
        if not path.exists():
            generate_key_pair(path.parent, name)
    for business in registry.businesses:
        if not (keys_dir / f"{business.id}.pub").exists():
            generate_key_pair(keys_dir, business.id)


def ensure_demo_fi(settings: Settings, keys_dir: Path) -> Settings:
    """Our inbound key and the demo FI's signing key (GnuPG, once), and the FI registry that pins
    it, written to ``.local/rewards.yaml``; the settings (and environment) then point at it."""
    if not settings.inbound_key_file.exists():
        generate_key_pair(settings.inbound_key_file.parent, settings.inbound_key_file.stem)
    fi_key = keys_dir / f"fi-{fi_files.DEMO_FI}.pub"
    if not fi_key.exists():
        generate_key_pair(keys_dir, fi_key.stem)
    fingerprint = crypto.load_cert(fi_key.read_text(), "demo FI key").fingerprint
    path = fi_files.demo_fi_registry(LOCAL_DIR / "rewards.yaml", fi_key, fingerprint)
    os.environ[variable("fi_registry")] = str(path)
    return settings.model_copy(update={"fi_registry": path})


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """A demo day end to end: data, dbt, deliveries to local S3 and GCS, and a summary."""
    end = datagen.current_hour()
    settings.duckdb_path.unlink(missing_ok=True)  # a fresh warehouse: no marts left from an earlier demo
    scale = DEMO_SCALE | {"hours": args.hours}
    counts = datagen.generate(settings.duckdb_path, datagen.Scale(end=end, seed=args.seed, **scale))
    businesses = DEMO_SCALE["businesses"]
    print(f"generated {sum(counts.values()):,} rows, {businesses} businesses, in {settings.duckdb_path}")
    registry = read_registry(settings.registry)
    ensure_demo_keys(settings, registry, LOCAL_DIR / "keys")
    settings = ensure_demo_fi(settings, LOCAL_DIR / "keys")
    prepare(dbt_project(settings))
    start = end - timedelta(hours=args.hours)
    runbook.materialize(
        settings,
        hourly_key(start.replace(tzinfo=UTC)),
        hourly_key((end - timedelta(hours=1)).replace(tzinfo=UTC)),
    )
    outcomes = []
    sources = read_sources(settings.import_sources).sources
    fi_registry = read_fi_registry(settings.fi_registry) if settings.fi_registry else None
    with local_stack(
        registry, settings.archive_bucket, import_sources=sources, postgres=True, fi_registry=fi_registry
    ) as endpoints:
        print(
            f"local S3/STS/IAM/KMS at {endpoints.aws_url}, GCS at {endpoints.gcs_url}, "
            f"PostgreSQL at {endpoints.pg_dsn}"
        )
        settings = settings.model_copy(update={"pg_dsn": endpoints.pg_dsn})
        defs = build_outbound_location(settings)
        instance = dagster_instance()
        for cadence in Cadence:
            partitions = cadence_partitions(cadence, settings.partition_start)
            closed = windows_closed_by(partitions, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
            keys = [w.key for w in closed]
            outcomes += runbook.deliver(defs, instance, registry, cadence, keys, progress=print).values()
        print(runbook.summary_table(outcomes))
        print("\ncertification of the demo day (s3-sharing verify):")
        first_day = start.replace(hour=0, tzinfo=UTC)  # so daily windows are inside the range too
        verdicts = runbook.verify(settings, first_day, end.replace(tzinfo=UTC))
        runbook.print_verdicts(verdicts)
        print(f"verify: {sum(v.ok for v in verdicts)} of {len(verdicts)} windows certified")
        imported = all(
            demo_imports(settings, endpoints, build_inbound_location(settings), instance, source.id, end)
            for source in sources[:1]
        )
        rewarded = demo_rewards(settings, endpoints, end)
        delivered = not any(o.failed for o in outcomes) and all(v.ok for v in verdicts)
        succeeded = delivered and imported and rewarded
        if args.ui:
            serve_ui(endpoints, Path(args.env_file), args.port)
        else:
            print(
                f"\nruns recorded in {os.environ.get('DAGSTER_HOME') or 'nowhere (DAGSTER_HOME is unset)'}; "
                "the local S3 and GCS stop with this command.\n"
                "next: `make dev` runs this demo again and keeps it open in the Dagster UI at "
                "http://127.0.0.1:3000 (Catalog → deliveries → acme → Partitions, Checks)"
            )
    return 0 if succeeded else 1


def demo_imports(
    settings: Settings,
    endpoints: LocalEndpoints,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    source_id: str,
    end: datetime,
) -> bool:
    """The customer drops risks and events (a few bad rows), we import them, the risks file
    arrives a second time and is not imported again; the history and where the error files are."""
    source = read_sources(settings.import_sources).get(source_id)
    customer = endpoints.customer_client()
    files = demo_import_files(end.date())
    for key, body in files.items():
        customer.put_object(Bucket=source.connection.bucket, Key=key, Body=body)
    print(f"\nscheduled import {source_id} (s3-sharing imports run {source_id}):")
    first, imported = run_source(defs, instance, source_id)
    risks_key = next(k for k in files if k.startswith("riesgos/"))
    customer.put_object(Bucket=source.connection.bucket, Key=risks_key, Body=files[risks_key])  # again
    second, again = run_source(defs, instance, source_id)
    postgres = Postgres(dsn=settings.pg_dsn)
    print(history_table(history(postgres, source_id)))
    print(f"the risks file arrived twice; imported the second time: {len(again)} files (0 expected)")
    events_key = next(k for k in files if k.startswith("eventos/"))
    events_errors = f"eventos/{source.errors_folder}{PurePosixPath(events_key).name}.errors.csv"
    body = customer.get_object(Bucket=source.connection.bucket, Key=events_errors)["Body"].read()
    print(f"\ns3://{source.connection.bucket}/{events_errors} (what the customer's team reads):")
    print(body.decode("utf-8").rstrip())
    return first.success and second.success and len(imported) == len(files) and not again


DEMO_BALANCES = {"cli_ana": 2500, "cli_luis": 0, "cli_sofia": 189}
"""What the demo FI's two days earn (``fi_files.demo_days``; the rules of ``demo_fi_registry``)."""


def demo_rewards(settings: Settings, endpoints: LocalEndpoints, end: datetime) -> bool:
    """The demo FI drops a signed, encrypted file per day (the second with a refund of a first-day
    purchase and two bad rows), then the first day's file again; each is processed as the landing
    sensor would; each user's points, and where the FI finds its error file."""
    registry = read_fi_registry(Path(str(settings.fi_registry)))
    fi = registry.fi(fi_files.DEMO_FI)
    keys = LOCAL_DIR / "keys"
    work = LOCAL_DIR / "demo-fi"
    work.mkdir(parents=True, exist_ok=True)
    client = endpoints.fi_client(fi.id)
    landing = open_landing(registry, S3Buckets())
    postgres = command_postgres(settings)
    days = fi_files.demo_days(end.replace(tzinfo=UTC))
    folder = f"s3://{registry.landing.bucket}/{fi.prefix}"
    print(f"\nrewards: {fi.name} drops a signed, encrypted file per day into {folder}")
    processed = []
    for day, rows in [*days.items(), next(iter(days.items()))]:  # the first day's file arrives twice
        plain = fi_files.write_csv(work / f"{day}.csv", rows)
        our_key, fi_key = settings.inbound_key_file.with_suffix(".pub"), keys / f"fi-{fi.id}.sec"
        cipher = fi_files.seal_as_fi(plain, work / f"{day}.csv.pgp", our_key, fi_key)
        plain.unlink()
        client.upload_file(str(cipher), registry.landing.bucket, f"{fi.prefix}{day}.csv.pgp")
        files = process_files(settings, [(fi, v) for v in pending(landing, postgres, fi)])
        for file in files:
            print("  " + describe(file))
        processed += files
    with postgres.connect() as connection:
        rows = connection.execute("SELECT user_id, points FROM reward_balances ORDER BY 1").fetchall()
    balances = dict(rows)
    print("points per user (s3-sharing rewards balance <user>):")
    for user, points in balances.items():
        print(f"  {user}: {points}")
    errors = [f["error_file"] for f in processed if f.get("error_file")]
    for uri in errors:
        body = landing.read(uri.removeprefix(f"s3://{registry.landing.bucket}/")) or b""
        fi_secret = crypto.load_decryptor((keys / f"fi-{fi.id}.sec").read_text(), "demo FI key")
        print(f"\n{uri} (sealed to the FI's key; what its team reads, card numbers masked):")
        print(crypto.decrypt_bytes(body, fi_secret).decode("utf-8").rstrip())
    return balances == DEMO_BALANCES and len(errors) == 1


def serve_ui(endpoints: LocalEndpoints, env_file: Path, port: int) -> None:
    """``dagster dev`` on this instance and these endpoints, until Ctrl-C."""
    home = Path(os.environ.get("DAGSTER_HOME") or LOCAL_DIR / "dagster_home")
    with _published(endpoints, env_file), dagster_dev(home, endpoints.environment(), port) as ui:
        ui.wait_until_loaded()
        ui.skip_welcome()
        stop = _stop_on_signals()
        print(f"\nDagster UI: {ui.url}   (Ctrl-C stops it and the local endpoints)", flush=True)
        while not stop.wait(1) and ui.process.poll() is None:
            pass


@contextlib.contextmanager
def _published(endpoints: LocalEndpoints, env_file: Path) -> Iterator[None]:
    """The endpoints' environment in a file (0600) other shells can source, while they run."""
    env_file.parent.mkdir(parents=True, exist_ok=True)
    write_env_file(env_file, runbook_environment() | endpoints.environment())
    env_file.chmod(0o600)
    print(f"environment for other shells: source {env_file}", flush=True)
    try:
        yield
    finally:
        env_file.unlink(missing_ok=True)


def runbook_environment() -> dict[str, str]:
    """What the runbook commands of another shell read besides the endpoints: ``DAGSTER_HOME`` (the
    UI's instance) and every ``S3_SHARING_*`` setting of this process (registries, warehouse, key
    files), secrets left out."""
    secrets = {variable(name) for name in SECRETS}
    settings = {k: v for k, v in os.environ.items() if k.startswith(PREFIX) and k not in secrets}
    return {"DAGSTER_HOME": os.environ.get("DAGSTER_HOME") or str(LOCAL_DIR / "dagster_home"), **settings}


def _stop_on_signals() -> threading.Event:
    """An event Ctrl-C (SIGINT) or SIGTERM sets. Handled explicitly: a process started in the
    background of a non-interactive shell inherits an *ignored* SIGINT, and must still stop."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_endpoints(settings: Settings, args: argparse.Namespace) -> int:
    """Run local S3/STS/IAM/KMS and GCS for the registry until interrupted (for `make dev`)."""
    registry = read_registry(settings.registry)
    sources = read_sources(settings.import_sources).sources
    fi_registry = read_fi_registry(settings.fi_registry) if settings.fi_registry else None
    with (
        local_stack(
            registry, settings.archive_bucket, import_sources=sources, postgres=True, fi_registry=fi_registry
        ) as endpoints,
        _published(endpoints, Path(args.env_file)),
    ):
        stop = _stop_on_signals()
        print(
            f"local S3/STS/IAM/KMS at {endpoints.aws_url}, GCS at {endpoints.gcs_url}, "
            f"PostgreSQL at {endpoints.pg_dsn} (Ctrl-C stops them)"
        )
        stop.wait()
    print("local endpoints stopped")
    return 0
