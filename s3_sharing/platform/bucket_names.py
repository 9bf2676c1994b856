"""S3 bucket names as AWS accepts them, so a registry refuses a name before any request does."""

import re
from typing import Annotated

from pydantic import AfterValidator

_CHARACTERS = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> str:
    """``name`` if AWS's bucket naming rules allow it; otherwise a ValueError naming the rule."""
    if not _CHARACTERS.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit"
        )
    if ".." in name:
        raise ValueError(f"{name!r} is not an S3 bucket name: two adjacent periods")
    if _IP_ADDRESS.fullmatch(name):
        raise ValueError(f"{name!r} is not an S3 bucket name: formatted as an IP address")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        raise ValueError(f"{name!r} is not an S3 bucket name: a prefix or suffix AWS reserves")
    return name


BucketName = Annotated[str, AfterValidator(check_bucket_name)]
