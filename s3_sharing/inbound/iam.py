"""Least-privilege IAM for an import source: what the role a customer grants us may do in its bucket.

Read and list the entity folders, write the error files under each folder's errors folder; nothing
else (no delete: a customer's files are never removed by us, and the ledger, not a move, marks a
file as imported).
"""

from typing import Any

from s3_sharing.inbound.sources import ImportSource
from s3_sharing.outbound.iam import LIST_ACTIONS, POLICY_VERSION, READ_ACTIONS, bucket_arn, prefix_objects_arn

ERROR_FILE_ACTIONS = ["s3:PutObject"]


def import_role_policy(source: ImportSource) -> dict[str, Any]:
    bucket = source.connection.bucket
    folders = [item.folder for item in source.entities]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "ListEntityFolders",
                "Effect": "Allow",
                "Action": LIST_ACTIONS,
                "Resource": bucket_arn(bucket),
                "Condition": {"StringLike": {"s3:prefix": [f"{folder}*" for folder in folders]}},
            },
            {
                "Sid": "ReadEntityFiles",
                "Effect": "Allow",
                "Action": READ_ACTIONS,
                "Resource": [prefix_objects_arn(bucket, folder) for folder in folders],
            },
            {
                "Sid": "WriteErrorFiles",
                "Effect": "Allow",
                "Action": ERROR_FILE_ACTIONS,
                "Resource": [prefix_objects_arn(bucket, folder + source.errors_folder) for folder in folders],
            },
        ],
    }
