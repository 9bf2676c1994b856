"""CSV, manifest and IAM documents: pure functions."""

import base64
import csv
import hashlib
import io
import json

import pyarrow as pa
import pytest

from s3_sharing.outbound.csvfile import CsvFileWriter, file_digests, runs_of
from s3_sharing.outbound.iam import delivery_role_policy
from s3_sharing.outbound.manifest import ChainLink, FileEntry, Manifest
from s3_sharing.platform.iam import role_trust_policy

TRICKY = ['Café "Le Zinc"', "Uber, B.V.", "Lidl\nStore 42", "Ñu 王 Øster", "", "plain"]


def test_csv_round_trips_tricky_text_and_hashes_what_it_wrote(tmp_path):
    batch = pa.record_batch(
        {"user_id": ["u1"] * len(TRICKY), "merchant": TRICKY, "amount": [1.5] * len(TRICKY)}
    )
    writer = CsvFileWriter(tmp_path / "out.csv", batch.schema)
    writer.write(batch.slice(0, 3))
    writer.write(batch.slice(3))
    plain = writer.close()
    data = (tmp_path / "out.csv").read_bytes()
    assert plain.rows == len(TRICKY) and plain.size == len(data)
    assert plain.sha256 == hashlib.sha256(data).hexdigest() == file_digests(tmp_path / "out.csv")[0]
    assert file_digests(tmp_path / "out.csv")[1] == base64.b64encode(hashlib.md5(data).digest()).decode()
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert [r["merchant"] for r in rows] == TRICKY
    assert data.splitlines()[0] == b'"user_id","merchant","amount"'


def test_runs_of_split_a_sorted_batch_by_value():
    batch = pa.record_batch({"user_id": ["a", "a", "b", "c", "c", "c"], "n": list(range(6))})
    runs = [(user, piece.column("n").to_pylist()) for user, piece in runs_of(batch, "user_id")]
    assert runs == [("a", [0, 1]), ("b", [2]), ("c", [3, 4, 5])]
    assert list(runs_of(batch.slice(0, 0), "user_id")) == []


def test_manifest_round_trips_and_hashes_canonically():
    manifest = Manifest(
        business_id="acme",
        cadence="hourly",
        window_start="2026-01-01T05:00:00Z",
        window_end="2026-01-01T06:00:00Z",
        run_id="r1",
        created_at="2026-01-01T06:05:00Z",
        rows={"FI_DATA": 2, "ANALYTICS": 0},
        schema_versions={"FI_DATA": 1, "ANALYTICS": 1},
        files=[FileEntry("k", "FI_DATA", 2, 10, "a" * 64, 20, "b" * 64, "bWQ1", "u1")],
        previous=ChainLink("acme/_manifests/history/x.json", "c" * 64),
    )
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest
    assert manifest.to_bytes() == Manifest.from_bytes(manifest.to_bytes()).to_bytes()
    assert not manifest.empty
    assert Manifest(**{**manifest.__dict__, "rows": {"FI_DATA": 0}, "files": []}).empty


def test_delivery_role_policy_is_limited_to_the_prefix():
    policy = delivery_role_policy("acme-bucket", "shared/", None)
    statement = policy["Statement"][0]
    assert len(policy["Statement"]) == 3
    assert statement["Resource"] == "arn:aws:s3:::acme-bucket/shared/*"
    assert set(statement["Action"]) == {
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    assert not any("*" in a.split(":")[1] for a in statement["Action"])
    read, listing = policy["Statement"][1], policy["Statement"][2]
    assert read["Action"] == ["s3:GetObject"] and read["Resource"] == "arn:aws:s3:::acme-bucket/shared/*"
    assert listing["Resource"] == "arn:aws:s3:::acme-bucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["shared/*"]}}


def test_kms_statement_names_only_the_business_key():
    policy = delivery_role_policy("b", "", "arn:aws:kms:eu-west-1:123456789012:key/abc")
    use, describe = policy["Statement"][-2:]
    assert use["Resource"] == describe["Resource"] == "arn:aws:kms:eu-west-1:123456789012:key/abc"
    assert set(use["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert describe["Action"] == ["kms:DescribeKey"] and "Condition" not in use


def test_an_alias_is_matched_by_the_keys_it_names_never_as_a_resource():
    # AWS compares Resource with the key ARN: a statement whose Resource is the alias ARN allows nothing.
    policy = delivery_role_policy("b", "", "arn:aws:kms:eu-west-1:123456789012:alias/globex")
    for statement in policy["Statement"][-2:]:
        assert statement["Resource"] == "arn:aws:kms:eu-west-1:123456789012:key/*"
        assert statement["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/globex"}}
    assert "alias/globex" not in json.dumps([s["Resource"] for s in policy["Statement"]])


@pytest.mark.parametrize("external_id", [None, "ext-123"])
def test_trust_policy_names_the_platform_and_the_external_id(external_id):
    policy = role_trust_policy("arn:aws:iam::111122223333:role/platform", external_id)
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:role/platform"}
    condition = statement.get("Condition")
    assert condition == ({"StringEquals": {"sts:ExternalId": external_id}} if external_id else None)
