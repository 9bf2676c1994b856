"""Deterministic synthetic fintech data for the raw landing tables.

The raw tables are append-only change logs: a late-arriving change appends a new version of a
row with a later ``updated_at``, as a CDC feed would. Every row carries ``loaded_at``, when the
platform received it: a few minutes after ``updated_at``, for a share of rows hours later; a row
not received by the end of the generated hours is not there yet. The same seed and scale always
produce the same rows. Names and addresses deliberately contain commas, quotes, newlines and non-ASCII text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

RAW_SCHEMA = "raw"

CATEGORIES = (
    "groceries",
    "restaurants",
    "transport",
    "travel",
    "utilities",
    "entertainment",
    "health",
    "shopping",
    "salary",
    "transfer",
    "fees",
)
TRANSACTION_STATUSES = ("pending", "settled", "reversed", "failed")
PAYMENT_STATUSES = ("initiated", "completed", "rejected", "returned")
KYC_STATUSES = ("verified", "pending", "expired", "rejected")
CURRENCIES = ("EUR", "USD", "GBP")

BUSINESSES = (
    ("acme", "Acme Payments, Inc."),
    ("globex", 'Globex "Global" Bank'),
    ("initech", "Initech Crédit\nServices"),
    ("umbrella", "Umbrella Fintech Ltd."),
    ("hooli", "Hooli Wallet"),
    ("zoe", "Zoë & Søn Sparkasse"),
)
FIRST_NAMES = (
    "Ana", "Zoë", "Łukasz", "Anne \"Nan\"", "José", "Mary-Jane", "李", "Søren", "Chloé", "Ahmed",
    "Olu", "Ines", "Björn", "Priya", "Kenji", "Fatima",
)  # fmt: skip
LAST_NAMES = (
    "O'Brien", "García, Jr.", "Müller", "Nguyễn", "Smith", "de la Cruz", "Kowalski", "王",
    "Øster\nHolm", "Dupont", "Okafor", "Rossi", "Ivanova", "Schmidt",
)  # fmt: skip
STREETS = ("1 Main St, Apt 2", "Calle Mayor, 5", "Königstraße 9", '12 "The Mews"', "Rue de l'Été")
CITIES = ("Madrid", "Berlin", "London", "Paris", "Kraków", "São Paulo", "Zürich")
COUNTRIES = ("ES", "DE", "GB", "FR", "PL", "BR", "CH")
MERCHANTS = (
    "Tesco", "Café \"Le Zinc\"", "Uber, B.V.", "Ryanair", "Iberdrola", "Netflix", "Farmacia Ñu",
    "Amazon EU S.à r.l.", "Payroll", "Bank transfer", "Monthly fee", "Lidl\nStore 42",
)  # fmt: skip

DDL = {
    "businesses": """
        business_id varchar, name varchar, country varchar,
        created_at timestamp, updated_at timestamp, loaded_at timestamp""",
    "users": """
        user_id varchar, business_id varchar, first_name varchar, last_name varchar,
        email varchar, phone varchar, date_of_birth date, document_type varchar,
        document_number varchar, nationality varchar, address varchar, city varchar,
        country varchar, kyc_status varchar, last_kyc_date date,
        created_at timestamp, updated_at timestamp, loaded_at timestamp""",
    "accounts": """
        account_id varchar, user_id varchar, account_type varchar, is_virtual boolean,
        iban varchar, currency varchar, balance decimal(18, 2),
        opened_at timestamp, updated_at timestamp, loaded_at timestamp""",
    "beneficiaries": """
        beneficiary_id varchar, user_id varchar, name varchar, iban varchar,
        bank_country varchar, created_at timestamp, updated_at timestamp, loaded_at timestamp""",
    "payments": """
        payment_id varchar, account_id varchar, beneficiary_id varchar, amount decimal(18, 2),
        currency varchar, status varchar, reference varchar,
        created_at timestamp, updated_at timestamp, loaded_at timestamp""",
    "transactions": """
        transaction_id varchar, account_id varchar, channel varchar, direction varchar,
        amount decimal(18, 2), currency varchar, merchant varchar, category varchar,
        status varchar, booked_at timestamp, updated_at timestamp, loaded_at timestamp""",
}

# Share of a business's hours with no activity at all: the first business is never quiet, the
# last one (when there are several) mostly is, so demos and tests always see empty partitions.
QUIET_SHARE_FIRST, QUIET_SHARE_LAST, QUIET_SHARE_OTHERS = 0.0, 0.8, 0.15
LATE_UPDATE_SHARE = 0.1
PAYMENT_SHARE = 0.2
RECENT_SHARE = 0.1  # accounts and beneficiaries created during the generated hours
LOAD_DELAY_SECONDS = (30, 600)  # how long after a change the loader usually receives it
LATE_ARRIVAL_SHARE = 0.05
LATE_ARRIVAL_SECONDS = (3600, 4 * 3600)  # a late share arrives hours after it happened


@dataclass(frozen=True)
class Scale:
    """How much data to generate: ``hours`` hourly windows ending (exclusive) at ``end``."""

    end: datetime
    businesses: int = 4
    users_per_business: int = 20
    events_per_hour: int = 40
    hours: int = 24
    seed: int = 7

    def __post_init__(self) -> None:
        for field in ("businesses", "users_per_business", "hours"):
            if getattr(self, field) < 1:
                raise ValueError(f"scale: {field} must be at least 1, got {getattr(self, field)}")
        if self.events_per_hour < 0:
            raise ValueError(f"scale: events_per_hour must be >= 0, got {self.events_per_hour}")
        if self.end.tzinfo is not None or self.end != self.end.replace(minute=0, second=0, microsecond=0):
            raise ValueError(f"scale: end must be a naive UTC hour boundary, got {self.end}")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(hours=self.hours)


def current_hour() -> datetime:
    """The start of the current UTC hour, as the naive UTC timestamps the warehouse stores."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)


def business_ids(count: int) -> list[str]:
    return [business_id(i) for i in range(count)]


def business_id(index: int) -> str:
    return BUSINESSES[index][0] if index < len(BUSINESSES) else f"biz_{index:05d}"


def _business_name(index: int) -> str:
    return BUSINESSES[index][1] if index < len(BUSINESSES) else f"Business #{index}, Ltd."


def _quiet_share(index: int, count: int) -> float:
    if index == 0:
        return QUIET_SHARE_FIRST
    return QUIET_SHARE_LAST if index == count - 1 else QUIET_SHARE_OTHERS


def _pick(rng: np.random.Generator, values: tuple[str, ...], size: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.integers(0, len(values), size)]


def _seconds(base: datetime, offsets: np.ndarray) -> np.ndarray:
    return np.datetime64(base, "s") + offsets.astype("timedelta64[s]")


def _ids(prefix: str, start: int, count: int) -> list[str]:
    return [f"{prefix}_{n:010d}" for n in range(start, start + count)]


class _Generator:
    """Draws every table from one random stream, in a fixed order, so output is reproducible."""

    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self.rng = np.random.default_rng(scale.seed)
        self.history_start = scale.start - timedelta(days=30)

    def _history_times(self, size: int) -> np.ndarray:
        """Creation times in the month before the generated window."""
        return _seconds(self.history_start, self.rng.integers(0, 30 * 86400, size))

    def _creation_times(self, size: int) -> np.ndarray:
        """Mostly history, but a share of new rows inside the generated hours."""
        history = self._history_times(size)
        recent = _seconds(self.scale.start, self.rng.integers(0, self.scale.hours * 3600, size))
        return np.where(self.rng.random(size) < RECENT_SHARE, recent, history)

    def businesses(self) -> pa.Table:
        count = self.scale.businesses
        created = self._history_times(count)
        return pa.table(
            {
                "business_id": business_ids(count),
                "name": [_business_name(i) for i in range(count)],
                "country": _pick(self.rng, COUNTRIES, count),
                "created_at": created,
                "updated_at": created,
            }
        )

    def users(self) -> pa.Table:
        scale, rng = self.scale, self.rng
        size = scale.businesses * scale.users_per_business
        owners = np.repeat(np.asarray(business_ids(scale.businesses), dtype=object), scale.users_per_business)
        first, last = _pick(rng, FIRST_NAMES, size), _pick(rng, LAST_NAMES, size)
        numbers = rng.integers(0, 10**8, size)
        created = self._history_times(size)
        birth = np.datetime64("1950-01-01") + rng.integers(0, 50 * 365, size).astype("timedelta64[D]")
        kyc = np.datetime64(self.history_start.date()) - rng.integers(0, 700, size).astype("timedelta64[D]")
        base = {
            "user_id": _ids("usr", 0, size),
            "business_id": owners,
            "first_name": first,
            "last_name": last,
            "email": [f"user{n}@example.com" for n in numbers],
            "phone": [f"+34 6{n:08d}" for n in numbers],
            "date_of_birth": birth,
            "document_type": _pick(rng, ("passport", "national_id", "driving_licence"), size),
            "document_number": [f"X{n:08d}" for n in numbers],
            "nationality": _pick(rng, COUNTRIES, size),
            "address": _pick(rng, STREETS, size),
            "city": _pick(rng, CITIES, size),
            "country": _pick(rng, COUNTRIES, size),
            "kyc_status": _pick(rng, KYC_STATUSES, size),
            "last_kyc_date": kyc,
            "created_at": created,
            "updated_at": created,
        }
        first_versions = pa.table(base)
        # A share of users re-verify their KYC during the window: a newer version of the row.
        changed = np.flatnonzero(rng.random(size) < 0.05)
        later = _seconds(self.scale.start, rng.integers(0, scale.hours * 3600, changed.size))
        second_versions = first_versions.take(changed)
        second_versions = second_versions.set_column(
            second_versions.schema.get_field_index("kyc_status"),
            "kyc_status",
            pa.array(["verified"] * changed.size),
        )
        second_versions = second_versions.set_column(
            second_versions.schema.get_field_index("updated_at"), "updated_at", pa.array(later)
        )
        return pa.concat_tables([first_versions, second_versions.cast(first_versions.schema)])

    def accounts(self, users: pa.Table) -> pa.Table:
        rng = self.rng
        user_ids = np.asarray(
            users.column("user_id").to_pylist()[: self.scale.businesses * self.scale.users_per_business],
            dtype=object,
        )
        per_user = rng.integers(1, 4, user_ids.size)
        owners = np.repeat(user_ids, per_user)
        size = owners.size
        # The first account of a user is a current account; about half the users hold a virtual one.
        position = np.concatenate([np.arange(n) for n in per_user])
        account_type = np.where(position == 0, "checking", _pick(rng, ("savings", "card", "virtual"), size))
        is_virtual = (account_type == "virtual") | ((position == 0) & (rng.random(size) < 0.4))
        account_type = np.where(is_virtual, "virtual", account_type)
        opened = self._creation_times(size)
        return pa.table(
            {
                "account_id": _ids("acc", 0, size),
                "user_id": owners,
                "account_type": account_type.astype(object),
                "is_virtual": is_virtual,
                "iban": [f"ES{n:022d}" for n in rng.integers(0, 10**15, size)],
                "currency": _pick(rng, CURRENCIES, size),
                "balance": rng.integers(0, 5_000_000, size) / 100,
                "opened_at": opened,
                "updated_at": opened,
            }
        )

    def beneficiaries(self, accounts: pa.Table) -> pa.Table:
        rng = self.rng
        virtual = accounts.filter(accounts.column("is_virtual"))
        holders = np.unique(np.asarray(virtual.column("user_id").to_pylist(), dtype=object))
        per_user = rng.integers(1, 4, holders.size)
        owners = np.repeat(holders, per_user)
        size = owners.size
        created = self._creation_times(size)
        names = [
            f"{a} {b}"
            for a, b in zip(_pick(rng, FIRST_NAMES, size), _pick(rng, LAST_NAMES, size), strict=True)
        ]
        return pa.table(
            {
                "beneficiary_id": _ids("ben", 0, size),
                "user_id": owners,
                "name": names,
                "iban": [f"DE{n:020d}" for n in rng.integers(0, 10**15, size)],
                "bank_country": _pick(rng, COUNTRIES, size),
                "created_at": created,
                "updated_at": created,
            }
        )

    def activity(self, accounts: pa.Table, beneficiaries: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """Transactions and payments, one business-hour at a time (bounded memory at any scale)."""
        scale, rng = self.scale, self.rng
        users_by_business = scale.users_per_business
        account_ids = np.asarray(accounts.column("account_id").to_pylist(), dtype=object)
        account_users = np.asarray(accounts.column("user_id").to_pylist(), dtype=object)
        account_virtual = np.asarray(accounts.column("is_virtual").to_pylist())
        user_index = {uid: i for i, uid in enumerate(dict.fromkeys(account_users))}
        account_business = np.asarray([user_index[u] // users_by_business for u in account_users])
        beneficiary_of = _first_by_key(
            beneficiaries.column("user_id").to_pylist(), beneficiaries.column("beneficiary_id").to_pylist()
        )
        accounts_of_business = [np.flatnonzero(account_business == b) for b in range(scale.businesses)]
        next_transaction = next_payment = 0
        for hour in range(scale.hours):
            hour_start = scale.start + timedelta(hours=hour)
            for business in range(scale.businesses):
                quiet = rng.random() < _quiet_share(business, scale.businesses)
                events = 0 if quiet else int(rng.poisson(scale.events_per_hour))
                if events == 0:
                    continue
                picked = rng.choice(accounts_of_business[business], events)
                is_payment = account_virtual[picked] & (rng.random(events) < PAYMENT_SHARE)
                booked = _seconds(hour_start, rng.integers(0, 3600, events))
                amounts = rng.integers(1, 250_000, events) / 100
                currency = _pick(rng, CURRENCIES, events)
                tx = ~is_payment
                count = int(tx.sum())
                transactions = pa.table(
                    {
                        "transaction_id": _ids("txn", next_transaction, count),
                        "account_id": account_ids[picked[tx]],
                        "channel": _pick(rng, ("card", "account"), count),
                        "direction": np.where(rng.random(count) < 0.8, "debit", "credit").astype(object),
                        "amount": amounts[tx],
                        "currency": currency[tx],
                        "merchant": _pick(rng, MERCHANTS, count),
                        "category": _pick(rng, CATEGORIES, count),
                        "status": _pick(rng, ("pending", "settled", "settled", "failed"), count),
                        "booked_at": booked[tx],
                        "updated_at": booked[tx],
                    }
                )
                next_transaction += count
                yield "transactions", transactions
                yield from self._late_updates("transactions", transactions, "status", "settled")
                pay_count = events - count
                if pay_count:
                    owners = account_users[picked[is_payment]]
                    payments = pa.table(
                        {
                            "payment_id": _ids("pay", next_payment, pay_count),
                            "account_id": account_ids[picked[is_payment]],
                            "beneficiary_id": [beneficiary_of.get(u) for u in owners],
                            "amount": amounts[is_payment],
                            "currency": currency[is_payment],
                            "status": np.full(pay_count, "initiated", dtype=object),
                            "reference": _pick(
                                rng, ("Rent, May", 'Invoice "42"', "Añadido\nextra", "Gift"), pay_count
                            ),
                            "created_at": booked[is_payment],
                            "updated_at": booked[is_payment],
                        }
                    )
                    next_payment += pay_count
                    yield "payments", payments
                    yield from self._late_updates("payments", payments, "status", "completed")

    def _late_updates(
        self, table: str, rows: pa.Table, column: str, value: str
    ) -> Iterator[tuple[str, pa.Table]]:
        """A share of rows change again 1-6 hours later, when that is still inside the data's range."""
        rng = self.rng
        picked = np.flatnonzero(rng.random(rows.num_rows) < LATE_UPDATE_SHARE)
        delay = rng.integers(3600, 6 * 3600, picked.size).astype("timedelta64[s]")
        if picked.size == 0:
            return
        later = rows.take(picked)
        new_times = later.column("updated_at").to_numpy() + delay
        keep = new_times < np.datetime64(self.scale.end, "s")
        if not keep.any():
            return
        later = later.filter(pa.array(keep))
        later = later.set_column(
            later.schema.get_field_index(column), column, pa.array([value] * later.num_rows)
        )
        later = later.set_column(
            later.schema.get_field_index("updated_at"), "updated_at", pa.array(new_times[keep])
        )
        yield table, later.cast(rows.schema)


def _first_by_key(keys: list[str], values: list[str]) -> dict[str, str]:
    first: dict[str, str] = {}
    for key, value in zip(keys, values, strict=True):
        first.setdefault(key, value)
    return first


ORPHANS = (
    ("users", "business_id", "businesses"),
    ("accounts", "user_id", "users"),
    ("beneficiaries", "user_id", "users"),
    ("transactions", "account_id", "accounts"),
    ("payments", "account_id", "accounts"),
    ("payments", "beneficiary_id", "beneficiaries"),
)
"""(child, key, parent), parents first: a row whose parent was never received (its only versions
arrived late, after the end) is left out too, as a loader that keeps the source's order would."""


class _Loader:
    """When each row reached the platform: its own random stream, so the rows stay the same."""

    def __init__(self, scale: Scale) -> None:
        self.end = np.datetime64(scale.end, "us")
        self.rng = np.random.default_rng([scale.seed, 1])

    def load(self, rows: pa.Table) -> pa.Table:
        """``rows`` with ``loaded_at``, without those not received by the end of the data."""
        size = rows.num_rows
        usual = self.rng.integers(*LOAD_DELAY_SECONDS, size)
        late = self.rng.integers(*LATE_ARRIVAL_SECONDS, size)
        delay = np.where(self.rng.random(size) < LATE_ARRIVAL_SHARE, late, usual)
        changed = rows.column("updated_at").to_numpy().astype("datetime64[us]")
        loaded = changed + delay.astype("timedelta64[s]")
        received = loaded < self.end
        return rows.append_column("loaded_at", pa.array(loaded)).filter(pa.array(received))


def generate(warehouse: Path, scale: Scale) -> dict[str, int]:
    """Replace the raw landing tables in the DuckDB file ``warehouse``; returns rows per table."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    gen = _Generator(scale)
    loader = _Loader(scale)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table, columns in DDL.items():
            con.execute(f"create or replace table {RAW_SCHEMA}.{table} ({columns})")
        businesses = gen.businesses()
        users = gen.users()
        accounts = gen.accounts(users)
        beneficiaries = gen.beneficiaries(accounts)
        batches = [
            ("businesses", businesses),
            ("users", users),
            ("accounts", accounts),
            ("beneficiaries", beneficiaries),
        ]
        for table, rows in [*batches, *gen.activity(accounts, beneficiaries)]:
            con.register("incoming", loader.load(rows))
            con.execute(f"insert into {RAW_SCHEMA}.{table} by name select * from incoming")
            con.unregister("incoming")
        for child, key, parent in ORPHANS:
            received = f"select {key} from {RAW_SCHEMA}.{parent}"
            con.execute(f"delete from {RAW_SCHEMA}.{child} where {key} not in ({received})")
        return {
            table: con.execute(f"select count(*) from {RAW_SCHEMA}.{table}").fetchone()[0]  # type: ignore[index]
            for table in DDL
        }
