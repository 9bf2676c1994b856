"""The business registry: who receives what, where, how often, encrypted to which key.

A YAML file validated when the definitions load. Every error names the file, the business and
the field, e.g. ``registry.yaml: business 'acme': destination.bucket_arn: ...``.
"""

import itertools
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from s3_sharing.outbound.datasets import Contents, Dataset
from s3_sharing.outbound.layout import DEFAULT_TEMPLATES, Layout, LayoutError
from s3_sharing.platform.bucket_names import check_bucket_name
from s3_sharing.platform.storage import AssumedRole, Bucket, BucketLocation, S3Buckets
from s3_sharing.platform.time import Cadence, Window
from s3_sharing.platform.yaml_registry import PublicKey, read_public_key, read_registry_file

_BUCKET_ARN = re.compile(r"^arn:aws:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
_ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]{1,128}$")
_KMS_ARN = re.compile(r"^arn:aws:kms:[a-z0-9-]+:\d{12}:(key|alias)/[\w/-]+$")
_PREFIX = re.compile(r"^([A-Za-z0-9_.=-]+/)*$")
_DESTINATION_FORMATS = {
    "bucket_arn": (_BUCKET_ARN, "is not an S3 bucket ARN (arn:aws:s3:::<bucket>)"),
    "role_arn": (_ROLE_ARN, "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
    "prefix": (_PREFIX, "must be empty or folders ending in '/', like 'shared/s3_sharing/'"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSideEncryption(_Strict):
    mode: Literal["AES256", "aws:kms"] = "AES256"
    kms_key_arn: str | None = None

    @model_validator(mode="after")
    def _kms_needs_a_key(self) -> "ServerSideEncryption":
        if self.mode == "aws:kms" and not (self.kms_key_arn and _KMS_ARN.fullmatch(self.kms_key_arn)):
            raise ValueError(
                "aws:kms needs kms_key_arn, a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
            )
        if self.mode == "AES256" and self.kms_key_arn:
            raise ValueError("kms_key_arn is only for mode aws:kms")
        return self


class Destination(_Strict):
    bucket_arn: str
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    prefix: str = ""
    role_arn: str
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    sse: ServerSideEncryption = ServerSideEncryption()

    @field_validator("bucket_arn", "role_arn", "prefix")
    @classmethod
    def _well_formed(cls, value: str, info: ValidationInfo) -> str:
        pattern, expected = _DESTINATION_FORMATS[info.field_name]
        if not pattern.fullmatch(value):  # not match(): "$" also matches before a final newline
            raise ValueError(f"{value!r} {expected}")
        if info.field_name == "bucket_arn":
            check_bucket_name(value.removeprefix("arn:aws:s3:::"))
        if info.field_name == "prefix" and any(part in (".", "..") for part in value.split("/")):
            raise ValueError(f"{value!r} has a '.' or '..' folder: keys must stay inside the prefix")
        return value

    @model_validator(mode="after")
    def _key_in_the_buckets_region(self) -> "Destination":
        key = self.sse.kms_key_arn
        if key and key.split(":")[3] != self.region:
            raise ValueError(
                f"sse.kms_key_arn: the key is in {key.split(':')[3]}, the bucket in {self.region}: "
                "S3 can only use a KMS key of the bucket's region"
            )
        return self

    @property
    def bucket(self) -> str:
        match = _BUCKET_ARN.fullmatch(self.bucket_arn)
        assert match  # validated above
        return match.group(1)

    def location(self) -> BucketLocation:
        return BucketLocation(self.bucket, self.region, self.prefix, self.sse.mode, self.sse.kms_key_arn)

    def role(self) -> AssumedRole:
        return AssumedRole(self.role_arn, self.external_id)


class Business(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    name: str = Field(min_length=1)
    active: bool = True
    inactive_since: datetime | None = None
    """When an inactive business stopped receiving deliveries: its windows that end by then are
    still certified, later ones are not (there is nothing to deliver to it)."""
    cadence: Cadence
    datasets: list[Dataset] = Field(min_length=1)
    destination: Destination
    public_key: PublicKey
    layout: str | None = None
    contents: Contents = Contents.CHANGES
    """What each window holds: the changes received in it, or every user's snapshot as of its end."""
    lookback_days: int | None = Field(default=None, ge=1, le=3660)
    """A snapshot's look-back: only rows whose business time (booked, created) is within this many days
    before the window's end. Without it, a snapshot holds all history."""
    spreadsheet_safe: bool = False
    """Opt-in for partners who open files in a spreadsheet: a text value beginning with ``=``, ``+``,
    ``-``, ``@``, a tab, a carriage return or ``'`` is written with a leading ``'`` so it is never run
    as a formula (``csvfile.neutralise``; remove one leading ``'`` to undo). Numbers, dates and
    timestamps are never changed."""

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, value: list[Dataset]) -> list[Dataset]:
        repeated = [str(d) for d, n in Counter(value).items() if n > 1]
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return value

    @field_validator("layout")
    @classmethod
    def _layout_is_safe(cls, value: str | None, info: ValidationInfo) -> str | None:
        cadence = info.data.get("cadence")
        if value is not None and cadence is not None:
            try:
                Layout(value).validate(cadence)
            except LayoutError as error:
                raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _lookback_needs_a_snapshot(self) -> "Business":
        if self.lookback_days is not None and self.contents is not Contents.SNAPSHOT:
            raise ValueError(
                "lookback_days: only for contents: snapshot (a change window holds what it received)"
            )
        return self

    @model_validator(mode="after")
    def _inactive_since_needs_inactive(self) -> "Business":
        if self.inactive_since is not None:
            if self.active:
                raise ValueError("inactive_since: only for a business with active: false")
            if self.inactive_since.tzinfo is None:
                raise ValueError("inactive_since: give a UTC offset, e.g. 2026-03-01T00:00:00Z")
        return self

    def certifies(self, window: Window) -> bool:
        """Whether the certification expects this window delivered."""
        return self.active or (self.inactive_since is not None and window.end <= self.inactive_since)

    def open_bucket(self, s3: S3Buckets) -> Bucket:
        """The business's prefix, through its delivery role."""
        destination = self.destination
        return s3.open(
            destination.location(), destination.role(), owner=f"business {self.id!r}", session_id=self.id
        )

    def object_layout(self) -> Layout:
        return Layout(self.layout or DEFAULT_TEMPLATES[self.cadence]).validate(self.cadence)


class Registry(_Strict):
    businesses: list[Business]

    @model_validator(mode="after")
    def _unique_ids(self) -> "Registry":
        repeated = [b for b, n in Counter(b.id for b in self.businesses).items() if n > 1]
        if repeated:
            raise ValueError(f"business id {repeated[0]!r} appears more than once")
        return self

    @model_validator(mode="after")
    def _isolated_destinations(self) -> "Registry":
        """No two businesses share a delivery role or overlapping places in a bucket: one
        business's files (and manifests) must never land where another's are read."""
        problems: list[str] = []
        by_role: dict[str, str] = {}
        by_bucket: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        for business in self.businesses:
            destination = business.destination
            first = by_role.setdefault(destination.role_arn, business.id)
            if first != business.id:
                problems.append(
                    f"business {business.id!r}: destination.role_arn: {destination.role_arn} is already "
                    f"business {first!r}'s delivery role (a role serves one business)"
                )
            by_bucket[destination.bucket].append((destination.prefix, business.id))
        for bucket, places in by_bucket.items():
            places.sort()  # a prefix sorts right before the prefixes it contains
            for (prefix, owner), (inner, business_id) in itertools.pairwise(places):
                if inner.startswith(prefix):
                    problems.append(
                        f"business {business_id!r}: destination.prefix: s3://{bucket}/{inner} overlaps "
                        f"business {owner!r}'s s3://{bucket}/{prefix} (give each its own folder)"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def get(self, business_id: str) -> Business:
        for business in self.businesses:
            if business.id == business_id:
                return business
        raise KeyError(f"no business {business_id!r} in the registry")

    def by_cadence(self, cadence: Cadence) -> list[Business]:
        return [b for b in self.businesses if b.cadence is cadence]


def load_registry(path: Path) -> tuple[Registry, dict[str, str]]:
    """The validated registry and each business's armored public key."""
    registry = read_registry(path)
    return registry, {b.id: _public_key(path, b) for b in registry.businesses}


def read_registry(path: Path) -> Registry:
    """The validated registry, without reading the keys."""
    return read_registry_file(path, Registry, "businesses", "business", "S3_SHARING_REGISTRY")


def _public_key(path: Path, business: Business) -> str:
    return read_public_key(business.public_key, path, f"{path}: business {business.id!r}: public_key")
