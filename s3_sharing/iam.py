"""Least-privilege IAM documents for a delivery (seed 000's information exchange)."""

from typing import Any

POLICY_VERSION = "2012-10-17"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def prefix_objects_arn(bucket: str, prefix: str) -> str:
    return f"{bucket_arn(bucket)}/{prefix}*"


def delivery_role_policy(bucket: str, prefix: str, kms_key_arn: str | None) -> dict[str, Any]:
    """What the delivery role may do: write, overwrite, remove and read back its own objects under
    the prefix, and list that prefix.

    Delete lets a rerun of a window remove files it no longer produces; read and list let the
    certification check what was deposited (seed 001). Nothing outside the prefix.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteDeliveries",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": prefix_objects_arn(bucket, prefix),
        },
        {
            "Sid": "VerifyDeliveries",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": prefix_objects_arn(bucket, prefix),
        },
        {
            "Sid": "ListDeliveries",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": bucket_arn(bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "EncryptWithBusinessKey",
                "Effect": "Allow",
                # Decrypt: S3 needs it to complete multipart uploads and to return what we read back.
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": kms_key_arn,
            }
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def delivery_role_trust_policy(platform_principal_arn: str, external_id: str | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": platform_principal_arn},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": POLICY_VERSION, "Statement": [statement]}
