"""User ids as object names, against the local S3 (moto's server over HTTP): every name the layout
makes for arbitrary unicode ids is stored under the business's prefix, lists back byte for byte, and
no two ids share an object."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3_sharing.devtools.local_endpoints import LocalEndpoints
from s3_sharing.outbound.layout import DEFAULT_TEMPLATES, Layout, user_id_of
from s3_sharing.platform.time import Cadence

pytestmark = pytest.mark.e2e

BUCKET, PREFIX = "acme-bucket", "shared/"
START = datetime(2026, 3, 9, 7, tzinfo=UTC)
LAYOUT = Layout(DEFAULT_TEMPLATES[Cadence.HOURLY]).validate(Cadence.HOURLY)


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    with LocalEndpoints() as aws:
        client = aws.admin_client("s3")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user_ids=st.lists(st.text(min_size=0, max_size=1200), unique=True, min_size=1, max_size=25))
def test_arbitrary_user_ids_stay_inside_the_prefix_unique_and_within_s3s_key_limit(s3, user_ids):
    keys = {
        PREFIX + LAYOUT.key(dataset="FI_DATA", start=START, business_id="acme", user_id=u): u
        for u in user_ids
    }
    assert len(keys) == len(user_ids), "two user ids named the same object"
    for key, user_id in keys.items():
        assert len(key.encode()) <= 1024
        s3.put_object(Bucket=BUCKET, Key=key, Body=user_id.encode("utf-8", "surrogatepass"))
    listed = {
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}2026-03-09/07/")["Contents"]
    }
    assert set(keys) <= listed  # stored under exactly the name we gave, inside the prefix
    for key, user_id in keys.items():
        folder = key.removeprefix(f"{PREFIX}2026-03-09/07/").split("/")[0]
        assert LAYOUT.window_start(key.removeprefix(PREFIX)) == START
        assert user_id_of(folder) in (user_id, None)
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == user_id.encode(
            "utf-8", "surrogatepass"
        )
