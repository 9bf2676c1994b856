"""Benchmark: deliver one window of N rows for K businesses, against two baselines, in one run.

    .venv/bin/python bench/deliver.py --rows 2000000 --businesses 4

Pipelines, each on the same DuckDB data, the same local S3 (moto, IAM enforced, assumed role)
and the same keys, each in its own process so peak RSS is its own:

- ``s3_sharing``: the product's ``Deliverer`` (streaming CSV, Sequoia encrypt+sign, GCS archive
  copy, S3 upload through the transfer manager, signed manifest), one business at a time;
- ``naive``: pandas ``read_sql`` → ``to_csv`` → ``gpg --encrypt --sign`` → ``put_object``;
- ``floor``: DuckDB ``COPY … TO`` CSV → ``gpg --encrypt --sign -z 0`` → one upload to the GCS
  archive and one ``upload_file`` to S3 (the two copies the product makes).

Ratios compare like with like: the per-data-set layout (one file per business). The per-user
layout (FI_DATA and ANALYTICS per user) is compared with ``per-user floor``: the same number of
small pre-encrypted files uploaded to both stores with the same concurrency, so the ratio is what
CSV, encryption and manifests cost next to the requests. The memory stage delivers windows of
``--memory-rows`` with the product alone: its peak RSS should stay flat as they grow. The last
lines time loading the Dagster definitions with generated registries of 1,000 and 5,000
businesses in a fresh process, next to importing Dagster and dagster-dbt alone.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import own_peak_rss_mb  # noqa: E402
from s3_sharing.devtools.keygen import generate_key_pair  # noqa: E402
from s3_sharing.outbound.datasets import Dataset  # noqa: E402
from s3_sharing.outbound.delivery import Deliverer, deliver_many  # noqa: E402
from s3_sharing.outbound.registry import Registry  # noqa: E402
from s3_sharing.platform import crypto  # noqa: E402
from s3_sharing.platform.state import StateStore  # noqa: E402
from s3_sharing.platform.storage import GcsArchive, S3Buckets  # noqa: E402
from s3_sharing.platform.time import Window  # noqa: E402
from s3_sharing.platform.warehouse import DuckDBWarehouse, Relation  # noqa: E402

START = datetime(2026, 1, 1, 10, tzinfo=UTC)
WINDOW = Window("bench", START, START + timedelta(hours=1))
ARCHIVE = "bench-archive"
STATE_BUCKET = "s3-sharing-state"  # the local stack's default state bucket
COLUMNS = """
    'txn_' || lpad(i::varchar, 10, '0') as transaction_id,
    'biz' || (i % $businesses) as business_id,
    'usr_' || lpad((i % $users)::varchar, 6, '0') as user_id,
    'acc_' || lpad((i % ($users * 2))::varchar, 8, '0') as account_id,
    'checking' as account_type,
    'ES' || lpad((i * 7919 % 1000000000000)::varchar, 22, '0') as iban,
    'EUR' as account_currency,
    case when i % 3 = 0 then 'card' else 'account' end as channel,
    case when i % 5 = 0 then 'credit' else 'debit' end as direction,
    round((i * 37 % 250000) / 100.0, 2)::decimal(18, 2) as amount,
    'EUR' as currency,
    case i % 4 when 0 then 'Café "Le Zinc"' when 1 then 'Uber, B.V.' when 2 then 'Lidl Store 42' else 'Ñu' end
        as merchant,
    'groceries' as category,
    'settled' as status,
    timestamp '2026-01-01 10:00:00' + to_seconds(i % 3600) as booked_at,
    timestamp '2026-01-01 10:00:00' + to_seconds(i % 3600) as updated_at,
    timestamp '2026-01-01 10:00:00' + to_seconds(i % 3600) as loaded_at,
    'insert' as change_type
"""


def business_ids(count: int) -> list[str]:
    return [f"biz{n}" for n in range(count)]


ANALYTICS = """
    create or replace table main_marts.analytics as
    select user_id || '|' || category as analytics_id, business_id, user_id,
           timestamp '2026-01-01 10:00:00' as window_start, category, count(*) as transaction_count,
           sum(amount) as debit_amount, 0::decimal(18, 2) as credit_amount, -sum(amount) as net_amount,
           max(updated_at) as updated_at
    from main_marts.fi_data group by business_id, user_id, category
"""


def make_data(path: Path, rows: int, businesses: int, users: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists main_marts")
        sql = COLUMNS.replace("$businesses", str(businesses)).replace("$users", str(users))
        con.execute(f"create or replace table main_marts.fi_data as select {sql} from range({rows}) t(i)")
        con.execute(ANALYTICS)


def registry(keys_dir: Path, businesses: int, layout: str, datasets: tuple[str, ...]) -> Registry:
    return Registry.model_validate(
        {"businesses": [entry(b, keys_dir, layout, datasets) for b in business_ids(businesses)]}
    )


def entry(
    business: str,
    keys_dir: Path,
    layout: str = "{dataset}/{date}/{hour}/{dataset}.csv.pgp",
    datasets: tuple[str, ...] = ("FI_DATA",),
) -> dict:
    return {
        "id": business,
        "name": business,
        "cadence": "hourly",
        "datasets": list(datasets),
        "layout": layout,
        "destination": {
            "bucket_arn": f"arn:aws:s3:::{business}-bench",
            "region": "eu-west-1",
            "role_arn": f"arn:aws:iam::123456789012:role/deliver-{business}",
        },
        "public_key": {"file": str(keys_dir / "business.pub")},
    }


# ---- the pipelines, each run in a child process -------------------------------------------------


def run_product(args: argparse.Namespace) -> dict:
    keys = Path(args.keys)
    signer, _ = crypto.load_signer((keys / "platform.sec").read_text(), None)
    deliverer = Deliverer(
        warehouse=DuckDBWarehouse(path=args.db),
        relations={d: Relation(None, "main_marts", d.lower()) for d in Dataset},
        archive=GcsArchive(bucket=ARCHIVE),
        s3=S3Buckets(),
        signer=signer,
        audit_cert=crypto.load_cert((keys / "audit.pub").read_text(), "audit"),
        state=StateStore(bucket=STATE_BUCKET),
    )
    public = (keys / "business.pub").read_text()
    layout = args.layout or "{dataset}/{date}/{hour}/{dataset}.csv.pgp"
    businesses = registry(keys, args.businesses, layout, tuple(args.datasets.split(","))).businesses
    public_keys = dict.fromkeys(business_ids(args.businesses), public)
    rows = files = plain = 0
    # The delivery assets' own path: the businesses of a cadence concurrently, bounded.
    for _, report in deliver_many(deliverer, businesses, public_keys, WINDOW, "bench", args.concurrency):
        if isinstance(report, Exception):
            raise report
        rows, files, plain = (
            rows + report.rows,
            files + len(report.manifest.files),
            plain + report.plain_bytes,
        )
    return {"rows": rows, "files": files, "plain_bytes": plain}


def _gpg(keys: Path, plain: Path, cipher: Path, *extra: str) -> None:
    subprocess.run(
        ["gpg", "--homedir", str(keys / "gnupg"), "--batch", "--yes", "--trust-model", "always", *extra,
         "--encrypt", "--sign", "-r", "business", "-r", "audit", "-u", "platform",
         "--output", str(cipher), str(plain)],
        check=True, capture_output=True,
    )  # fmt: skip


def _bucket_client(business: str):
    from s3_sharing.outbound.registry import Destination

    destination = Destination.model_validate(entry(business, Path("."))["destination"])
    return (
        S3Buckets()
        .open(destination.location(), destination.role(), owner=business, session_id=business)
        .client
    )


def run_naive(args: argparse.Namespace) -> dict:
    import duckdb
    import pandas as pd

    keys, rows, plain_bytes = Path(args.keys), 0, 0
    with duckdb.connect(args.db, read_only=True) as con, tempfile.TemporaryDirectory() as work:
        for business in business_ids(args.businesses):
            query = (
                "select * from main_marts.fi_data where business_id = $b "
                "and loaded_at >= $s and loaded_at < $e order by user_id, transaction_id"
            )
            params = {"b": business, "s": START.replace(tzinfo=None), "e": WINDOW.end.replace(tzinfo=None)}
            frame = pd.read_sql(query, con, params=params)
            plain, cipher = Path(work) / "out.csv", Path(work) / "out.csv.gpg"
            frame.to_csv(plain, index=False)
            rows, plain_bytes = rows + len(frame), plain_bytes + plain.stat().st_size
            del frame
            _gpg(keys, plain, cipher)
            _bucket_client(business).put_object(
                Bucket=f"{business}-bench", Key="naive/FI_DATA.csv.gpg", Body=cipher.read_bytes()
            )
    return {"rows": rows, "files": args.businesses, "plain_bytes": plain_bytes}


def run_floor(args: argparse.Namespace) -> dict:
    import duckdb

    keys, rows, plain_bytes, archive = Path(args.keys), 0, 0, GcsArchive(bucket=ARCHIVE)
    with duckdb.connect(args.db, read_only=True) as con, tempfile.TemporaryDirectory() as work:
        for business in business_ids(args.businesses):
            plain, cipher = Path(work) / f"{business}.csv", Path(work) / f"{business}.csv.gpg"
            con.execute(
                f"copy (select * from main_marts.fi_data where business_id = '{business}' "
                "order by user_id, transaction_id) to '" + str(plain) + "' (header, delimiter ',')"
            )
            rows += con.execute(
                "select count(*) from main_marts.fi_data where business_id = ?", [business]
            ).fetchone()[0]
            plain_bytes += plain.stat().st_size
            _gpg(keys, plain, cipher, "--compress-algo", "none")
            archive.upload_file(f"{business}/floor/FI_DATA.csv.gpg", cipher)  # the audit copy, as the product
            _bucket_client(business).upload_file(str(cipher), f"{business}-bench", "floor/FI_DATA.csv.gpg")
    return {"rows": rows, "files": args.businesses, "plain_bytes": plain_bytes}


def run_per_user_floor(args: argparse.Namespace) -> dict:
    """``args.files`` uploads of one small pre-encrypted file to the archive and to S3 (as the
    delivery does: archive first), ``args.concurrency`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    keys = Path(args.keys)
    archive, bucket = GcsArchive(bucket=ARCHIVE), _bucket_client("biz0")
    with tempfile.TemporaryDirectory() as work:
        plain, cipher = Path(work) / "user.csv", Path(work) / "user.csv.gpg"
        plain.write_text("transaction_id,amount\n" + "".join(f"txn_{n},12.50\n" for n in range(20)))
        _gpg(keys, plain, cipher)

        def upload(number: int) -> None:
            archive.upload_file(f"biz0/floor/{number}.csv.pgp", cipher)
            bucket.upload_file(str(cipher), "biz0-bench", f"floor/{number}.csv.pgp")

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(upload, range(args.files)))
        return {"rows": 0, "files": args.files, "plain_bytes": plain.stat().st_size * args.files}


PIPELINES = {
    "s3_sharing": run_product,
    "naive": run_naive,
    "floor": run_floor,
    "per-user floor": run_per_user_floor,
}


# ---- the driver -----------------------------------------------------------------------------------


def measure(pipeline: str, args: argparse.Namespace, db: Path, keys: Path, layout: str | None = None) -> dict:
    """Run one pipeline in a child process; its wall time, peak RSS and counts."""
    command = [sys.executable, __file__, "--child", pipeline, "--db", str(db), "--keys", str(keys)]
    command += ["--businesses", str(args.businesses), "--concurrency", str(args.concurrency)]
    command += ["--layout", layout] if layout else []
    command += ["--datasets", args.datasets, "--files", str(args.files)]
    started = time.perf_counter()
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{pipeline} failed with status {completed.returncode}")
    return json.loads(completed.stdout) | {"pipeline": pipeline, "seconds": seconds}


def time_definitions(keys: Path, db: Path, work: Path, count: int) -> tuple[float, float]:
    """(seconds to build the definitions and resolve their asset graph and jobs, as Dagster does when
    it loads the location; seconds for a fresh process to import and build them)."""
    path = work / f"registry-{count}.yaml"
    path.write_text(yaml.safe_dump({"businesses": [entry(f"b{n:05d}", keys) for n in range(count)]}))
    code = (
        "import time; t0 = time.perf_counter(); "
        "from s3_sharing.outbound.location import build_outbound_location; "
        "from s3_sharing.platform.settings import Settings; "
        "t1 = time.perf_counter(); d = build_outbound_location(Settings.from_env()); "
        f"assert len(d.resolve_asset_graph().get_all_asset_keys()) > {count}; "
        "print(time.perf_counter() - t1, time.perf_counter() - t0)"
    )
    env = os.environ | {"S3_SHARING_REGISTRY": str(path), "S3_SHARING_DUCKDB_PATH": str(db)}
    output = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    build, total = (float(v) for v in output.stdout.split())
    return build, total


def time_framework_import() -> float:
    """Seconds for a fresh process to import dagster and dagster_dbt alone: the floor of any load."""
    code = "import time; t0 = time.perf_counter(); import dagster, dagster_dbt; print(time.perf_counter()-t0)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(output.stdout)


def make_keys(work: Path) -> Path:
    """Business, audit and platform keys (GnuPG), and a GnuPG home for the baselines."""
    directory = work / "keys"
    directory.mkdir()
    for name in ("business", "audit", "platform"):
        pair = generate_key_pair(directory, name)
        for path in (pair.public, pair.secret):
            path.rename(directory / path.name)
    home = directory / "gnupg"
    home.mkdir(mode=0o700)
    for name in ("business.pub", "audit.pub", "platform.sec"):
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(directory / name)],
                       check=True, capture_output=True)  # fmt: skip
    return directory


def stop_gpg_agent(keys: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(keys / "gnupg"), "--kill", "gpg-agent"], capture_output=True, check=False
    )


HEADER = (
    f"{'pipeline':<22} {'rows':>10} {'files':>7} {'seconds':>8} {'rows/s':>11} {'MB/s':>7} {'peak MB':>8}"
)


def row(result: dict) -> str:
    rate = result["rows"] / result["seconds"]
    mb = result["plain_bytes"] / result["seconds"] / 1e6
    return (
        f"{result['pipeline']:<22} {result['rows']:>10,} {result['files']:>7,} {result['seconds']:>8.1f} "
        f"{rate:>11,.0f} {mb:>7.1f} {result['peak_rss_mb']:>8.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--businesses", type=int, default=4)
    parser.add_argument("--users", type=int, default=10_000, help="distinct users in the main data")
    parser.add_argument("--per-user-rows", type=int, default=40_000)
    parser.add_argument("--per-user-users", type=int, default=2_000)
    parser.add_argument(
        "--memory-rows", default="1000000,5000000,20000000", help="window sizes of the memory stage"
    )
    parser.add_argument("--stages", default="compare,memory,per-user,definitions")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="businesses at once (the product's default)"
    )
    parser.add_argument("--child", choices=sorted(PIPELINES))
    parser.add_argument("--db")
    parser.add_argument("--keys")
    parser.add_argument("--layout")
    parser.add_argument("--datasets", default="FI_DATA")
    parser.add_argument("--files", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(PIPELINES[args.child](args) | {"peak_rss_mb": own_peak_rss_mb()}))
        return

    with tempfile.TemporaryDirectory(prefix="s3-sharing-bench-") as tmp:
        work = Path(tmp)
        keys = make_keys(work)
        db = work / "bench.duckdb"
        make_data(db, args.rows, args.businesses, users=args.users)
        if "compare" in args.stages:
            compare(args, db, keys)
        if "memory" in args.stages:
            memory(args, work, keys)
        if "per-user" in args.stages:
            per_user(args, work, keys)
        stop_gpg_agent(keys)
        if "definitions" in args.stages:
            print(f"\nimport dagster, dagster_dbt alone: {time_framework_import():.2f}s")
            for count, target in ((1000, 3), (5000, 10)):
                build, total = time_definitions(keys, db, work, count)
                print(f"definitions ({count:,} businesses): build {build:.2f}s, process {total:.2f}s"
                      f" (target < {target}s)")  # fmt: skip


def _endpoints(keys: Path, businesses: int):
    # Imported here: it loads the whole code location (dbt included), which a child must not pay for.
    from s3_sharing.devtools.local_endpoints import local_stack

    return local_stack(
        Registry.model_validate({"businesses": [entry(b, keys) for b in business_ids(businesses)]}), ARCHIVE
    )


def compare(args: argparse.Namespace, db: Path, keys: Path) -> None:
    with _endpoints(keys, args.businesses):
        results = {name: measure(name, args, db, keys) for name in ("floor", "naive", "s3_sharing")}
        one_at_a_time = argparse.Namespace(**{**vars(args), "concurrency": 1})
        results["sequential"] = measure("s3_sharing", one_at_a_time, db, keys) | {
            "pipeline": "s3_sharing, 1 at a time"
        }
    print(f"\none {args.rows:,}-row window for {args.businesses} businesses (per-data-set layout)")
    print(HEADER)
    for name in ("s3_sharing", "sequential", "naive", "floor"):
        print(row(results[name]))
    ours, naive, floor = results["s3_sharing"], results["naive"], results["floor"]
    print(f"\nthroughput vs naive: {naive['seconds'] / ours['seconds']:.2f}x  (target >= 3x)")
    print(f"time vs floor:       {ours['seconds'] / floor['seconds']:.2f}x  (target <= 1.3x)")
    one = results["sequential"]
    vs_naive, vs_floor = naive["seconds"] / one["seconds"], one["seconds"] / floor["seconds"]
    print(f"one at a time: {vs_naive:.2f}x naive, {vs_floor:.2f}x floor")


def memory(args: argparse.Namespace, work: Path, keys: Path) -> None:
    """The product alone on growing windows: its peak RSS should not grow with them."""
    print(f"\nthe product's peak RSS as the window grows ({args.businesses} businesses)")
    print(HEADER)
    for rows in (int(n) for n in args.memory_rows.split(",")):
        db = work / f"memory-{rows}.duckdb"
        make_data(db, rows, args.businesses, users=args.users)
        with _endpoints(keys, args.businesses):
            print(row(measure("s3_sharing", args, db, keys)), flush=True)
        db.unlink()


def per_user(args: argparse.Namespace, work: Path, keys: Path) -> None:
    """The per-user layout, FI_DATA and ANALYTICS per user, against the upload floor."""
    db = work / "per_user.duckdb"
    make_data(db, args.per_user_rows, 1, users=args.per_user_users)
    both = argparse.Namespace(**{**vars(args), "businesses": 1, "datasets": "FI_DATA,ANALYTICS"})
    with _endpoints(keys, 1):
        result = measure("s3_sharing", both, db, keys, layout="{date}/{hour}/{user_id}/{dataset}.csv.pgp")
    with _endpoints(keys, 1):  # fresh stores: each pipeline starts from empty ones
        floor = measure(
            "per-user floor", argparse.Namespace(**{**vars(both), "files": result["files"]}), db, keys
        )
    result["pipeline"] = "s3_sharing per-user"
    print(f"\nper-user layout: {args.per_user_rows:,} rows over {args.per_user_users:,} users, 2 data sets")
    print(HEADER)
    print(row(result))
    print(row(floor | {"rows": result["rows"]}))
    rates = result["files"] / result["seconds"], floor["files"] / floor["seconds"]
    print(f"files/s: {rates[0]:,.0f} (upload floor {rates[1]:,.0f})")
    print(f"time vs upload floor: {result['seconds'] / floor['seconds']:.2f}x  (target <= 1.5x)", flush=True)


if __name__ == "__main__":
    main()
