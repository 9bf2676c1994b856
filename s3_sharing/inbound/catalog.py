"""The entities a customer can import, as data: table, business key, typed fields, parent.

Every entity is keyed by ``referenceCode`` (column ``reference_code``); a child names its parent by
``parentReferenceCode``, which the import resolves to the parent's row (column ``parent_id``).
Adding an entity is an entry here and a migration creating its table
(``tests/inbound/test_catalog.py`` keeps the two in step).
"""

import re
from dataclasses import dataclass
from enum import StrEnum

REFERENCE_CODE = "referenceCode"
PARENT_REFERENCE_CODE = "parentReferenceCode"


class FieldType(StrEnum):
    TEXT = "text"
    DATE = "date"
    TIMESTAMP = "timestamp"
    DECIMAL = "decimal"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ENUM = "enum"


POSTGRES_TYPES = {
    FieldType.TEXT: "text",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamp with time zone",
    FieldType.DECIMAL: "numeric",
    FieldType.INTEGER: "bigint",
    FieldType.BOOLEAN: "boolean",
    FieldType.ENUM: "text",
}


def column_name(field: str) -> str:
    """``occurredOn`` → ``occurred_on``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType = FieldType.TEXT
    required: bool = False
    choices: tuple[str, ...] = ()

    @property
    def column(self) -> str:
        return column_name(self.name)


@dataclass(frozen=True)
class Entity:
    name: str
    fields: tuple[Field, ...]
    parent: str | None = None

    @property
    def table(self) -> str:
        return self.name

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"entity {self.name!r} has no field {name!r}")

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields] + ([PARENT_REFERENCE_CODE] if self.parent else [])


def _entity(name: str, *fields: Field, parent: str | None = None) -> Entity:
    return Entity(name, (Field(REFERENCE_CODE, required=True), *fields), parent)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        # Risk module: risks, their events (losses, incidents) and controls.
        _entity(
            "risks",
            Field("name", required=True),
            Field("description"),
            Field(
                "category",
                FieldType.ENUM,
                choices=("operational", "credit", "market", "liquidity", "compliance", "strategic"),
            ),
            Field("likelihood", FieldType.INTEGER),
            Field("impact", FieldType.INTEGER),
            Field("identifiedOn", FieldType.DATE),
        ),
        _entity(
            "events",
            Field("name", required=True),
            Field("occurredOn", FieldType.DATE, required=True),
            Field("discoveredAt", FieldType.TIMESTAMP),
            Field("lossAmount", FieldType.DECIMAL),
            Field("currency"),
            Field("description"),
            parent="risks",
        ),
        _entity(
            "controls",
            Field("name", required=True),
            Field("frequency", FieldType.ENUM, choices=("daily", "weekly", "monthly", "quarterly", "yearly")),
            Field("automated", FieldType.BOOLEAN),
            Field("owner"),
            parent="risks",
        ),
        # AML: customers and what hangs off them.
        _entity(
            "customers",
            Field("name", required=True),
            Field(
                "documentType",
                FieldType.ENUM,
                required=True,
                choices=("national_id", "passport", "tax_id", "foreign_id"),
            ),
            Field("documentNumber", required=True),
            Field("birthDate", FieldType.DATE),
            Field("country"),
            Field("riskLevel", FieldType.ENUM, choices=("low", "medium", "high")),
        ),
        _entity(
            "counterparties",
            Field("name", required=True),
            Field("country"),
            Field("relationship", FieldType.ENUM, choices=("supplier", "beneficiary", "employer", "other")),
            parent="customers",
        ),
        _entity(
            "products",
            Field(
                "productType",
                FieldType.ENUM,
                required=True,
                choices=("account", "card", "loan", "deposit", "investment"),
            ),
            Field("openedOn", FieldType.DATE),
            Field("status", FieldType.ENUM, choices=("active", "closed")),
            parent="customers",
        ),
        _entity(
            "transactions",
            Field("bookedAt", FieldType.TIMESTAMP, required=True),
            Field("amount", FieldType.DECIMAL, required=True),
            Field("currency", required=True),
            Field("channel", FieldType.ENUM, choices=("branch", "online", "mobile", "atm", "pos")),
            parent="customers",
        ),
    )
}


def parents_first(names: list[str]) -> list[str]:
    """``names`` ordered so that every parent comes before its children (stable otherwise)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        parent = ENTITIES[name].parent
        if parent in names and parent not in ordered:
            visit(parent)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered
