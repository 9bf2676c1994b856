"""Onboarding a business: what each side gives the other, and checking the connection the way a
"Connect" button would.

We own one delivery role per business and give the business its ARN; the business gives us its
bucket ARN and adds that role to its bucket policy (and, with SSE-KMS, to its key policy).
"""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from s3_sharing.outbound.iam import KMS_ACTIONS, WRITE_ACTIONS, delivery_role_policy
from s3_sharing.outbound.layout import manifest_key
from s3_sharing.outbound.registry import Business, Destination
from s3_sharing.platform import crypto
from s3_sharing.platform.iam import (
    LIST_ACTIONS,
    POLICY_VERSION,
    READ_ACTIONS,
    bucket_arn,
    prefix_objects_arn,
    role_trust_policy,
)
from s3_sharing.platform.storage import Bucket, S3Buckets, Step, StorageError, connect_step, denied

PROBE_PREFIX = "_s3_sharing_probe/"
EXAMPLE_WINDOW = datetime(2026, 1, 1, 9, tzinfo=UTC)


def bucket_policy(destination: Destination) -> dict[str, Any]:
    """The statements the business adds to its bucket policy: our role may write, replace and
    remove objects under its prefix, read them back for certification, and list that prefix.
    Nothing else, nowhere else.

    No condition on the ACL or encryption headers: the parts of a multipart upload do not carry
    them, so such a condition would refuse every large file. Deliveries always send both (and
    ``verify-access`` checks the result); a bucket can also enforce default encryption."""
    principal = {"AWS": destination.role_arn}
    objects = prefix_objects_arn(destination.bucket, destination.prefix)
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "S3SharingDeliver",
                "Effect": "Allow",
                "Principal": principal,
                "Action": WRITE_ACTIONS,
                "Resource": objects,
            },
            {
                "Sid": "S3SharingCertify",
                "Effect": "Allow",
                "Principal": principal,
                "Action": READ_ACTIONS,
                "Resource": objects,
            },
            {
                "Sid": "S3SharingListPrefix",
                "Effect": "Allow",
                "Principal": principal,
                "Action": LIST_ACTIONS,
                "Resource": bucket_arn(destination.bucket),
                "Condition": {"StringLike": {"s3:prefix": [f"{destination.prefix}*"]}},
            },
        ],
    }


def kms_key_policy(destination: Destination) -> dict[str, Any] | None:
    """For SSE-KMS, the statements to add to the business's key policy: our role may use the key
    only through S3 in the bucket's region, and may read its ARN (``verify-access`` compares the
    key S3 used with the registry's, which may be an alias).

    ``kms:Decrypt`` is needed too: S3 calls it to complete multipart uploads and to return
    objects we read back for certification."""
    if destination.sse.mode != "aws:kms":
        return None
    principal = {"AWS": destination.role_arn}
    return {
        "Statement": [
            {
                "Sid": "S3SharingEncryptDeliveries",
                "Effect": "Allow",
                "Principal": principal,
                "Action": KMS_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{destination.region}.amazonaws.com"}},
            },
            {
                "Sid": "S3SharingDescribeKey",
                "Effect": "Allow",
                "Principal": principal,
                "Action": ["kms:DescribeKey"],
                "Resource": "*",
            },
        ]
    }


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2)


def onboarding_pack(business: Business, platform_principal: str, signing_key: str, dictionary: str) -> str:
    """The text to hand over and follow: both sides' documents, our signing public key
    (``signing_key``, armored) with how to verify a delivery, the data dictionary of the business's
    data sets (Markdown), and a checklist."""
    destination = business.destination
    example_file = business.object_layout().key(
        dataset=business.datasets[0], start=EXAMPLE_WINDOW, business_id=business.id, user_id="u123"
    )
    kms = kms_key_policy(destination)
    location = f"s3://{destination.bucket}/{destination.prefix}"
    sections = [
        f"Onboarding {business.name} ({business.id}): {', '.join(business.datasets)} every "
        f"{business.cadence} window to {location}",
        "",
        "== What we give the business ==",
        f"Our delivery role ARN (add it to your bucket policy): {destination.role_arn}",
        "",
        f"Bucket policy statements for {destination.bucket} (write to "
        f"{destination.prefix or 'the whole bucket'} only; reading and listing it back let us certify "
        "each delivery):",
        _json(bucket_policy(destination)),
    ]
    if kms:
        sections += [
            "",
            f"Key policy statement for {destination.sse.kms_key_arn}:",
            _json(kms),
        ]
    fingerprint = crypto.load_cert(signing_key, "platform signing key").fingerprint.upper()
    sections += [
        "",
        f"Our signing public key, fingerprint {fingerprint} (pin it: every file and manifest we "
        "deliver is signed with it):",
        signing_key.strip(),
        "",
        "To check every delivery in your bucket yourself (signatures, chain, sizes, SHA-256, "
        "decryption with your key, row counts, objects no manifest lists), run our single-file "
        "script s3_sharing/partner/verify_deliveries.py (Python 3.11+, boto3, gpg):",
        f"  python verify_deliveries.py --bucket {destination.bucket} --prefix '{destination.prefix}' "
        f"--our-key s3-sharing-signing.asc --our-fingerprint {fingerprint} --secret-key <your secret key>",
    ]
    sections += [
        "",
        "== What the files hold (data dictionary) ==",
        dictionary.removeprefix("# Data dictionary\n").strip(),
        "",
        "== What the business gives us ==",
        f"- the bucket ARN and region: {destination.bucket_arn} ({destination.region})",
        "- an OpenPGP public key that can encrypt and does not expire soon (files are encrypted to it)",
        *(["- the KMS key ARN for SSE-KMS"] if kms else []),
        "",
        "== Our side (the platform's AWS account) ==",
        f"Role {destination.role_arn}, trust policy:",
        _json(role_trust_policy(platform_principal, destination.external_id)),
        "Permission policy:",
        _json(delivery_role_policy(destination.bucket, destination.prefix, destination.sse.kms_key_arn)),
        "",
        "== Checklist ==",
        f"[ ] we create role {destination.role_arn.rsplit('/', 1)[-1]} with the two policies above",
        f"[ ] the business adds the bucket policy statements to {destination.bucket}",
        *(
            [f"[ ] the business adds the key policy statement to {destination.sse.kms_key_arn}"]
            if kms
            else []
        ),
        "[ ] the business sends its OpenPGP public key; we put it in the registry (public_key)",
        f"[ ] we add {business.id} to the registry with active: true",
        f"[ ] `s3-sharing verify-access {business.id}` reports every step OK",
        f"[ ] the business finds its first delivery: files like {location}{example_file} and, last, "
        f"the signed manifest {location}{manifest_key(EXAMPLE_WINDOW)} (+ .sig)",
    ]
    return "\n".join(sections)


def _explain(error: StorageError, destination: Destination, action: str, resource: str) -> str:
    """The AWS error in plain words: which permission is missing, on which resource."""
    refused = denied(error)
    if error.code == "NoSuchBucket":
        return f"bucket {destination.bucket} does not exist (or is not in {destination.region})"
    if error.code.startswith("KMS") or (refused and "kms:" in str(error)):
        return (
            f"S3 could not use KMS key {destination.sse.kms_key_arn} for our role: the key policy "
            "must allow kms:GenerateDataKey and kms:Decrypt to the role (see `s3-sharing onboard`)"
        )
    if refused:
        return (
            f"permission missing: {action} on {resource} is not allowed to {destination.role_arn} "
            "(the bucket policy and the role's policy must both allow it; see `s3-sharing onboard`)"
        )
    return str(error)


def verify_access(business: Business, s3: S3Buckets) -> list[Step]:
    """Assume the role, then write, inspect, read, list and delete a probe object under the
    business's prefix, as a delivery does. Nothing more is tried once the role or the write is
    refused; once the probe is written, every step runs, so it is always deleted."""
    destination = business.destination
    probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}.txt"
    objects = prefix_objects_arn(destination.bucket, destination.prefix)
    writer, connected = connect_step(
        lambda: business.open_bucket(s3),
        "assume role",
        f"our platform identity may not assume {destination.role_arn}: the role's trust policy must name "
        "our principal"
        + (" with this business's external id" if destination.external_id else "")
        + " and our identity must be allowed sts:AssumeRole on it",
        destination.role_arn,
    )
    steps = [connected]
    if writer is None:
        return steps

    def attempt(name: str, action: str, resource: str, run: Callable[[Bucket], str]) -> bool:
        try:
            steps.append(Step(name, True, run(writer)))
            return True
        except StorageError as error:
            steps.append(Step(name, False, _explain(error, destination, action, resource)))
            return False

    def encryption(w: Bucket) -> str:
        mode, key = w.encryption(probe)
        expected = destination.sse
        same_key = True
        if expected.kms_key_arn and key and key != expected.kms_key_arn:
            # AWS reports the key's ARN where the registry may name an alias: compare the keys
            same_key = w.kms_key_arn(key) == w.kms_key_arn(expected.kms_key_arn)
        if mode != expected.mode or not same_key:
            raise StorageError(
                f"the probe is encrypted with {mode} {key or ''}, the registry expects {expected.mode} "
                f"{expected.kms_key_arn or ''}: check the bucket's default encryption",
                "EncryptionMismatch",
            )
        return f"{mode}" + (f" with {key}" if key else "")

    def read_back(w: Bucket) -> str:
        if w.read(probe) is None:
            raise StorageError("the probe was written but cannot be found", "NoSuchKey")
        return "the probe reads back"

    def listing(w: Bucket) -> str:
        return f"{len(w.sizes())} objects under the prefix"

    def delete(w: Bucket) -> str:
        w.delete(probe)
        return "the probe is removed"

    def write(w: Bucket) -> str:
        return w.upload_bytes(probe, b"s3_sharing connection probe\n", "text/plain")

    if attempt("write", "s3:PutObject", objects, write):
        attempt("encryption", "s3:GetObject", objects, encryption)
        attempt("read back", "s3:GetObject", objects, read_back)
        attempt("list", "s3:ListBucket", bucket_arn(destination.bucket), listing)
        attempt("delete", "s3:DeleteObject", objects, delete)
    return steps
