"""The data sets a business can receive, the mart each one is read from, and what a window holds."""

from dataclasses import dataclass
from enum import StrEnum


class Dataset(StrEnum):
    FI_DATA = "FI_DATA"
    ANALYTICS = "ANALYTICS"
    IDENTITY = "IDENTITY"
    PAYMENTS = "PAYMENTS"
    TRANSACTIONS = "TRANSACTIONS"
    BENEFICIARIES = "BENEFICIARIES"


class Contents(StrEnum):
    """What a delivered window holds (README, "What a window holds")."""

    CHANGES = "changes"
    """Every version of every row the platform received in the window: a change feed. Its content is
    fixed once the window has closed, so later data never invalidates its certification."""
    SNAPSHOT = "snapshot"
    """For each of the business's users, the newest version of every row received before the window's
    end (optionally only the last ``lookback_days`` of business time)."""


@dataclass(frozen=True)
class Source:
    """The mart behind a data set.

    ``window_column``: when the platform received the row (the change window it belongs to);
    ``key_column``: the row's key (its versions share it; stable order); ``version_column``: which
    version is newer (none for an aggregate); ``event_column``: the business time a snapshot's
    look-back applies to (none for state such as a customer's identity).
    """

    model: str
    window_column: str
    key_column: str
    version_column: str | None = "updated_at"
    event_column: str | None = None
    schema_version: int = 2


USERS_MODEL = "stg_users"
"""Every business's users: the tenant isolation audit checks delivered rows against it."""

SOURCES: dict[Dataset, Source] = {
    Dataset.FI_DATA: Source("fi_data", "loaded_at", "transaction_id", event_column="booked_at"),
    Dataset.ANALYTICS: Source("analytics", "window_start", "analytics_id", version_column=None),
    Dataset.IDENTITY: Source("identity", "loaded_at", "user_id"),
    Dataset.PAYMENTS: Source("payments", "loaded_at", "payment_id", event_column="created_at"),
    Dataset.TRANSACTIONS: Source("transactions", "loaded_at", "transaction_id", event_column="booked_at"),
    Dataset.BENEFICIARIES: Source("beneficiaries", "loaded_at", "beneficiary_id"),
}

SUMMARIES: dict[Dataset, Dataset] = {Dataset.ANALYTICS: Dataset.FI_DATA}
"""Aggregates and the data set they summarise: a snapshot of ANALYTICS is computed from the same
snapshot of FI_DATA, so the two always agree."""
