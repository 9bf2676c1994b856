"""Benchmark: how long the ``delivered`` certification takes over 48 hourly windows for 50 businesses.

    .venv/bin/python bench/certify.py [--businesses 50 --hours 48 --rows-per-hour 2000 --concurrency 8]

It delivers every window of every business to the local endpoints (per-data-set layout), then
times the certification as the check runs it: one grouped count query for every business and window,
then ``Certifier.certify``, as many businesses at a time as the check's default ``concurrency``: per
business, one S3 listing, one GCS listing, the walk of its manifest chain, and per window the
manifest from both stores and its signature.
"""

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from deliver import ARCHIVE, START, STATE_BUCKET, business_ids, entry, make_keys, stop_gpg_agent  # noqa: E402

from s3_sharing.outbound.certification import Certifier  # noqa: E402
from s3_sharing.outbound.checks import CertificationConfig  # noqa: E402
from s3_sharing.outbound.datasets import Dataset  # noqa: E402
from s3_sharing.outbound.delivery import Deliverer, deliver_many  # noqa: E402
from s3_sharing.outbound.registry import Registry  # noqa: E402
from s3_sharing.platform import crypto  # noqa: E402
from s3_sharing.platform.state import StateStore  # noqa: E402
from s3_sharing.platform.storage import GcsArchive, S3Buckets  # noqa: E402
from s3_sharing.platform.time import Window  # noqa: E402
from s3_sharing.platform.warehouse import DuckDBWarehouse, Relation  # noqa: E402


def make_data(path: Path, businesses: int, hours: int, rows_per_hour: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute("create schema main_marts")
        con.execute(
            f"""create table main_marts.fi_data as
                select 'txn_' || i as transaction_id, 'biz' || (i % {businesses}) as business_id,
                       'usr_' || (i % 997) as user_id, (i % 10000) / 100.0 as amount,
                       moment as updated_at, moment as loaded_at
                from (
                    select i,
                           timestamp '2026-01-01 10:00:00' + to_seconds(i * 3600 // {rows_per_hour}) as moment
                    from range({hours * rows_per_hour}) t(i)
                ) as numbered"""
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--businesses", type=int, default=50)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--rows-per-hour", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=int, default=CertificationConfig().concurrency, help="businesses at a time"
    )
    args = parser.parse_args()
    from s3_sharing.devtools.local_endpoints import local_stack

    with tempfile.TemporaryDirectory(prefix="s3-sharing-certify-") as tmp:
        work = Path(tmp)
        keys = make_keys(work)
        db = work / "certify.duckdb"
        make_data(db, args.businesses, args.hours, args.rows_per_hour)
        ids = business_ids(args.businesses)
        registry = Registry.model_validate({"businesses": [entry(b, keys) for b in ids]})
        relations = {Dataset.FI_DATA: Relation(None, "main_marts", "fi_data")}
        signer, signing_cert = crypto.load_signer((keys / "platform.sec").read_text(), None)
        windows = [
            Window(f"h{n}", START + timedelta(hours=n), START + timedelta(hours=n + 1))
            for n in range(args.hours)
        ]
        with local_stack(registry, ARCHIVE):
            warehouse = DuckDBWarehouse(path=str(db))
            deliverer = Deliverer(
                warehouse, relations, GcsArchive(bucket=ARCHIVE), S3Buckets(), signer,
                crypto.load_cert((keys / "audit.pub").read_text(), "audit"), StateStore(bucket=STATE_BUCKET),
            )  # fmt: skip
            public = dict.fromkeys(ids, (keys / "business.pub").read_text())
            started = time.perf_counter()
            for window in windows:
                for business, outcome in deliver_many(
                    deliverer, registry.businesses, public, window, "bench", 8
                ):
                    if isinstance(outcome, Exception):
                        raise SystemExit(f"{business.id}: {outcome}")
            delivering = time.perf_counter() - started
            certifier = Certifier(
                warehouse, relations, GcsArchive(bucket=ARCHIVE), S3Buckets(), signing_cert,
                StateStore(bucket=STATE_BUCKET),
            )  # fmt: skip
            started = time.perf_counter()
            certifier.count_rows(registry.businesses, windows)
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                by_business = list(pool.map(lambda b: certifier.certify(b, windows), registry.businesses))
            certifying = time.perf_counter() - started
            verdicts = [v for business_verdicts in by_business for v in business_verdicts]
        stop_gpg_agent(keys)
    certified = sum(v.ok for v in verdicts)
    print(f"delivered {args.businesses} businesses x {args.hours} hourly windows in {delivering:.1f}s")
    per_business = certifying / args.businesses
    print(f"delivered check over {args.hours} windows x {args.businesses} businesses: {certifying:.1f}s")
    print(
        f"  {per_business:.2f}s per business at {args.concurrency} at a time;"
        f" {certified} of {len(verdicts)} windows certified"
    )


if __name__ == "__main__":
    main()
