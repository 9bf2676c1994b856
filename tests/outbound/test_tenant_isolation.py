"""Property: whatever the registry and the data, no row of one business reaches another's files or bucket."""

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pysequoia
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3_sharing.devtools.local_endpoints import STATE_BUCKET, local_stack
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.delivery import Deliverer
from s3_sharing.outbound.registry import Registry
from s3_sharing.platform import crypto
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import DuckDBWarehouse, Relation

from ..conftest import ARCHIVE, BUSINESSES, registry_entry

pytestmark = pytest.mark.e2e

DECOYS = ("zoe", "hooli")  # rows of businesses that are not in the registry
LAYOUTS = ("{date}/{hour}/{user_id}/{dataset}.csv.pgp", "{dataset}/{date}/{hour}/{dataset}.csv.pgp")
BASE = datetime(2026, 2, 1, tzinfo=UTC)
hours = itertools.count()

rows = st.lists(
    st.tuples(
        st.sampled_from(BUSINESSES + DECOYS),
        st.from_regex(r"u[0-9]{1,2}", fullmatch=True),  # the same user id may exist in several businesses
        st.integers(min_value=-30, max_value=90),  # minutes from the window start: some fall outside
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    ),
    max_size=60,
)
registries = st.lists(
    st.tuples(st.sampled_from(BUSINESSES), st.sampled_from(LAYOUTS)),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


def _warehouse(path: Path, data: list[tuple], start: datetime) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists main_marts")
        con.execute(
            "create or replace table main_marts.fi_data "
            "(transaction_id varchar, business_id varchar, user_id varchar, merchant varchar, "
            "loaded_at timestamp)"
        )
        con.execute(
            "create or replace table main_marts.analytics "
            "(analytics_id varchar, business_id varchar, user_id varchar, window_start timestamp)"
        )
        for n, (business, user, minutes, text) in enumerate(data):
            at = (start + timedelta(minutes=minutes)).replace(tzinfo=None)
            con.execute(
                "insert into main_marts.fi_data values (?, ?, ?, ?, ?)", [f"t{n}", business, user, text, at]
            )
            con.execute("insert into main_marts.analytics values (?, ?, ?, ?)", [f"a{n}", business, user, at])


def _open(body: bytes, secret: Path) -> list[dict[str, str]]:
    plain = pysequoia.decrypt(body, decryptor=pysequoia.Tsk.from_file(str(secret)).decryptor()).bytes
    return list(csv.DictReader(io.StringIO(plain.decode(), newline="")))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows, chosen=registries)
def test_no_row_reaches_another_business(tmp_path_factory, keys, data, chosen):
    start = BASE + timedelta(hours=next(hours))  # a fresh window per example
    window = Window("test", start, start + timedelta(hours=1))
    directory = tmp_path_factory.mktemp("isolation")
    _warehouse(directory / "w.duckdb", data, start)
    registry = Registry.model_validate(
        {"businesses": [registry_entry(b, keys, layout=layout) for b, layout in chosen]}
    )
    everyone = Registry.model_validate({"businesses": [registry_entry(b, keys) for b in BUSINESSES]})
    signer, _ = crypto.load_signer(keys["platform-signing"].secret.read_text(), None)
    with local_stack(everyone, ARCHIVE) as stack:
        deliverer = Deliverer(
            warehouse=DuckDBWarehouse(path=str(directory / "w.duckdb")),
            relations={
                Dataset.FI_DATA: Relation(None, "main_marts", "fi_data"),
                Dataset.ANALYTICS: Relation(None, "main_marts", "analytics"),
            },
            archive=GcsArchive(bucket=ARCHIVE),
            s3=S3Buckets(),
            signer=signer,
            audit_cert=crypto.load_cert(keys["audit"].public.read_text(), "audit"),
            state=StateStore(bucket=STATE_BUCKET),
            batch_rows=7,  # many small batches: runs of one user span batch boundaries
        )
        for business in registry.businesses:
            deliverer.deliver(business, keys[business.id].public.read_text(), window, "prop-run")
        reader = stack.reader_client()
        for owner in BUSINESSES:
            listed = reader.list_objects_v2(Bucket=f"{owner}-bucket").get("Contents", [])
            data_keys = [o["Key"] for o in listed if o["Key"].endswith(".csv.pgp")]
            if owner not in {b.id for b in registry.businesses}:
                assert listed == [], f"{owner} is not in the registry but its bucket received {listed}"
                continue
            delivered = {"FI_DATA": set(), "ANALYTICS": set()}
            for key in data_keys:
                body = reader.get_object(Bucket=f"{owner}-bucket", Key=key)["Body"].read()
                for row in _open(body, keys[owner].secret):
                    assert row["business_id"] == owner, f"{owner}'s {key} holds a row of {row['business_id']}"
                    dataset = "FI_DATA" if "transaction_id" in row else "ANALYTICS"
                    delivered[dataset].add(row.get("transaction_id") or row["analytics_id"])
            expected = {
                f"t{n}" for n, (b, _, minutes, _) in enumerate(data) if b == owner and 0 <= minutes < 60
            }
            assert delivered["FI_DATA"] == expected
            assert delivered["ANALYTICS"] == {"a" + t[1:] for t in expected}
