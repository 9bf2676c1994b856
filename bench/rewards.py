"""Benchmark: FI transaction files to reward points, against the design source's pipeline and a
floor, in one run; then the time from a file landing to its points being queryable.

    .venv/bin/python bench/rewards.py --rows 1000000 --latency-rows 100000

One signed, encrypted file (made by GnuPG as an FI makes it) in the local landing bucket (moto,
IAM enforced) and a private PostgreSQL; each pipeline in its own process (its peak RSS is its own;
its seconds exclude interpreter start-up), each on a fresh database, in ``--repeat`` interleaved
rounds (the median round of each is reported, with its highest peak RSS, and its RSS once its
imports and set-up are done, before it reads the file: the difference is what the file costs):

- ``source``: what the design source's code does: the object read whole into memory, decrypted in
  memory, parsed with pandas, points computed, one ``INSERT`` per transaction and per reward row,
  on the first ``--source-rows`` rows only (its rows/s is what counts);
- ``s3_sharing``: the product's ``Processor`` (download, SHA-256, verified decryption to a private
  file, DuckDB normalisation, COPY, set-based rewards and balances, ledger, in one transaction);
- ``floor``: ``gpg --decrypt`` of the downloaded file to disk, then PostgreSQL ``COPY`` of the
  plaintext into a typed transactions table with the same primary key: nothing checked, no points.

Latency: ``dagster dev`` (webserver, daemon, both code locations, the landing sensor's interval) on
the same endpoints; ``--latency-trials`` files of ``--latency-rows`` rows are dropped at random
moments of the sensor's cycle, each timed from its upload to its points being committed in
PostgreSQL; each run's wait from the sensor's request to its first step, and its processes' peak
RSS. ``--repeat 0 --rows 1000`` measures only that.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import fresh_database, in_rounds, own_peak_rss_mb, own_rss_mb  # noqa: E402
from s3_sharing.devtools import fi_files  # noqa: E402
from s3_sharing.devtools.keygen import generate_key_pair  # noqa: E402
from s3_sharing.inbound.rewards.assets import LANDING_SENSOR_SECONDS, REWARDS_JOB  # noqa: E402
from s3_sharing.platform.gnupg import gnupg_home, gpg  # noqa: E402
from s3_sharing.platform.postgres import Postgres  # noqa: E402

FI = fi_files.DEMO_FI


def _registry(args: argparse.Namespace):
    from s3_sharing.inbound.rewards.registry import read_fi_registry

    return read_fi_registry(Path(args.registry))


def child_product(args: argparse.Namespace) -> dict:
    from s3_sharing.inbound.rewards.assets import build_processor
    from s3_sharing.platform.resources import PlatformKeys, WorkDirectory
    from s3_sharing.platform.storage import S3Buckets

    registry = _registry(args)
    keys = Path(args.keys)
    processor = build_processor(
        registry,
        S3Buckets(),
        Postgres(dsn=args.dsn),
        PlatformKeys(
            signing_key_file=str(keys / "platform.sec"),
            audit_key_file=str(keys / "audit.pub"),
            inbound_key_file=str(keys / "inbound.sec"),
        ),
        WorkDirectory(root=args.work),
        None,
        "bench",
    )
    ready = own_rss_mb()
    (outcome,) = list(processor.run(registry.fi(FI)))
    assert outcome.status == "loaded", outcome.describe()
    return {"rows": outcome.rows_loaded, "ready_rss_mb": ready}


SOURCE_SCHEMA = """
CREATE SCHEMA source;
CREATE TABLE source.transactions (transaction_id text PRIMARY KEY, user_id text NOT NULL, card_token text,
    amount_minor bigint NOT NULL, currency char(3) NOT NULL, occurred_at timestamp with time zone NOT NULL,
    business_day date NOT NULL, type text NOT NULL, mcc char(4), merchant text);
CREATE TABLE source.reward_points (transaction_id text PRIMARY KEY, user_id text NOT NULL,
    business_day date NOT NULL, points bigint NOT NULL);
"""
"""The design source's two tables ("a transactions table stored normalized transaction data, a
reward_points table stored computed reward points"), keyed as ours are."""


def child_source(args: argparse.Namespace) -> dict:
    """Seed 003's Lambda, made to run: the whole object in memory, decrypted in memory, pandas,
    points as amount * 0.01, one INSERT per row (its sample loads row by row)."""
    import io

    import boto3
    import pandas as pd
    import pysequoia

    registry = _registry(args)
    ready = own_rss_mb()
    body = boto3.client("s3").get_object(Bucket=registry.landing.bucket, Key=args.key)["Body"].read()
    secret = pysequoia.Tsk.from_file(str(Path(args.keys) / "inbound.sec"))
    plain = pysequoia.decrypt(body, decryptor=secret.decryptor()).bytes
    frame = pd.read_csv(io.BytesIO(plain), dtype=str, keep_default_na=False, nrows=args.source_rows)
    frame["points"] = (frame["monto"].astype(float) * 0.01).astype(int)
    with psycopg.connect(args.dsn) as connection, connection.cursor() as cursor:
        cursor.execute(SOURCE_SCHEMA)
        for row in frame.itertuples(index=False):
            cursor.execute(
                "INSERT INTO source.transactions (transaction_id, user_id, card_token, amount_minor,"
                " currency, occurred_at, business_day, type, mcc, merchant) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s::timestamptz::date, %s, %s, %s)",
                (
                    row.id_transaccion,
                    row.cliente,
                    row.tarjeta,
                    round(float(row.monto) * 100),
                    row.moneda,
                    row.fecha,
                    row.fecha,
                    row.tipo,
                    row.mcc,
                    row.comercio,
                ),
            )
            cursor.execute(
                "INSERT INTO source.reward_points (transaction_id, user_id, business_day, points)"
                " VALUES (%s, %s, %s::timestamptz::date, %s)",
                (row.id_transaccion, row.cliente, row.fecha, row.points),
            )
    return {"rows": len(frame), "ready_rss_mb": ready}


def child_floor(args: argparse.Namespace) -> dict:
    """gpg decrypts the downloaded file to disk; COPY loads the plaintext into a typed table with
    the same primary key. What any loader must at least do: download, decrypt, load."""
    import boto3

    registry = _registry(args)
    ready = own_rss_mb()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cipher, plain = work / "floor.pgp", work / "floor.csv"
    boto3.client("s3").download_file(registry.landing.bucket, args.key, str(cipher))
    keys = Path(args.keys)
    with gnupg_home() as home:  # the FI's public key too: gpg checks the signature as it decrypts
        gpg(home, "--import", str(keys / "inbound.sec"), str(keys / "fi.pub"))
        gpg(home, "--trust-model", "always", "--output", str(plain), "--decrypt", str(cipher))
    with psycopg.connect(args.dsn) as connection:
        connection.execute(
            "CREATE TABLE floor_transactions (transaction_id text PRIMARY KEY, user_id text, card_token text,"
            " amount numeric, currency text, occurred_at timestamp with time zone, type text, mcc text,"
            " merchant text, original_transaction_id text)"
        )
        with (
            connection.cursor() as cursor,
            cursor.copy("COPY floor_transactions FROM STDIN (FORMAT csv, HEADER true)") as copy,
            plain.open("rb") as source,
        ):
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        rows = connection.execute("SELECT count(*) FROM floor_transactions").fetchone()[0]
    plain.unlink()
    return {"rows": rows, "ready_rss_mb": ready}


CHILDREN = {"source": child_source, "s3_sharing": child_product, "floor": child_floor}


def measure(pipeline: str, admin_dsn: str, common: list[str]) -> dict:
    dsn = fresh_database(admin_dsn)
    command = [sys.executable, __file__, "--child", pipeline, "--dsn", dsn, *common]
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{pipeline} failed with status {completed.returncode}")
    return json.loads(completed.stdout) | {"pipeline": pipeline}


def run_worker_peaks_mb(peaks: dict[int, float]) -> None:
    """Each Dagster run or step worker alive now: its peak RSS so far (VmHWM), kept in ``peaks`` by
    pid. ``dagster dev`` starts both as ``multiprocessing`` spawns (``spawn_main``) of the code
    server and of the run worker."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
            if b"spawn_main" not in command:
                continue
            status = (cmdline.parent / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                pid = int(cmdline.parent.name)
                peaks[pid] = max(peaks.get(pid, 0.0), int(line.split()[1]) / 1024)


def request_to_first_step(dagster_home: Path) -> list[float]:
    """Per rewards run: seconds from its creation (the sensor's request) to its first step's start."""
    import dagster as dg

    waits = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records(dg.RunsFilter(job_name=REWARDS_JOB)):
            steps = instance.get_records_for_run(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
            ).records
            if steps:
                waits.append(steps[0].event_log_entry.timestamp - record.create_timestamp.timestamp())
    return waits


def distribution(values: list[float], unit: str = "s") -> str:
    ordered = sorted(values)
    p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18] if len(ordered) > 1 else ordered[0]
    return (
        f"p50 {statistics.median(ordered):.1f} {unit}, p95 {p95:.1f} {unit}, "
        f"max {ordered[-1]:.1f} {unit} (n={len(ordered)})"
    )


def latency(args, aws, registry_path: Path, keys: Path, postgres_dsn: str, directory: Path) -> None:
    """Files dropped at random moments of the landing sensor's cycle, each timed from upload to its
    points being committed, with the sensor and the runs in ``dagster dev`` (both code locations,
    as ``make dev`` runs them); each run's wait from request to first step, and its processes'
    peak RSS (run worker plus step worker)."""
    from s3_sharing.devtools.dagster_dev import dagster_dev

    no_businesses = directory / "no-businesses.yaml"  # the endpoints deliver to none: no keys needed
    no_businesses.write_text("businesses: []\n")
    environment = aws.environment() | {
        "S3_SHARING_REGISTRY": str(no_businesses),
        "S3_SHARING_FI_REGISTRY": str(registry_path),
        "S3_SHARING_INBOUND_KEY_FILE": str(keys / "inbound.sec"),
        "S3_SHARING_SIGNING_KEY_FILE": str(keys / "platform.sec"),
        "S3_SHARING_AUDIT_KEY_FILE": str(keys / "audit.pub"),
        "S3_SHARING_PG_DSN": postgres_dsn,
        "S3_SHARING_WORK_DIR": str(directory / "work-dev"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # dbt, as make puts it there
    }
    seconds, run_peaks, rng = [], [], random.Random(3)
    home = directory / "dagster_home"
    with dagster_dev(home, environment, output=(directory / "dagster.log").open("wb")) as ui:
        try:
            ui.wait_until_loaded()
        except Exception:
            print((directory / "dagster.log").read_text()[-3000:])
            raise
        for trial in range(args.latency_trials):
            time.sleep(rng.uniform(0, LANDING_SENSOR_SECONDS))
            name = f"latency-{trial}"
            rows = fi_files.purchases(args.latency_rows, seed=100 + trial)
            rows = [(f"L{trial}-{r[0]}", *r[1:]) for r in rows]
            plain = fi_files.write_csv(directory / f"{name}.csv", rows)
            cipher = fi_files.seal_as_fi(
                plain, directory / f"{name}.csv.pgp", keys / "inbound.pub", keys / "fi.sec"
            )
            key = f"{FI}/{name}.csv.pgp"
            peaks: dict[int, float] = {}
            started = time.monotonic()
            aws.fi_client(FI).upload_file(str(cipher), "s3-sharing-landing", key)
            while True:
                run_worker_peaks_mb(peaks)
                with psycopg.connect(postgres_dsn) as connection:
                    done = connection.execute(
                        "SELECT points FROM fi_file_ledger WHERE key = %s AND status = 'loaded'", (key,)
                    ).fetchone()
                if done:
                    break
                if time.monotonic() - started > 300:
                    raise SystemExit(f"{key}: no points after 300 s (see {directory / 'dagster.log'})")
                time.sleep(0.1)
            seconds.append(time.monotonic() - started)
            run_peaks.append(sum(peaks.values()))
            print(
                f"  file {trial + 1}: {args.latency_rows:,} rows queryable {seconds[-1]:.1f} s after landing;"
                f" run processes' peak RSS {run_peaks[-1]:.0f} MB ({len(peaks)} processes)"
            )
        waits = request_to_first_step(home)
    print(f"landing to queryable points: {distribution(seconds)} (target p95 < 20 s)")
    print(f"sensor's request to the run's first step: {distribution(waits)} (target < 5 s)")
    print(
        f"a rewards run's peak RSS, run and step workers: {distribution(run_peaks, 'MB')} (target < 300 MB)"
    )


def report(rows: int, results: list[dict]) -> None:
    print(f"\none {rows:,}-transaction file, median of {results[0]['runs']} rounds")
    print(f"{'pipeline':<12} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak MB':>8} {'ready MB':>9}")
    for r in results:
        rate, peak, ready = r["rows"] / r["seconds"], r["peak_rss_mb"], r["ready_rss_mb"]
        name, rows, seconds = r["pipeline"], r["rows"], r["seconds"]
        print(f"{name:<12} {rows:>10,} {seconds:>8.1f} {rate:>10,.0f} {peak:>8.0f} {ready:>9.0f}")
    print("(ready MB: the process with its imports and set-up, before it reads the file)")
    by = {r["pipeline"]: r for r in results}
    product, source, floor = by["s3_sharing"], by["source"], by["floor"]
    speedup = (product["rows"] / product["seconds"]) / (source["rows"] / source["seconds"])
    print(f"s3_sharing vs source pipeline: {speedup:.0f}x rows/s (target >= 50x)")
    print(f"s3_sharing vs floor: {product['seconds'] / floor['seconds']:.2f}x the time (target <= 1.5x)")
    print(
        f"s3_sharing peak RSS: {product['peak_rss_mb']:.0f} MB (target < 300 MB), of which the file"
        f" {product['peak_rss_mb'] - product['ready_rss_mb']:.0f} MB (the floor's file:"
        f" {floor['peak_rss_mb'] - floor['ready_rss_mb']:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=20_000)
    parser.add_argument("--latency-rows", type=int, default=100_000)
    parser.add_argument("--latency-trials", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three pipelines")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    for option in ("--dsn", "--registry", "--keys", "--key", "--work"):
        parser.add_argument(option)
    args = parser.parse_args()
    if args.child:
        started = time.perf_counter()
        result = CHILDREN[args.child](args)
        result |= {"seconds": time.perf_counter() - started, "peak_rss_mb": own_peak_rss_mb()}
        print(json.dumps(result))
        return

    from s3_sharing.devtools.local_endpoints import local_stack
    from s3_sharing.devtools.postgres import LocalPostgres
    from s3_sharing.inbound.rewards.registry import read_fi_registry
    from s3_sharing.outbound.registry import Registry

    with tempfile.TemporaryDirectory(prefix="bench-rewards-") as tmp:
        directory = Path(tmp)
        keys = directory / "keys"
        made = {name: generate_key_pair(keys, name) for name in ("inbound", "fi", "platform", "audit")}
        fingerprint = made["fi"].fingerprint
        registry_path = fi_files.demo_fi_registry(directory / "rewards.yaml", keys / "fi.pub", fingerprint)
        registry = read_fi_registry(registry_path)
        started = time.perf_counter()
        plain = fi_files.write_csv(directory / "big.csv", fi_files.purchases(args.rows, users=50_000))
        cipher = fi_files.seal_as_fi(plain, directory / "big.csv.pgp", keys / "inbound.pub", keys / "fi.sec")
        print(
            f"{args.rows:,} transactions, {plain.stat().st_size / 1e6:.0f} MB plain, "
            f"{cipher.stat().st_size / 1e6:.0f} MB signed and encrypted by gpg"
            f" ({time.perf_counter() - started:.0f} s)"
        )
        plain.unlink()
        with (
            LocalPostgres(directory / "pg") as server,
            local_stack(Registry(businesses=[]), "bench-archive", fi_registry=registry) as aws,
        ):
            key = f"{FI}/big.csv.pgp"
            aws.fi_client(FI).upload_file(str(cipher), registry.landing.bucket, key)
            admin = server.dsn.rsplit("/", 1)[0] + "/postgres"
            common = [
                "--registry",
                str(registry_path),
                "--keys",
                str(keys),
                "--key",
                key,
                "--work",
                str(directory / "work"),
            ]
            if args.repeat:
                measured = in_rounds(
                    args.repeat,
                    lambda: [
                        measure("source", admin, [*common, "--source-rows", str(args.source_rows)]),
                        measure("s3_sharing", admin, common),
                        measure("floor", admin, common),
                    ],
                )
                report(args.rows, measured)
            if args.latency_trials:
                trials, rows = args.latency_trials, args.latency_rows
                print(f"\nlanding to points, {trials} files of {rows:,} rows, dagster dev:")
                latency(args, aws, registry_path, keys, fresh_database(admin), directory)


if __name__ == "__main__":
    main()
