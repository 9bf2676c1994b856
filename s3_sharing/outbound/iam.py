"""Least-privilege IAM documents for a delivery: our role's permissions and trust, and the action
lists the business's bucket and key policies grant that role."""

from typing import Any

from s3_sharing.platform.iam import LIST_ACTIONS, POLICY_VERSION, READ_ACTIONS, bucket_arn, prefix_objects_arn

WRITE_ACTIONS = ["s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject", "s3:AbortMultipartUpload"]
"""Write, replace and remove objects under the prefix (a rerun removes files it no longer has)."""
KMS_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"]
"""Decrypt too: S3 needs it to complete multipart uploads and to return what we read back."""


def delivery_role_policy(bucket: str, prefix: str, kms_key_arn: str | None) -> dict[str, Any]:
    """What the delivery role may do: write, overwrite, remove and read back its own objects under
    the prefix, and list that prefix.

    Delete lets a rerun of a window remove files it no longer produces; read and list let the
    certification check what was deposited. Nothing outside the prefix.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteDeliveries",
            "Effect": "Allow",
            "Action": WRITE_ACTIONS,
            "Resource": prefix_objects_arn(bucket, prefix),
        },
        {
            "Sid": "VerifyDeliveries",
            "Effect": "Allow",
            "Action": READ_ACTIONS,
            "Resource": prefix_objects_arn(bucket, prefix),
        },
        {
            "Sid": "ListDeliveries",
            "Effect": "Allow",
            "Action": LIST_ACTIONS,
            "Resource": bucket_arn(bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
    ]
    if kms_key_arn:
        statements.append({"Sid": "EncryptWithBusinessKey", "Effect": "Allow", "Action": KMS_ACTIONS})
        statements.append({"Sid": "ResolveBusinessKey", "Effect": "Allow", "Action": ["kms:DescribeKey"]})
        for statement in statements[-2:]:
            statement.update(kms_resource(kms_key_arn))
    return {"Version": POLICY_VERSION, "Statement": statements}


def kms_resource(kms_key_arn: str) -> dict[str, Any]:
    """``Resource`` (and ``Condition``) of a statement about a KMS key given by key or alias ARN.

    AWS matches a policy's ``Resource`` against the key ARN, never an alias, so an alias is
    expressed as any key of its account and region that carries the alias (``kms:ResourceAliases``).
    """
    region, account, name = kms_key_arn.split(":", 5)[3:6]
    if not name.startswith("alias/"):
        return {"Resource": kms_key_arn}
    return {
        "Resource": f"arn:aws:kms:{region}:{account}:key/*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": name}},
    }
