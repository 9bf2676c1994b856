"""The import sources registry: whose bucket, which folders, which entities, how mapped, when.

A YAML file (``S3_SHARING_IMPORT_SOURCES``) validated when the definitions load. Every error names
the file, the source and the field, e.g. ``imports.yaml: source 'acme': entities.0.mapping: ...``.
No secret is ever in the file: a source either grants us a role to assume (with an external id,
preferred) or names the environment variables that hold an access key pair.
"""

import fnmatch
import os
import re
from collections import Counter
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from s3_sharing.inbound.catalog import ENTITIES, PARENT_REFERENCE_CODE, REFERENCE_CODE, Entity, parents_first
from s3_sharing.platform.bucket_names import BucketName
from s3_sharing.platform.storage import AssumedRole, Bucket, BucketLocation, S3Buckets, StorageError
from s3_sharing.platform.yaml_registry import PublicKey, read_public_key, read_registry_file

_ROLE_ARN = r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]{1,128}$"
_FOLDER = re.compile(r"^([A-Za-z0-9_.=-]+/)+\Z")
_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class UnknownSource(ValueError):
    """A source id the registry does not have."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(_Strict):
    bucket: BucketName
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    role_arn: str | None = Field(default=None, pattern=_ROLE_ARN)
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    access_key_id_env: str | None = Field(default=None, pattern=_ENV_NAME)
    """The name of the environment variable holding the access key id (never the key itself)."""
    secret_access_key_env: str | None = Field(default=None, pattern=_ENV_NAME)

    @model_validator(mode="after")
    def _one_way_in(self) -> "Connection":
        keys = (self.access_key_id_env, self.secret_access_key_env)
        if self.role_arn and any(keys):
            raise ValueError("give role_arn (preferred) or the access key variables, not both")
        if not self.role_arn and not all(keys):
            raise ValueError(
                "give role_arn (with external_id), or both access_key_id_env and secret_access_key_env"
            )
        if self.external_id and not self.role_arn:
            raise ValueError("external_id goes with role_arn")
        return self


class Schedule(_Strict):
    frequency: Literal["daily", "weekly", "monthly"] = "daily"
    time: str = Field(default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """Local time of day, HH:MM (early morning by default, when nobody is working)."""
    timezone: str = "UTC"
    day: str | int | None = None
    """Weekly: a weekday (``monday``); monthly: a day of the month, 1 to 28."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like 'America/Bogota'") from None
        return value

    @model_validator(mode="after")
    def _day_fits_frequency(self) -> "Schedule":
        if self.frequency == "daily" and self.day is not None:
            raise ValueError("day: a daily schedule takes no day")
        if self.frequency == "weekly" and self.day not in WEEKDAYS:
            raise ValueError(f"day: a weekly schedule needs a weekday, one of {', '.join(WEEKDAYS)}")
        if self.frequency == "monthly" and not (isinstance(self.day, int) and 1 <= self.day <= 28):
            raise ValueError("day: a monthly schedule needs a day of the month from 1 to 28")
        return self

    def period_days(self) -> int:
        return {"daily": 1, "weekly": 7, "monthly": 31}[self.frequency]

    def cron(self) -> str:
        hour, minute = (int(part) for part in self.time.split(":"))
        if self.frequency == "weekly":
            return f"{minute} {hour} * * {WEEKDAYS.index(str(self.day)) + 1}"
        if self.frequency == "monthly":
            return f"{minute} {hour} {self.day} * *"
        return f"{minute} {hour} * * *"


class EntityImport(_Strict):
    entity: str
    folder: str
    """The folder of the bucket that holds this entity's files, like ``riesgos/``."""
    pattern: str = "*.csv"
    action: Literal["create", "update", "upsert"]
    mapping: dict[str, str] = Field(min_length=1)
    """Target field → the exact column header in the customer's files. Optional fields are off
    unless mapped."""
    parent: str | None = None
    error_policy: Literal["reject_rows", "reject_file"] = "reject_rows"
    warn_rejected_share: float = Field(default=0.05, ge=0, le=1)
    """The ``rejected_rows`` check warns when a run rejects more than this share of the rows read."""

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, value: str) -> str:
        if value not in ENTITIES:
            raise ValueError(f"unknown entity {value!r}; the catalog has {', '.join(ENTITIES)}")
        return value

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if not _FOLDER.match(value) or any(part in (".", "..") for part in value.split("/")):
            raise ValueError(f"{value!r} must be folders ending in '/', like 'riesgos/' (no '.' or '..')")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "/" in value or not value.strip():
            raise ValueError(f"{value!r} must be a file name pattern like '*.csv' (no folders)")
        return value

    @model_validator(mode="after")
    def _mapping_fits_the_entity(self) -> "EntityImport":
        entity = ENTITIES[self.entity]
        unknown = sorted(set(self.mapping) - set(entity.field_names()))
        if unknown:
            raise ValueError(
                f"mapping: {', '.join(unknown)} not fields of {self.entity} "
                f"(fields: {', '.join(entity.field_names())})"
            )
        missing = [f for f in self.required_fields() if f not in self.mapping]
        if missing:
            raise ValueError(f"mapping: required field {', '.join(missing)} is not mapped to a column")
        empty = [f for f, header in self.mapping.items() if not header.strip()]
        if empty:
            raise ValueError(f"mapping: {', '.join(empty)} mapped to an empty header")
        repeated = [h for h, n in Counter(self.mapping.values()).items() if n > 1]
        if repeated:
            raise ValueError(f"mapping: header {repeated[0]!r} is mapped to two fields")
        if self.parent is not None and self.parent != entity.parent:
            expected = f"its parent is {entity.parent}" if entity.parent else "it has no parent"
            raise ValueError(f"parent: {self.entity} cannot hang off {self.parent!r}: {expected}")
        return self

    def required_fields(self) -> list[str]:
        """Fields every file must carry: the catalog's required ones (not for ``update``, which may
        change one field), the key, and the parent's key unless the action only updates."""
        entity = ENTITIES[self.entity]
        if self.action == "update":
            return [REFERENCE_CODE]
        required = [f.name for f in entity.fields if f.required]
        return required + ([PARENT_REFERENCE_CODE] if entity.parent else [])

    def takes(self, key: str) -> bool:
        """Whether ``key`` is a file of this entity: in its folder (not below) and matching its pattern."""
        name = key.removeprefix(self.folder)
        return key.startswith(self.folder) and "/" not in name and fnmatch.fnmatchcase(name, self.pattern)

    @property
    def definition(self) -> Entity:
        return ENTITIES[self.entity]


class ImportSource(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    name: str = Field(min_length=1)
    active: bool = True
    connection: Connection
    schedule: Schedule = Schedule()
    errors_folder: str = "_errors/"
    """Where error files go, under each entity's folder."""
    public_key: PublicKey | None = None
    """The customer's OpenPGP key: error files (which quote its values) are then encrypted to it
    and signed by the platform, as ``<name>.errors.csv.gpg``."""
    tag_imported_files: bool = False
    """Tag each imported file in the customer's bucket (needs s3:GetObjectTagging and
    s3:PutObjectTagging); best effort, the ledger stays the truth."""
    _public_key_armor: str | None = PrivateAttr(default=None)
    entities: list[EntityImport] = Field(min_length=1)

    @field_validator("errors_folder")
    @classmethod
    def _errors_folder(cls, value: str) -> str:
        if not _FOLDER.match(value):
            raise ValueError(f"{value!r} must be a folder ending in '/', like '_errors/'")
        return value

    @field_validator("entities")
    @classmethod
    def _each_entity_once(cls, value: list[EntityImport]) -> list[EntityImport]:
        repeated = [e for e, n in Counter(i.entity for i in value).items() if n > 1]
        if repeated:
            raise ValueError(f"entity {repeated[0]!r} is imported twice; give it one folder")
        folders = [i.folder for i in value]
        for a in folders:
            for b in folders:
                if a != b and b.startswith(a):
                    raise ValueError(f"folder {b!r} lies inside folder {a!r}: each entity needs its own")
        return value

    def open_bucket(self, s3: S3Buckets) -> Bucket:
        """The customer's bucket, through the role it grants us or the key pair it gave us."""
        connection = self.connection
        location = BucketLocation(connection.bucket, connection.region)
        owner = f"import source {self.id!r}"
        if connection.role_arn:
            role = AssumedRole(connection.role_arn, connection.external_id)
            return s3.open(location, role, owner=owner, session_id=f"import_{self.id}")
        names = (str(connection.access_key_id_env), str(connection.secret_access_key_env))
        unset = [name for name in names if not os.environ.get(name)]
        if unset:
            raise StorageError(f"{owner}: connection: environment variable {', '.join(unset)} is not set")
        return s3.open_with_keys(location, os.environ[names[0]], os.environ[names[1]], owner=owner)

    @property
    def public_key_armor(self) -> str | None:
        """The armored key, read and checked when the registry was read."""
        return self._public_key_armor

    def entity_for(self, key: str) -> EntityImport:
        """The entity whose folder and pattern take the file ``key``."""
        for item in self.entities:
            if item.takes(key):
                return item
        folders = ", ".join(f"{i.folder}{i.pattern}" for i in self.entities)
        raise UnknownSource(f"source {self.id!r}: {key!r} is in no entity folder ({folders})")

    def in_order(self, only: list[str] | None = None) -> list[EntityImport]:
        """The source's entities (or ``only`` these), parents first."""
        names = [i.entity for i in self.entities if only is None or i.entity in only]
        return [self.entity(name) for name in parents_first(names)]

    def entity(self, name: str) -> EntityImport:
        for item in self.entities:
            if item.entity == name:
                return item
        raise KeyError(f"source {self.id!r} imports no {name!r}")


class ImportSources(_Strict):
    sources: list[ImportSource] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> "ImportSources":
        repeated = [s for s, n in Counter(s.id for s in self.sources).items() if n > 1]
        if repeated:
            raise ValueError(f"source id {repeated[0]!r} appears more than once")
        return self

    def get(self, source_id: str) -> ImportSource:
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources) or "none"
        raise UnknownSource(f"no import source {source_id!r} in the registry (known: {known})")


def read_sources(path: Path) -> ImportSources:
    sources = read_registry_file(path, ImportSources, "sources", "source", "S3_SHARING_IMPORT_SOURCES")
    for source in sources.sources:
        if source.public_key is not None:
            where = f"{path}: source {source.id!r}: public_key"
            source._public_key_armor = read_public_key(source.public_key, path, where)
    return sources
