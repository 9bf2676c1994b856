"""The FI registry: the landing bucket, the reward programs with their versioned rules, and each
financial institution (FI) that sends transaction files.

A YAML file (``S3_SHARING_FI_REGISTRY``) validated when the definitions load; every error names
the file, the FI or program and the field. An FI's signing keys are pinned by fingerprint: the
certificate given must be the one the fingerprint names, and only files signed by one of them are
ever decrypted (several during a rotation).
"""

import fnmatch
import re
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from s3_sharing.platform import crypto
from s3_sharing.platform.bucket_names import BucketName
from s3_sharing.platform.yaml_registry import PublicKey, RegistryError, read_public_key, read_registry_file

TRANSACTION_TYPES = ("purchase", "refund", "reversal", "chargeback", "cash_withdrawal", "fee")
CLAWBACK_TYPES = ("refund", "reversal", "chargeback")
"""Types that take back the points of the original transaction they name."""
FIELDS = (
    "transaction_id",
    "user_id",
    "card_token",
    "amount",
    "currency",
    "occurred_at",
    "type",
    "mcc",
    "merchant",
    "original_transaction_id",
)
REQUIRED_FIELDS = ("transaction_id", "user_id", "amount", "currency", "occurred_at", "type")
_PREFIX = re.compile(r"^([a-z0-9_-]+/)+\Z")
_FINGERPRINT = r"^[0-9A-Fa-f]{40}$|^[0-9A-Fa-f]{64}$"
_ID = r"^[a-z][a-z0-9_]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Landing(_Strict):
    """The platform's landing bucket (versioned, SSE-KMS; FIs upload through AWS Transfer Family)."""

    bucket: BucketName
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    quarantine_prefix: str = "_quarantine/"
    """Where rejected files are moved, outside every FI's prefix."""
    errors_folder: str = "_errors/"
    """Under each FI's prefix: the error files of its files (it reads them over SFTP)."""


class RulesVersion(_Strict):
    version: int = Field(ge=1)
    effective_from: datetime
    """Files that landed from this moment on are rewarded with this version."""
    points_per_unit: Decimal = Field(gt=0)
    """Points per major currency unit (1 EUR, 1 COP ...)."""
    multipliers: dict[str, Decimal] = {}
    """Merchant category code → multiplier of the points."""
    excluded_types: list[Literal[TRANSACTION_TYPES]] = ["cash_withdrawal", "fee"]  # type: ignore[valid-type]
    daily_cap: int | None = Field(default=None, ge=0)
    """Most points one user earns per business day (in the FI's time zone); None: no cap."""
    rounding: Literal["floor", "half_up", "ceil"] = "floor"

    @field_validator("effective_from")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2026-01-01T00:00:00Z")
        return value

    @field_validator("multipliers")
    @classmethod
    def _merchant_categories(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [mcc for mcc, factor in value.items() if not re.fullmatch(r"\d{4}", mcc) or factor < 0]
        if bad:
            raise ValueError(f"{bad[0]!r}: keys are 4-digit merchant category codes, factors >= 0")
        return value

    @field_validator("excluded_types")
    @classmethod
    def _earning_types_only(cls, value: list[str]) -> list[str]:
        if set(value) & set(CLAWBACK_TYPES):
            raise ValueError(f"{', '.join(CLAWBACK_TYPES)} take points back; they cannot be excluded")
        return value


class Program(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    versions: list[RulesVersion] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _ordered(cls, value: list[RulesVersion]) -> list[RulesVersion]:
        numbers = [v.version for v in value]
        moments = [v.effective_from for v in value]
        if numbers != sorted(set(numbers)) or moments != sorted(set(moments)):
            raise ValueError(
                "versions: list them in order, each with a higher version and a later effective_from"
            )
        return value

    def rules_at(self, landed_at: datetime) -> RulesVersion:
        """The version in effect when a file landed."""
        in_effect = [v for v in self.versions if v.effective_from <= landed_at]
        if not in_effect:
            raise ValueError(
                f"program {self.id!r}: no rules version in effect at {landed_at:%Y-%m-%dT%H:%M:%SZ}"
                f" (the first is effective from {self.versions[0].effective_from:%Y-%m-%dT%H:%M:%SZ})"
            )
        return in_effect[-1]


class SigningKey(_Strict):
    fingerprint: str = Field(pattern=_FINGERPRINT)
    key: PublicKey


class FinancialInstitution(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    program: str
    prefix: str
    """The FI's folder in the landing bucket, like ``banco_andes/``."""
    pattern: str = "*.csv.pgp"
    timezone: str = "UTC"
    """Timestamps without an offset are in this zone; the business day is the date here."""
    signing_keys: list[SigningKey] = Field(min_length=1)
    mapping: dict[str, str] = Field(min_length=1)
    """Our field → the FI's exact column header."""
    types: dict[str, Literal[TRANSACTION_TYPES]] = {}  # type: ignore[valid-type]
    """The FI's transaction type codes → ours (``COMPRA: purchase``); ours are accepted as they are."""
    _certs: tuple[Any, ...] = PrivateAttr(default=())

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value) or value.startswith("_"):
            raise ValueError(f"{value!r} must be lower-case folders ending in '/', like 'banco_andes/'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like 'America/Bogota'") from None
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if "/" in value or not value.strip():
            raise ValueError(f"{value!r} must be a file name pattern like '*.csv.pgp' (no folders)")
        return value

    @model_validator(mode="after")
    def _mapping(self) -> "FinancialInstitution":
        unknown = sorted(set(self.mapping) - set(FIELDS))
        if unknown:
            raise ValueError(f"mapping: {', '.join(unknown)} not fields (fields: {', '.join(FIELDS)})")
        missing = [f for f in REQUIRED_FIELDS if f not in self.mapping]
        if missing:
            raise ValueError(f"mapping: required field {', '.join(missing)} is not mapped to a column")
        repeated = [h for h, n in Counter(self.mapping.values()).items() if n > 1]
        if repeated:
            raise ValueError(f"mapping: header {repeated[0]!r} is mapped to two fields")
        return self

    def takes(self, key: str) -> bool:
        """Whether ``key`` is a transaction file of this FI: in its folder (not below), matching."""
        name = key.removeprefix(self.prefix)
        return key.startswith(self.prefix) and "/" not in name and fnmatch.fnmatchcase(name, self.pattern)

    @property
    def certs(self) -> tuple[Any, ...]:
        """The pinned signing certificates, read and checked when the registry was read."""
        return self._certs

    @property
    def owner(self) -> str:
        return f"FI {self.id!r}"


class FiRegistry(_Strict):
    landing: Landing
    programs: list[Program] = []
    fis: list[FinancialInstitution] = []

    @model_validator(mode="after")
    def _consistent(self) -> "FiRegistry":
        for kind, ids in (("program", [p.id for p in self.programs]), ("FI", [f.id for f in self.fis])):
            repeated = [i for i, n in Counter(ids).items() if n > 1]
            if repeated:
                raise ValueError(f"{kind} id {repeated[0]!r} appears more than once")
        programs = {p.id for p in self.programs}
        for fi in self.fis:
            if fi.program not in programs:
                raise ValueError(f"FI {fi.id!r}: program: {fi.program!r} is not a program of the registry")
            for other in self.fis:
                if other is not fi and other.prefix.startswith(fi.prefix):
                    raise ValueError(f"FI {other.id!r}: prefix: {other.prefix!r} lies inside FI {fi.id!r}'s")
        return self

    def fi(self, fi_id: str) -> FinancialInstitution:
        for fi in self.fis:
            if fi.id == fi_id:
                return fi
        raise KeyError(
            f"no FI {fi_id!r} in the registry (known: {', '.join(f.id for f in self.fis) or 'none'})"
        )

    def program(self, program_id: str) -> Program:
        return next(p for p in self.programs if p.id == program_id)

    def fi_for(self, key: str) -> FinancialInstitution | None:
        return next((fi for fi in self.fis if fi.takes(key)), None)


def read_fi_registry(path: Path) -> FiRegistry:
    registry = read_registry_file(path, FiRegistry, "fis", "FI", "S3_SHARING_FI_REGISTRY")
    for fi in registry.fis:
        certs = []
        for n, pinned in enumerate(fi.signing_keys):
            where = f"{path}: FI {fi.id!r}: signing_keys.{n}"
            cert = crypto.load_cert(read_public_key(pinned.key, path, f"{where}.key"), where)
            if cert.fingerprint.upper() != pinned.fingerprint.upper():
                raise RegistryError(
                    f"{where}.fingerprint: the key given is {cert.fingerprint.upper()}, not the pinned "
                    f"{pinned.fingerprint.upper()}"
                )
            certs.append(cert)
        fi._certs = tuple(certs)
    return registry
