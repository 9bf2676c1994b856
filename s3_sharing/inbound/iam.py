"""Least-privilege IAM for an import source: what the role a customer grants us may do in its bucket.

List and read the entity folders; write (and replace, and remove the connection probe) under each
folder's errors folder; tag the imported files only where the source asks for it. Nothing else: a
customer's own files are never changed or removed by us, and the ledger, not a move, marks a file as
imported.
"""

from typing import Any

from s3_sharing.inbound.sources import ImportSource
from s3_sharing.platform.iam import LIST_ACTIONS, POLICY_VERSION, READ_ACTIONS, bucket_arn, prefix_objects_arn

ERROR_FILE_ACTIONS = ["s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject"]
"""PutObjectAcl: AWS requires it for the ``bucket-owner-full-control`` header every upload sends."""
TAGGING_ACTIONS = ["s3:GetObjectTagging", "s3:PutObjectTagging"]
"""Read the tags first: an object's tag set is replaced whole, and the customer's own tags stay."""


def import_role_policy(source: ImportSource) -> dict[str, Any]:
    bucket = source.connection.bucket
    folders = [item.folder for item in source.entities]
    files = [prefix_objects_arn(bucket, folder) for folder in folders]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListEntityFolders",
            "Effect": "Allow",
            "Action": LIST_ACTIONS,
            "Resource": bucket_arn(bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{folder}*" for folder in folders]}},
        },
        {"Sid": "ReadEntityFiles", "Effect": "Allow", "Action": READ_ACTIONS, "Resource": files},
        {
            "Sid": "WriteErrorFiles",
            "Effect": "Allow",
            "Action": ERROR_FILE_ACTIONS,
            "Resource": [prefix_objects_arn(bucket, folder + source.errors_folder) for folder in folders],
        },
    ]
    if source.tag_imported_files:
        statements.append(
            {"Sid": "TagImportedFiles", "Effect": "Allow", "Action": TAGGING_ACTIONS, "Resource": files}
        )
    return {"Version": POLICY_VERSION, "Statement": statements}
