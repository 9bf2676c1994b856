import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3_sharing.outbound.layout import (
    DEFAULT_TEMPLATES,
    MAX_USER_NAME,
    Layout,
    LayoutError,
    manifest_key,
    user_id_of,
    user_object_name,
)
from s3_sharing.platform.time import Cadence

START = datetime(2026, 3, 9, 7, tzinfo=UTC)


def test_the_per_user_layout_is_date_user_dataset():
    layout = Layout(DEFAULT_TEMPLATES[Cadence.DAILY]).validate(Cadence.DAILY)
    assert layout.per_user
    key = layout.key(dataset="FI_DATA", start=START, business_id="acme", user_id="usr_1")
    assert key == "2026-03-09/usr_1/FI_DATA.csv.pgp"


def test_the_per_data_set_layout():
    layout = Layout("{dataset}/{date}/{hour}/{dataset}_{window}.csv.pgp").validate(Cadence.HOURLY)
    assert not layout.per_user
    assert layout.key(dataset="PAYMENTS", start=START, business_id="acme") == (
        "PAYMENTS/2026-03-09/07/PAYMENTS_20260309T0700Z.csv.pgp"
    )


@pytest.mark.parametrize("cadence", list(Cadence))
def test_default_layouts_are_valid_for_their_cadence(cadence):
    Layout(DEFAULT_TEMPLATES[cadence]).validate(cadence)


@pytest.mark.parametrize(
    ("user_id", "name"),
    [
        ("usr_0001", "usr_0001"),
        ("../other-business", "%2E.%2Fother-business"),
        ("a/b", "a%2Fb"),
        ("usr 1", "usr%201"),
        ("ü", "%C3%BC"),
        ("usr_1\n", "usr_1%0A"),
        ("~x%y", "%7Ex%25y"),
        (".", "%2E"),
        ("", "~" + hashlib.sha256(b"").hexdigest()),
        ("u" * 2000, "~" + hashlib.sha256(b"u" * 2000).hexdigest()),
    ],
)
def test_every_user_id_gets_a_safe_name_inside_its_folder(user_id, name):
    layout = Layout("{date}/{user_id}/{dataset}.csv.pgp").validate(Cadence.DAILY)
    key = layout.key(dataset="FI_DATA", start=START, business_id="acme", user_id=user_id)
    assert key == f"2026-03-09/{name}/FI_DATA.csv.pgp"
    assert layout.window_start(key) == START.replace(hour=0)
    assert user_id_of(name) == (None if name.startswith("~") else user_id)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.text(), unique=True, max_size=20))
def test_user_names_are_safe_unique_bounded_and_reversible(user_ids):
    names = [user_object_name(user_id) for user_id in user_ids]
    assert len(set(names)) == len(names)
    for user_id, name in zip(user_ids, names, strict=True):
        assert name.isascii() and name.isprintable() and 0 < len(name.encode()) <= MAX_USER_NAME
        assert "/" not in name and not name.startswith(".")
        assert user_id_of(name) in (user_id, None)
        assert name.startswith("~") == (user_id_of(name) is None)


def test_per_user_layout_needs_a_user():
    with pytest.raises(LayoutError, match="user_id is needed"):
        Layout("{date}/{user_id}/{dataset}").key(dataset="FI_DATA", start=START, business_id="acme")


def test_weekly_needs_a_date_and_format_specs_are_refused():
    with pytest.raises(LayoutError, match=r"weekly deliveries need \{date\}"):
        Layout("{dataset}/{hour}").validate(Cadence.WEEKLY)
    with pytest.raises(LayoutError, match="no format spec"):
        Layout("{date}/{hour}/{dataset:>10}").validate(Cadence.HOURLY)
    with pytest.raises(LayoutError, match="only letters"):
        Layout("{date}/{hour}/{dataset} copy").validate(Cadence.HOURLY)


def test_window_keys_distinguish_windows():
    assert manifest_key(START) == "_manifests/20260309T0700Z.json"
    layout = Layout("{window}/{dataset}").validate(Cadence.HOURLY)
    keys = {layout.key(dataset="FI_DATA", start=START.replace(hour=h), business_id="a") for h in range(24)}
    assert len(keys) == 24


@pytest.mark.parametrize(
    "template",
    [
        "{date}/{hour}/{user_id}/{dataset}.csv.pgp",
        "{dataset}/{date}/{hour}/{dataset}_{window}.csv.pgp",
        "{business_id}/{window}/{dataset}.csv.pgp",
    ],
)
def test_a_key_is_read_back_to_its_window_and_foreign_names_are_not(template):
    layout = Layout(template).validate(Cadence.HOURLY)
    start = datetime(2026, 3, 4, 17, tzinfo=UTC)
    key = layout.key(dataset="FI_DATA", start=start, business_id="acme", user_id="usr_1")
    assert layout.window_start(key) == start
    assert layout.window_start("_manifests/20260304T1700Z.json") is None
    assert layout.window_start(key + ".tmp") is None


def test_a_daily_key_is_read_back_to_the_start_of_its_day():
    layout = Layout("{date}/{user_id}/{dataset}.csv.pgp").validate(Cadence.DAILY)
    assert layout.window_start("2026-03-04/usr_1/FI_DATA.csv.pgp") == datetime(2026, 3, 4, tzinfo=UTC)
