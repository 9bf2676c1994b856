"""The data sets a business can receive, and the mart each one is read from."""

from dataclasses import dataclass
from enum import StrEnum


class Dataset(StrEnum):
    FI_DATA = "FI_DATA"
    ANALYTICS = "ANALYTICS"
    IDENTITY = "IDENTITY"
    PAYMENTS = "PAYMENTS"
    TRANSACTIONS = "TRANSACTIONS"
    BENEFICIARIES = "BENEFICIARIES"


@dataclass(frozen=True)
class Source:
    """The mart behind a data set: its model, change timestamp and row key (for stable order)."""

    model: str
    window_column: str
    key_column: str
    schema_version: int = 1


USERS_MODEL = "stg_users"
"""Every business's users: the tenant isolation audit checks delivered rows against it."""

SOURCES: dict[Dataset, Source] = {
    Dataset.FI_DATA: Source("fi_data", "updated_at", "transaction_id"),
    Dataset.ANALYTICS: Source("analytics", "window_start", "analytics_id"),
    Dataset.IDENTITY: Source("identity", "updated_at", "user_id"),
    Dataset.PAYMENTS: Source("payments", "updated_at", "payment_id"),
    Dataset.TRANSACTIONS: Source("transactions", "updated_at", "transaction_id"),
    Dataset.BENEFICIARIES: Source("beneficiaries", "updated_at", "beneficiary_id"),
}
