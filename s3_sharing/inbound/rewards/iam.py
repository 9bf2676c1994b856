"""Least-privilege IAM around the landing bucket.

The platform's principal lists the FIs' folders, reads their file versions, writes error files
under each FI's errors folder, and moves a rejected file to the quarantine folder (copy, then
delete the key: the version itself stays in the versioned bucket). Each FI's upload role (the AWS
Transfer Family user's role in production) may only put files into its own folder and read its
error files back.
"""

from typing import Any

from s3_sharing.inbound.rewards.registry import FinancialInstitution, FiRegistry
from s3_sharing.platform.iam import POLICY_VERSION, bucket_arn, prefix_objects_arn

WRITE = ["s3:PutObject"]
PLATFORM_WRITE = ["s3:PutObject", "s3:PutObjectAcl"]
"""PutObjectAcl: AWS requires it for the ``bucket-owner-full-control`` header every upload sends."""


def landing_statements(registry: FiRegistry) -> list[dict[str, Any]]:
    """The statements the platform's own policy needs for the landing bucket."""
    landing = registry.landing
    bucket = landing.bucket
    prefixes = [fi.prefix for fi in registry.fis]
    if not prefixes:
        return []
    return [
        {
            "Sid": "ListLanding",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
            "Resource": bucket_arn(bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        },
        {
            "Sid": "ReadAndMoveFiFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"],
            "Resource": [prefix_objects_arn(bucket, p) for p in prefixes],
        },
        {
            "Sid": "WriteErrorFilesAndQuarantine",
            "Effect": "Allow",
            "Action": PLATFORM_WRITE,
            "Resource": [prefix_objects_arn(bucket, p + landing.errors_folder) for p in prefixes]
            + [prefix_objects_arn(bucket, landing.quarantine_prefix)],
        },
    ]


def fi_upload_policy(registry: FiRegistry, fi: FinancialInstitution) -> dict[str, Any]:
    """What an FI's upload role may do: put files into its folder, read its error files back."""
    bucket = registry.landing.bucket
    errors = fi.prefix + registry.landing.errors_folder
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "UploadFiles",
                "Effect": "Allow",
                "Action": WRITE,
                "Resource": prefix_objects_arn(bucket, fi.prefix),
            },
            {
                "Sid": "ReadErrorFiles",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": prefix_objects_arn(bucket, errors),
            },
            {
                "Sid": "ListOwnFolder",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": bucket_arn(bucket),
                "Condition": {"StringLike": {"s3:prefix": [f"{fi.prefix}*"]}},
            },
        ],
    }
