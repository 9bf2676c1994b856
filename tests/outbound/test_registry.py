"""Registry validation: every bad entry is named by file, business and field."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from s3_sharing.outbound.registry import load_registry
from s3_sharing.platform.time import Window
from s3_sharing.platform.yaml_registry import RegistryError

from ..conftest import registry_entry, write_registry


def _error(tmp_path, keys, **overrides) -> str:
    path = write_registry(tmp_path / "registry.yaml", [registry_entry("acme", keys, **overrides)])
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    return str(raised.value)


def _destination(**changes):
    base = {
        "bucket_arn": "arn:aws:s3:::acme-bucket",
        "region": "eu-west-1",
        "role_arn": "arn:aws:iam::123456789012:role/deliver-acme",
    }
    return {**base, **changes}


def test_a_valid_registry_loads_with_its_keys(tmp_path, keys):
    path = write_registry(tmp_path / "registry.yaml", [registry_entry("acme", keys)])
    registry, public_keys = load_registry(path)
    assert registry.get("acme").destination.bucket == "acme-bucket"
    assert public_keys["acme"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        (
            {"destination": _destination(bucket_arn="s3://acme")},
            "destination.bucket_arn",
            "not an S3 bucket ARN",
        ),
        ({"destination": _destination(role_arn="acme-role")}, "destination.role_arn", "not an IAM role ARN"),
        ({"destination": _destination(region="Europe")}, "destination.region", "should match pattern"),
        ({"destination": _destination(prefix="/abs")}, "destination.prefix", "must be empty or folders"),
        (
            {"destination": _destination(sse={"mode": "aws:kms"})},
            "destination.sse",
            "aws:kms needs kms_key_arn",
        ),
        ({"destination": _destination(sse={"mode": "DES"})}, "destination.sse.mode", "Input should be"),
        ({"datasets": ["FI_DATA", "PASSWORDS"]}, "datasets.1", "Input should be"),
        ({"datasets": ["FI_DATA", "FI_DATA"]}, "datasets", "FI_DATA listed more than once"),
        ({"datasets": []}, "datasets", "at least 1 item"),
        ({"cadence": "monthly"}, "cadence", "Input should be"),
        (
            {"layout": "{date}/{user_id}/{dataset}.csv.pgp"},
            "layout",
            "hourly deliveries need {date} and {hour}",
        ),
        ({"layout": "{date}/{hour}/{user_id}.csv.pgp"}, "layout", "must contain {dataset}"),
        ({"layout": "{date}/{hour}/{dataset}/{secret}.csv"}, "layout", "unknown placeholder {secret}"),
        ({"layout": "../{date}/{hour}/{dataset}"}, "layout", "without empty or '..' segments"),
        ({"layout": "_manifests/{date}/{hour}/{dataset}"}, "layout", "reserved for manifests"),
        ({"public_key": {}}, "public_key", "exactly one of file or armor"),
        ({"publik_key": {"armor": "x"}}, "publik_key", "Extra inputs are not permitted"),
        ({"id": "Acme Corp"}, "id", "should match pattern"),
    ],
)
def test_each_bad_entry_names_file_business_and_field(tmp_path, keys, overrides, field, words):
    message = _error(tmp_path, keys, **overrides)
    who = "business 'Acme Corp'" if overrides.get("id") else "business 'acme'"
    assert message.startswith(f"{tmp_path / 'registry.yaml'}: {who}: {field}: "), message
    assert words in message


def test_a_daily_business_may_use_the_date_user_layout(tmp_path, keys):
    path = write_registry(
        tmp_path / "r.yaml",
        [registry_entry("acme", keys, cadence="daily", layout="{date}/{user_id}/{dataset}")],
    )
    assert load_registry(path)[0].get("acme").object_layout().per_user


def test_duplicate_business_ids_are_refused(tmp_path, keys):
    path = write_registry(tmp_path / "r.yaml", [registry_entry("acme", keys), registry_entry("acme", keys)])
    with pytest.raises(RegistryError, match="business id 'acme' appears more than once"):
        load_registry(path)


def test_unreadable_missing_or_secret_keys_are_refused(tmp_path, keys):
    missing = _error(tmp_path, keys, public_key={"file": "nowhere.pub"})
    assert re.search(r"business 'acme': public_key\.file: .*nowhere\.pub cannot be read", missing)
    garbage = _error(tmp_path, keys, public_key={"armor": "not a key"})
    assert "business 'acme': public_key: not an OpenPGP public key" in garbage
    secret = _error(tmp_path, keys, public_key={"file": str(keys["acme"].secret)})
    assert "business 'acme': public_key: contains a secret key" in secret
    assert "PRIVATE KEY" not in secret


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RegistryError, match="registry file not found"):
        load_registry(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("businesses: [\n")
    with pytest.raises(RegistryError, match=r"bad\.yaml: not valid YAML"):
        load_registry(tmp_path / "bad.yaml")


def test_an_entry_without_id_is_named_by_position(tmp_path, keys):
    entry = registry_entry("acme", keys)
    del entry["id"]
    path = write_registry(tmp_path / "r.yaml", [registry_entry("globex", keys), entry])
    with pytest.raises(RegistryError, match=r"business #2: id: Field required"):
        load_registry(path)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {"inactive_since": "2026-03-01T00:00:00Z"},
            "inactive_since: only for a business with active: false",
        ),
        ({"active": False, "inactive_since": "2026-03-01T00:00:00"}, "inactive_since: give a UTC offset"),
    ],
)
def test_inactive_since_belongs_to_an_inactive_business_and_is_zoned(tmp_path, keys, overrides, words):
    assert f"business 'acme': (entry): {words}" in _error(tmp_path, keys, **overrides)


def test_an_inactive_business_is_certified_only_for_windows_that_ended_before_it_stopped(tmp_path, keys):
    since = "2026-03-01T06:00:00Z"
    entries = [registry_entry("acme", keys, active=False, inactive_since=since)]
    registry, _ = load_registry(write_registry(tmp_path / "registry.yaml", entries))
    acme = registry.get("acme")
    hour = timedelta(hours=1)
    before = Window("05", datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, 6, tzinfo=UTC))
    after = Window("06", before.start + hour, before.end + hour)
    assert acme.certifies(before) and not acme.certifies(after)
    never = load_registry(write_registry(tmp_path / "r2.yaml", [registry_entry("acme", keys, active=False)]))
    assert not never[0].get("acme").certifies(before)


def _load_error(tmp_path, entries) -> str:
    path = write_registry(tmp_path / "registry.yaml", entries)
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    return str(raised.value)


@pytest.mark.parametrize(
    ("globex_prefix", "refused"),
    [("shared/", True), ("shared/globex/", True), ("", True), ("shared-globex/", False)],
)
def test_two_businesses_may_not_share_a_place_in_one_bucket(tmp_path, keys, globex_prefix, refused):
    # acme delivers to s3://acme-bucket/shared/; globex is pointed at the same bucket.
    globex = registry_entry(
        "globex",
        keys,
        destination=_destination(prefix=globex_prefix, role_arn="arn:aws:iam::123456789012:role/deliver-g"),
    )
    entries = [registry_entry("acme", keys), globex]
    if not refused:
        assert len(load_registry(write_registry(tmp_path / "ok.yaml", entries))[0].businesses) == 2
        return
    message = _load_error(tmp_path, entries)
    inner, outer = ("acme", "globex") if globex_prefix == "" else ("globex", "acme")
    assert message.startswith(f"{tmp_path / 'registry.yaml'}: business '{inner}': destination.prefix: "), (
        message
    )
    assert f"overlaps business '{outer}'" in message


def test_a_delivery_role_serves_one_business(tmp_path, keys):
    role = "arn:aws:iam::123456789012:role/deliver-acme"
    globex = registry_entry(
        "globex", keys, destination=_destination(bucket_arn="arn:aws:s3:::globex-bucket", role_arn=role)
    )
    message = _load_error(tmp_path, [registry_entry("acme", keys), globex])
    assert message == (
        f"{tmp_path / 'registry.yaml'}: business 'globex': destination.role_arn: {role} is already "
        "business 'acme''s delivery role (a role serves one business)"
    )


@pytest.mark.parametrize(
    ("destination", "field", "words"),
    [
        (_destination(prefix="../other/"), "destination.prefix", "has a '.' or '..' folder"),
        (_destination(prefix="a/./b/"), "destination.prefix", "has a '.' or '..' folder"),
        (_destination(prefix="inbound/\n"), "destination.prefix", "must be empty or folders"),
        (
            _destination(role_arn="arn:aws:iam::123456789012:role/deliver-acme\n"),
            "destination.role_arn",
            "is not an IAM role ARN",
        ),
        (
            _destination(sse={"mode": "aws:kms", "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k1"}),
            "destination",
            "the key is in us-east-1, the bucket in eu-west-1",
        ),
    ],
    ids=["dot-dot", "dot", "prefix-newline", "role-newline", "kms-region"],
)
def test_dangerous_destinations_are_refused(tmp_path, keys, destination, field, words):
    message = _error(tmp_path, keys, destination=destination)
    assert message.startswith(f"{tmp_path / 'registry.yaml'}: business 'acme': {field}: "), message
    assert words in message


def test_a_key_written_twice_in_yaml_is_refused_with_its_line(tmp_path, keys):
    path = write_registry(tmp_path / "registry.yaml", [registry_entry("acme", keys)])
    text = path.read_text().replace("cadence: hourly", "cadence: hourly\n  cadence: daily")
    path.write_text(text)
    with pytest.raises(RegistryError, match=r"registry\.yaml: business 'acme': key 'cadence' appears twice"):
        load_registry(path)


@pytest.mark.parametrize(
    "bucket", ["my..bucket", "192.168.1.10", "xn--bucket", "bucket-s3alias", "Upper", "ab", "-edge"]
)
def test_a_bucket_name_aws_refuses_is_refused_naming_the_business(tmp_path, keys, bucket):
    destination = registry_entry("acme", keys)["destination"] | {"bucket_arn": f"arn:aws:s3:::{bucket}"}
    path = write_registry(tmp_path / "registry.yaml", [registry_entry("acme", keys, destination=destination)])
    with pytest.raises(
        RegistryError, match=r"registry\.yaml: business 'acme': destination\.bucket_arn: "
    ) as error:
        load_registry(path)
    assert len(str(error.value).splitlines()) == 1
