"""IAM building blocks every feature's policies are made of, and the platform principal's own
policy: assume the roles the features need, keep its state, and the landing statements."""

from typing import Any

POLICY_VERSION = "2012-10-17"
READ_ACTIONS = ["s3:GetObject"]
"""Read back what was deposited, or read a customer's file."""
LIST_ACTIONS = ["s3:ListBucket"]
"""``ListObjectsV2`` of a prefix: AWS authorises it with ``s3:ListBucket``."""


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def prefix_objects_arn(bucket: str, prefix: str) -> str:
    return f"{bucket_arn(bucket)}/{prefix}*"


def role_trust_policy(platform_principal_arn: str, external_id: str | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": platform_principal_arn},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": POLICY_VERSION, "Statement": [statement]}


STATE_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
"""Leases, chain heads and journals: read, conditionally write, remove."""


def platform_policy(
    delivery_role_arns: list[str], state_bucket: str, landing: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What the platform's own principal may do: assume the delivery (and import) roles, keep its
    state (in its own bucket, nothing else of it), and with ``landing`` the landing bucket's
    statements (``inbound/rewards/iam.py``)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            *(
                [
                    {
                        "Sid": "AssumeDeliveryRoles",
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": delivery_role_arns,
                    }
                ]
                if delivery_role_arns
                else []
            ),
            {
                "Sid": "KeepState",
                "Effect": "Allow",
                "Action": STATE_ACTIONS,
                "Resource": f"{bucket_arn(state_bucket)}/*",
            },
            {
                "Sid": "ListState",
                "Effect": "Allow",
                "Action": LIST_ACTIONS,
                "Resource": bucket_arn(state_bucket),
            },
            *(landing or []),
        ],
    }
