"""Benchmark: scheduled imports against two baselines, in one run.

    .venv/bin/python bench/imports.py --rows 1000000 --files 1000

One source on the local S3 (moto, IAM enforced, the import role assumed) and a private PostgreSQL;
each pipeline in its own process (so its peak RSS is its own; its seconds exclude interpreter start-up),
each on a fresh database, in ``--repeat`` interleaved rounds (the median round of each is reported,
with its highest peak RSS):

- ``s3_sharing``: the product's ``Importer`` (download, SHA-256, Arrow validation, COPY into
  staging, set-based upsert, ledger and data in one transaction);
- ``naive``: pandas ``read_csv`` of the same file, then one ``INSERT`` per row (what the design
  sources' sample code does), on the first ``--naive-rows`` rows only (its rows/s is what counts:
  at ~3,000 rows/s a million rows would take six minutes);
- ``floor``: PostgreSQL ``COPY`` of the same CSV file (already local) into the same table (same
  indexes and foreign keys): no download, no hash, no checks, no staging, no error file.

Then ``--files`` small files of ``--rows-per-file`` rows: the product's files/s against a floor of
one COPY per file.
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.common import fresh_database, in_rounds, own_peak_rss_mb  # noqa: E402
from s3_sharing.inbound.importer import Importer  # noqa: E402
from s3_sharing.inbound.sources import ImportSource  # noqa: E402
from s3_sharing.platform.postgres import Postgres  # noqa: E402
from s3_sharing.platform.storage import S3Buckets  # noqa: E402

BUCKET = "bench-imports"
HEADER = ["Código", "Nombre", "Descripción", "Categoría", "Probabilidad", "Impacto", "Identificado"]
CATEGORIES = ("operational", "credit", "market", "liquidity", "compliance", "strategic")


def source(source_id: str, folder: str) -> ImportSource:
    fields = ("referenceCode", "name", "description", "category", "likelihood", "impact", "identifiedOn")
    mapping = dict(zip(fields, HEADER, strict=True))
    return ImportSource.model_validate(
        {
            "id": source_id,
            "name": f"benchmark customer ({folder})",
            "connection": {
                "bucket": BUCKET,
                "region": "eu-west-1",
                "role_arn": f"arn:aws:iam::123456789012:role/import-{source_id}",
                "external_id": "bench-external-id",
            },
            "entities": [
                {
                    "entity": "risks",
                    "folder": folder,
                    "action": "upsert",
                    "mapping": mapping,
                }
            ],
        }
    )


SOURCES = {"big": source("bench_big", "big/"), "small": source("bench_small", "small/")}


def write_rows(path: Path, rows: int, start: int = 0) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(start, start + rows):
            writer.writerow(
                (
                    f"R-{i:09d}",
                    f"Riesgo número {i}",
                    'Descripción, con comas y "comillas"' if i % 7 == 0 else "texto libre",
                    CATEGORIES[i % len(CATEGORIES)],
                    i % 5 + 1,
                    (i * 7) % 5 + 1,
                    f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                )
            )


def child_product(args: argparse.Namespace) -> dict:
    chosen = SOURCES[args.source]
    importer = Importer(chosen, chosen.open_bucket(S3Buckets()), Postgres(dsn=args.dsn), run_id="bench")
    outcomes = list(importer.run())
    assert all(o.status == "imported" for o in outcomes), [
        o.describe() for o in outcomes if o.status != "imported"
    ]
    return {"rows": sum(o.rows_created + o.rows_updated for o in outcomes), "files": len(outcomes)}


def child_naive(args: argparse.Namespace) -> dict:
    import pandas as pd

    frame = pd.read_csv(args.file, dtype=str, keep_default_na=False, nrows=args.naive_rows)
    with psycopg.connect(args.dsn) as connection, connection.cursor() as cursor:
        (ledger,) = cursor.execute(
            "INSERT INTO import_ledger (source, entity, bucket, key, etag, size, sha256, status, started_at)"
            " VALUES ('naive', 'risks', 'b', 'k', 'e', 0, 's', 'imported', now()) RETURNING id"
        ).fetchone()
        for _, row in frame.iterrows():  # as the design source's sample: a row at a time, one commit
            cursor.execute(
                "INSERT INTO risks (source, reference_code, name, description, category, likelihood, impact,"
                " identified_on, import_id) VALUES ('naive', %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source, reference_code) DO UPDATE SET name = EXCLUDED.name",
                (*row, ledger),
            )
    return {"rows": len(frame), "files": 1}


def child_floor(args: argparse.Namespace) -> dict:
    """COPY straight into the product's table (same indexes and constraints), nothing else."""
    files = sorted(Path(args.file).glob("*.csv")) if Path(args.file).is_dir() else [Path(args.file)]
    with psycopg.connect(args.dsn) as connection:
        (ledger,) = connection.execute(
            "INSERT INTO import_ledger (source, entity, bucket, key, etag, size, sha256, status, started_at)"
            " VALUES ('floor', 'risks', 'b', 'k', 'e', 0, 's', 'imported', now()) RETURNING id"
        ).fetchone()
        connection.execute(
            "ALTER TABLE risks ALTER COLUMN source SET DEFAULT 'floor',"
            f" ALTER COLUMN import_id SET DEFAULT {int(ledger)}"
        )
        connection.commit()
        for path in files:
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    "COPY risks (reference_code, name, description, category, likelihood, impact,"
                    " identified_on) FROM STDIN (FORMAT csv, HEADER true)"
                ) as copy,
                path.open("rb") as source,
            ):
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            connection.commit()
        rows = connection.execute("SELECT count(*) FROM risks").fetchone()[0]
    return {"rows": rows, "files": len(files)}


CHILDREN = {"s3_sharing": child_product, "naive": child_naive, "floor": child_floor}


def measure(pipeline: str, admin_dsn: str, **options: object) -> dict:
    dsn = fresh_database(admin_dsn)
    command = [sys.executable, __file__, "--child", pipeline, "--dsn", dsn]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{pipeline} failed with status {completed.returncode}")
    return json.loads(completed.stdout) | {"pipeline": pipeline}


def report(title: str, results: list[dict]) -> None:
    print(f"\n{title}")
    columns = ("rows", "files", "seconds", "rows/s", "files/s", "peak MB")
    print(
        f"{'pipeline':<12} "
        + " ".join(f"{c:>{w}}" for c, w in zip(columns, (10, 6, 8, 10, 8, 8), strict=True))
    )
    for r in results:
        print(
            f"{r['pipeline']:<12} {r['rows']:>10,} {r['files']:>6,} {r['seconds']:>8.1f} "
            f"{r['rows'] / r['seconds']:>10,.0f} {r['files'] / r['seconds']:>8.1f} {r['peak_rss_mb']:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=30_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows-per-file", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the large file's three pipelines")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--dsn")
    parser.add_argument("--file")
    parser.add_argument("--source", choices=sorted(SOURCES))
    args = parser.parse_args()
    if args.child:
        started = time.perf_counter()
        counts = CHILDREN[args.child](args)
        seconds = time.perf_counter() - started
        print(json.dumps(counts | {"seconds": seconds, "peak_rss_mb": own_peak_rss_mb()}))
        return

    from s3_sharing.devtools.local_endpoints import local_stack
    from s3_sharing.outbound.registry import Registry

    with (
        tempfile.TemporaryDirectory(prefix="s3-sharing-bench-") as tmp,
        local_stack(
            Registry(businesses=[]), "bench-archive", import_sources=list(SOURCES.values()), postgres=True
        ) as aws,
    ):
        work, admin = Path(tmp), str(aws.pg_dsn).rsplit("/", 1)[0] + "/postgres"
        big = work / "big.csv"
        write_rows(big, args.rows)
        aws.customer_client().upload_file(str(big), BUCKET, "big/big.csv")
        print(f"{args.rows:,} rows, {big.stat().st_size / 1e6:.0f} MB")
        results = in_rounds(
            args.repeat,
            lambda: [
                measure("floor", admin, file=big),
                measure("naive", admin, file=big, naive_rows=min(args.naive_rows, args.rows)),
                measure("s3_sharing", admin, source="big"),
            ],
        )
        report(f"one {args.rows:,}-row file (upsert into risks), median of {args.repeat} rounds", results)
        floor, naive, product = results
        naive_rate, product_rate = naive["rows"] / naive["seconds"], product["rows"] / product["seconds"]
        print(f"s3_sharing vs naive: {product_rate / naive_rate:.1f}x rows/s (target >= 30x)")
        print(f"s3_sharing vs floor: {product['seconds'] / floor['seconds']:.2f}x the time (target <= 2x)")

        small = work / "small"
        small.mkdir()
        for n in range(args.files):
            path = small / f"{n:05d}.csv"
            write_rows(path, args.rows_per_file, start=n * args.rows_per_file)
            aws.customer_client().upload_file(str(path), BUCKET, f"small/{path.name}")
        results = [measure("floor", admin, file=small), measure("s3_sharing", admin, source="small")]
        report(f"{args.files:,} files of {args.rows_per_file} rows", results)


if __name__ == "__main__":
    main()
