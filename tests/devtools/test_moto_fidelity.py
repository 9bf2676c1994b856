"""The local AWS stand-in's own fidelity: moto's server, IAM enforced, allows each action the
project's generated policies grant, exactly as AWS would, and refuses a few that AWS refuses.

Every delivery, import and landing test rests on this: a moto release that refuses what AWS allows
(5.2.6 refused ``ListObjectsV2`` under ``s3:ListBucket``) fails here, with the action named, rather
than as forty failures elsewhere. Where moto is known to be weaker than AWS it is said here, and the
product never relies on the weakness: moto does not evaluate ``sts:ExternalId`` conditions (AWS
refuses an assume without the right one), and it cannot evaluate ``kms:ResourceAliases``, so it
refuses direct KMS calls AWS allows (a known gap, tested below)."""

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from s3_sharing.devtools.local_endpoints import LOCAL_ACCOUNT, REGION, STATE_BUCKET, LocalEndpoints

GLOBEX_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/deliver-globex"  # SSE-KMS, external id (conftest)
ACME_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/deliver-acme"


def platform_client(stack: LocalEndpoints, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.aws_url,
        region_name=REGION,
        aws_access_key_id=stack.platform_keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.platform_keys["AWS_SECRET_ACCESS_KEY"],
    )


def as_role(stack: LocalEndpoints, role_arn: str, service: str, **assume: Any) -> Any:
    """A client with the credentials the platform gets by assuming ``role_arn``."""
    sts = platform_client(stack, "sts")
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="fidelity", **assume)["Credentials"]
    return boto3.client(
        service,
        endpoint_url=stack.aws_url,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def refused(call: Any, **arguments: Any) -> str:
    """The error code of a call that must fail."""
    with pytest.raises(ClientError) as error:
        call(**arguments)
    return str(error.value.response["Error"]["Code"])


def test_a_delivery_role_lists_its_prefix_with_s3_list_bucket(stack) -> None:
    s3 = as_role(stack, ACME_ROLE, "s3")
    s3.put_object(Bucket="acme-bucket", Key="shared/a.csv.pgp", Body=b"x")
    listed = s3.list_objects_v2(Bucket="acme-bucket", Prefix="shared/")  # ListObjectsV2, s3:ListBucket
    assert [o["Key"] for o in listed["Contents"]] == ["shared/a.csv.pgp"]
    assert s3.list_objects(Bucket="acme-bucket", Prefix="shared/")["Contents"]  # and the V1 listing


def test_a_delivery_role_puts_gets_deletes_and_writes_conditionally_under_its_prefix(stack) -> None:
    s3 = as_role(stack, ACME_ROLE, "s3")
    s3.put_object(Bucket="acme-bucket", Key="shared/once", Body=b"first", IfNoneMatch="*")
    assert refused(
        s3.put_object, Bucket="acme-bucket", Key="shared/once", Body=b"again", IfNoneMatch="*"
    ) in (
        "PreconditionFailed",
        "412",
    )
    etag = s3.head_object(Bucket="acme-bucket", Key="shared/once")["ETag"]
    s3.put_object(Bucket="acme-bucket", Key="shared/once", Body=b"second", IfMatch=etag)
    assert refused(s3.put_object, Bucket="acme-bucket", Key="shared/once", Body=b"x", IfMatch=etag) in (
        "PreconditionFailed",
        "412",
    )
    assert s3.get_object(Bucket="acme-bucket", Key="shared/once")["Body"].read() == b"second"
    s3.delete_object(Bucket="acme-bucket", Key="shared/once")


def test_a_delivery_role_encrypts_with_its_business_kms_key_and_reads_it_back(stack) -> None:
    s3 = as_role(stack, GLOBEX_ROLE, "s3", ExternalId="globex-secret-ext")
    alias = f"arn:aws:kms:{REGION}:{LOCAL_ACCOUNT}:alias/globex"
    s3.put_object(
        Bucket="globex-bucket",
        Key="psp/inbound/k",
        Body=b"sealed",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=alias,
    )
    got = s3.get_object(Bucket="globex-bucket", Key="psp/inbound/k")
    assert got["ServerSideEncryption"] == "aws:kms" and got["Body"].read() == b"sealed"


def test_known_gap_moto_refuses_direct_kms_calls_under_an_alias_condition(stack) -> None:
    """AWS allows ``kms:DescribeKey`` and ``kms:GenerateDataKey`` to the role whose policy names the
    key by ``kms:ResourceAliases`` (``outbound/iam.kms_resource``); moto cannot evaluate that
    condition and refuses. The stand-in refuses more than AWS here, never less, and deliveries do not
    depend on it (S3 calls KMS itself, above). If a moto upgrade starts allowing these, this test
    says so: then ``verify-access``'s key check can be trusted locally too."""
    kms = as_role(stack, GLOBEX_ROLE, "kms", ExternalId="globex-secret-ext")
    for key in (f"arn:aws:kms:{REGION}:{LOCAL_ACCOUNT}:alias/globex", stack.kms_key_arns["globex"]):
        assert refused(kms.describe_key, KeyId=key) in ("AccessDenied", "403")
        assert refused(kms.generate_data_key, KeyId=key, KeySpec="AES_256") in ("AccessDenied", "403")


def test_the_platform_keeps_and_lists_its_state_and_nothing_else(stack) -> None:
    s3 = platform_client(stack, "s3")
    s3.put_object(Bucket=STATE_BUCKET, Key="journals/acme/1", Body=b"{}", IfNoneMatch="*")
    listed = s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix="journals/acme/")
    assert [o["Key"] for o in listed["Contents"]] == ["journals/acme/1"]
    assert s3.get_object(Bucket=STATE_BUCKET, Key="journals/acme/1")["Body"].read() == b"{}"
    s3.delete_object(Bucket=STATE_BUCKET, Key="journals/acme/1")
    # AWS refuses what the platform's own policy does not grant: a business bucket is written only
    # through the business's role
    assert refused(s3.put_object, Bucket="acme-bucket", Key="shared/x", Body=b"x") == "AccessDenied"


def test_what_aws_refuses_a_delivery_role_moto_refuses_too(stack) -> None:
    s3 = as_role(stack, ACME_ROLE, "s3")
    outside = {"Bucket": "acme-bucket", "Key": "elsewhere/x", "Body": b"x"}
    assert refused(s3.put_object, **outside) == "AccessDenied"  # outside its prefix
    assert refused(s3.get_object, Bucket="globex-bucket", Key="psp/inbound/k") == "AccessDenied"
    assert refused(s3.put_object, Bucket="globex-bucket", Key="psp/inbound/x", Body=b"x") == "AccessDenied"
    assert refused(s3.list_objects_v2, Bucket="globex-bucket", Prefix="psp/inbound/") == "AccessDenied"
    assert refused(s3.put_object, Bucket=STATE_BUCKET, Key="journals/x", Body=b"x") == "AccessDenied"
    kms = as_role(stack, ACME_ROLE, "kms")  # acme has no key: another business's key is refused
    alias = f"arn:aws:kms:{REGION}:{LOCAL_ACCOUNT}:alias/globex"
    assert refused(kms.generate_data_key, KeyId=alias, KeySpec="AES_256") in ("AccessDenied", "403")


def test_unknown_credentials_and_roles_not_granted_are_refused(stack) -> None:
    stranger = boto3.client(
        "s3",
        endpoint_url=stack.aws_url,
        region_name=REGION,
        aws_access_key_id="AKIAUNKNOWN000000000",
        aws_secret_access_key="wrong",
    )
    assert refused(stranger.list_objects_v2, Bucket=STATE_BUCKET) == "InvalidAccessKeyId"
    sts = platform_client(stack, "sts")
    not_granted = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/someone-else"
    assert refused(sts.assume_role, RoleArn=not_granted, RoleSessionName="probe") == "AccessDenied"
