"""``s3-sharing onboard`` and ``s3-sharing verify-access``, against moto's server with IAM enforced."""

import json
import re

import pytest

from s3_sharing import cli
from s3_sharing.outbound.onboarding import bucket_policy, kms_key_policy, verify_access
from s3_sharing.outbound.registry import read_registry
from s3_sharing.platform import crypto

from ..conftest import default_registry, registry_entry, write_registry
from ..fakes import MemoryBucket, MemoryBuckets

PLATFORM = "arn:aws:iam::999999999999:role/s3-sharing-platform"


def _documents(text: str) -> list[dict]:
    """Every JSON document printed (each starts on a line of its own with '{')."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := text.find("\n{", position)) != -1:
        document, position = decoder.raw_decode(text, start + 1)
        found.append(document)
    return found


def test_onboard_prints_the_role_the_least_privilege_policies_and_a_checklist(settings, keys, capsys):
    assert cli.main(["onboard", "globex", "--platform-principal", PLATFORM]) == 0
    out = capsys.readouterr().out
    fingerprint = keys["platform-signing"].fingerprint.upper()
    assert f"Our signing public key, fingerprint {fingerprint}" in out
    armor = out[
        out.index("-----BEGIN PGP PUBLIC KEY BLOCK-----") : out.index("-----END PGP PUBLIC KEY BLOCK-----")
    ]
    printed = crypto.load_cert(armor + "-----END PGP PUBLIC KEY BLOCK-----\n", "printed key")
    assert printed.fingerprint.upper() == fingerprint and not printed.has_secret_keys
    assert "PRIVATE KEY" not in out
    assert "python verify_deliveries.py --bucket globex-bucket --prefix 'psp/inbound/'" in out
    dictionary = out[out.index("== What the files hold (data dictionary) ==") :]
    dictionary = dictionary[: dictionary.index("== What the business gives us ==")]
    sections = [line.removeprefix("## ") for line in dictionary.splitlines() if line.startswith("## ")]
    assert sections == ["IDENTITY", "PAYMENTS", "TRANSACTIONS", "BENEFICIARIES"], "its data sets only"
    assert "| `beneficiary_iban` | string | IBAN of the beneficiary's account. |" in dictionary
    assert (
        "Row key: `payment_id` with `updated_at` (a change window has one row per version). Schema version: 2"
        in dictionary
    )
    globex = read_registry(settings.registry).get("globex")
    role = globex.destination.role_arn
    assert f"Our delivery role ARN (add it to your bucket policy): {role}" in out

    bucket, kms, trust, permissions = _documents(out)
    assert bucket == bucket_policy(globex.destination)
    for statement in bucket["Statement"]:
        assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": role}
        assert "*" not in statement["Action"]
    objects = [s["Resource"] for s in bucket["Statement"] if s["Resource"].endswith("*")]
    assert objects == ["arn:aws:s3:::globex-bucket/psp/inbound/*"] * 2
    assert [s["Action"] for s in bucket["Statement"]] == [
        ["s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        ["s3:GetObject"],
        ["s3:ListBucket"],
    ]
    listing = bucket["Statement"][2]
    assert listing["Resource"] == "arn:aws:s3:::globex-bucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["psp/inbound/*"]}}

    assert kms == kms_key_policy(globex.destination)
    use, describe = kms["Statement"]
    assert use["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    assert describe["Action"] == ["kms:DescribeKey"] and describe["Principal"] == {"AWS": role}
    kms_statements = [
        s for s in permissions["Statement"] if s["Sid"] in ("EncryptWithBusinessKey", "ResolveBusinessKey")
    ]
    assert [s["Resource"] for s in kms_statements] == ["arn:aws:kms:eu-west-1:123456789012:key/*"] * 2
    assert trust["Statement"][0]["Principal"] == {"AWS": PLATFORM}
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": "globex-secret-ext"}}
    assert {s["Sid"] for s in permissions["Statement"]} >= {"WriteDeliveries", "EncryptWithBusinessKey"}

    checklist = out[out.index("== Checklist ==") :]
    assert len(re.findall(r"^\[ \] ", checklist, re.MULTILINE)) == 7
    assert "key policy statement to arn:aws:kms:eu-west-1:123456789012:alias/globex" in checklist
    assert "s3://globex-bucket/psp/inbound/IDENTITY/2026-01-01/09/IDENTITY_20260101T0900Z.csv.pgp" in out


def test_onboard_without_sse_kms_has_no_key_policy(settings, capsys):
    assert cli.main(["onboard", "acme", "--platform-principal", PLATFORM]) == 0
    out = capsys.readouterr().out
    assert "Key policy" not in out and "kms:" not in out
    assert len(_documents(out)) == 3


def test_onboard_takes_the_platform_principal_from_the_current_credentials(settings, stack, capsys):
    assert cli.main(["onboard", "acme"]) == 0
    (_, trust, _) = _documents(capsys.readouterr().out)
    assert trust["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:user/s3-sharing-platform"}


def test_an_unknown_business_is_named(settings, capsys):
    assert cli.main(["onboard", "nobody", "--platform-principal", PLATFORM]) == 2
    assert "no business 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize("business_id", ["acme", "globex"])
def test_verify_access_writes_inspects_and_removes_a_probe(settings, stack, capsys, business_id):
    assert cli.main(["verify-access", business_id]) == 0
    out = capsys.readouterr().out
    steps = [line.split(":")[0] for line in out.splitlines()[:-1]]
    assert steps == [
        f"OK   {s}" for s in ("assume role", "write", "encryption", "read back", "list", "delete")
    ]
    expected = (
        "aws:kms with arn:aws:kms:eu-west-1:123456789012:alias/globex"
        if business_id == "globex"
        else "AES256"
    )
    assert f"OK   encryption: {expected}" in out
    assert "0 objects under the prefix" not in out  # the probe was listed while it existed
    business = read_registry(settings.registry).get(business_id)
    left = stack.reader_client().list_objects_v2(Bucket=business.destination.bucket)
    assert left.get("KeyCount", 0) == 0, "the probe must be removed"
    assert f"verify-access {business_id}: connection OK" in out


def test_verify_access_names_the_missing_permission_and_its_resource(settings, keys, stack, capsys, tmp_path):
    """The registry moved acme to a prefix its role may not write (the role was provisioned for
    ``shared/``), and points globex at a role our identity may not assume."""
    entries = default_registry(keys)
    entries[0] = registry_entry(
        "acme", keys, destination={**entries[0]["destination"], "prefix": "elsewhere/"}
    )
    globex = entries[1]["destination"]
    entries[1] = {
        **entries[1],
        "destination": {**globex, "role_arn": "arn:aws:iam::123456789012:role/unknown"},
    }
    moved = write_registry(tmp_path / "moved.yaml", entries)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S3_SHARING_REGISTRY", str(moved))
        assert cli.main(["verify-access", "acme"]) == 1
        out = capsys.readouterr().out
        assert "OK   assume role" in out
        assert (
            "FAIL write: permission missing: s3:PutObject on arn:aws:s3:::acme-bucket/elsewhere/* is not "
            "allowed to arn:aws:iam::123456789012:role/deliver-acme" in out
        )
        assert "verify-access acme: connection NOT ready" in out

        assert cli.main(["verify-access", "globex"]) == 1
        out = capsys.readouterr().out
        assert (
            "FAIL assume role: our platform identity may not assume arn:aws:iam::123456789012:role/unknown"
            in out
        )
        assert "with this business's external id" in out


KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class _AwsLikeKms(MemoryBucket):
    """As AWS answers: S3 reports the key's ARN, and DescribeKey resolves the registry's alias."""

    reported = KEY_ARN

    def encryption(self, key: str) -> tuple[str | None, str | None]:
        return "aws:kms", self.reported

    def kms_key_arn(self, key_id: str) -> str:
        return KEY_ARN if key_id.endswith(":alias/globex") else key_id


@pytest.mark.parametrize(
    ("reported", "ok"), [(KEY_ARN, True), (KEY_ARN.replace("1234abcd", "99999999"), False)]
)
def test_verify_access_compares_the_key_behind_an_alias(settings, reported, ok):
    class Buckets(MemoryBuckets):
        def open(self, location, role, *, owner, session_id):
            bucket = _AwsLikeKms(owner, location, self.buckets.setdefault(location.bucket, {}))
            bucket.reported = reported
            return bucket

    steps = {s.name: s for s in verify_access(read_registry(settings.registry).get("globex"), Buckets())}
    assert steps["encryption"].ok is ok, steps["encryption"].detail
