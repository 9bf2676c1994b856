"""The delivery checks' evaluation, without Dagster: ``delivered`` (the certification of a set of
windows), ``keys_valid`` and ``tenant_isolation``, each a ``CheckOutcome`` the Dagster layer
(``outbound/checks.py``, and a failed delivery step in ``outbound/assets.py``) records."""

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from s3_sharing.outbound.audits import DeliverySample, sample_latest_delivery
from s3_sharing.outbound.certification import Certifier, Status
from s3_sharing.outbound.datasets import Dataset
from s3_sharing.outbound.registry import Business
from s3_sharing.platform import crypto
from s3_sharing.platform.keys import Severity, key_findings
from s3_sharing.platform.resources import PlatformKeys
from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import GcsArchive, S3Buckets
from s3_sharing.platform.time import Window
from s3_sharing.platform.warehouse import Relation, Warehouse, WindowQuery

ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


class DeliveryCheck(StrEnum):
    DELIVERED = "delivered"
    KEYS_VALID = "keys_valid"
    TENANT_ISOLATION = "tenant_isolation"


@dataclass(frozen=True)
class CheckOutcome:
    """One check of one business: whether it passed, how bad it is if not, and what it found."""

    check: DeliveryCheck
    business_id: str
    passed: bool
    severity: Severity
    metadata: dict[str, Any]


def _failed(check: DeliveryCheck, business: Business, error: Exception) -> CheckOutcome:
    return _result(check, business, False, Severity.ERROR, error=f"{type(error).__name__}: {error}")


def _result(
    check: DeliveryCheck, business: Business, passed: bool, severity: Severity, **metadata: Any
) -> CheckOutcome:
    return CheckOutcome(check, business.id, passed, severity, metadata)


class Evaluation:
    """The resources and settings one check evaluation shares across businesses."""

    def __init__(
        self,
        warehouse: Warehouse,
        archive: GcsArchive,
        s3: S3Buckets,
        keys: PlatformKeys,
        relations: Mapping[Dataset, Relation],
        users: Relation,
        state: StateStore,
        deep: bool = False,
        key_warning_days: int = 30,
    ) -> None:
        self.state, self.warehouse, self.archive, self.keys, self.users = (
            state,
            warehouse,
            archive,
            keys,
            users,
        )
        self.key_warning_days = key_warning_days
        self.signer, self.signing_cert = keys.signing_key()
        self.audit_cert = keys.audit_cert()
        self.certifier = Certifier(warehouse, relations, archive, s3, self.signing_cert, state, deep=deep)

    def evaluate(
        self, check: DeliveryCheck, business: Business, windows: list[Window], public_key: str
    ) -> CheckOutcome:
        """One check of one business: its own trouble fails this check only, not the others'.
        ``tenant_isolation`` is evaluated for many businesses at once instead."""
        if check is DeliveryCheck.TENANT_ISOLATION:
            raise ValueError("tenant_isolation is evaluated by Evaluation.tenant_isolation")
        try:
            if check is DeliveryCheck.DELIVERED:
                return self.delivered(business, windows)
            return self.keys_valid(business, public_key)
        except Exception as error:
            return _failed(check, business, error)

    def delivered(self, business: Business, windows: list[Window]) -> CheckOutcome:
        certified = [w for w in windows if business.certifies(w)]
        verdicts = self.certifier.certify(business, certified)
        failing = [v for v in verdicts if v.status.failing]
        listed = {status: [v.partition for v in verdicts if v.status is status] for status in Status}
        inactive = {}
        if len(certified) < len(windows):
            since = business.inactive_since.isoformat() if business.inactive_since else "its registration"
            inactive = {"not_certified": f"{len(windows) - len(certified)} windows: inactive since {since}"}
        return _result(
            DeliveryCheck.DELIVERED,
            business,
            passed=not failing,
            severity=Severity.ERROR,
            windows=len(verdicts),
            first=windows[0].key if windows else "",
            last=windows[-1].key if windows else "",
            delivered=len(listed[Status.DELIVERED]),
            empty=len(listed[Status.EMPTY]),
            pending=listed[Status.PENDING],
            missing=listed[Status.MISSING],
            mismatched=listed[Status.MISMATCHED],
            problems=[v.describe() for v in failing][:50],
            **inactive,
        )

    def keys_valid(self, business: Business, public_key: str) -> CheckOutcome:
        business_cert = crypto.load_cert(public_key, f"business {business.id!r}")
        findings = key_findings(
            [
                (f"business {business.id!r}", business_cert, True),
                ("platform signing key", self.signing_cert, False),
                ("audit key", self.audit_cert, True),
            ],
            self.key_warning_days,
        )
        errors = [f for f in findings if f.severity is Severity.ERROR]
        expiry = crypto.expiry(business_cert)
        return _result(
            DeliveryCheck.KEYS_VALID,
            business,
            passed=not findings,
            severity=Severity.ERROR if errors else Severity.WARN,
            business_key=business_cert.fingerprint,
            business_key_expires=f"{expiry:%Y-%m-%d}" if expiry else "never",
            findings=[f.message for f in findings],
        )

    def tenant_isolation(self, businesses: Sequence[Business], pool: Executor) -> dict[str, CheckOutcome]:
        """Each business's latest delivery sampled (in ``pool``), then whose users the sampled user
        ids are asked of the warehouse for all of them at once."""
        check = DeliveryCheck.TENANT_ISOLATION
        decryptor = self.keys.audit_decryptor()
        if decryptor is None:
            reason = "no audit secret key configured (S3_SHARING_AUDIT_SECRET_KEY_FILE): nothing sampled"
            return {b.id: _result(check, b, False, Severity.WARN, reason=reason) for b in businesses}

        def sample(business: Business) -> DeliverySample | Exception | None:
            try:
                return sample_latest_delivery(self.archive, self.state, business, decryptor)
            except Exception as error:  # this business's check fails with it, not the others'
                return error

        results, samples = {}, {}
        for business, taken in zip(businesses, pool.map(sample, businesses), strict=True):
            if isinstance(taken, Exception):
                results[business.id] = _failed(check, business, taken)
            elif taken is None:
                results[business.id] = _result(
                    check,
                    business,
                    True,
                    Severity.ERROR,
                    sampled_files=0,
                    reason="no delivery yet",
                )
            else:
                samples[business.id] = (business, taken)
        try:
            own = self._own_users({b: sample.user_ids for b, (_, sample) in samples.items()})
        except Exception as error:
            return results | {b: _failed(check, business, error) for b, (business, _) in samples.items()}
        for business_id, (business, taken) in samples.items():
            found = taken.isolation(own[business_id])
            results[business_id] = _result(
                check,
                business,
                passed=not found.foreign_rows,
                severity=Severity.ERROR,
                manifest_window=found.manifest_window,
                sampled_files=found.sampled_files,
                foreign_rows=found.foreign_rows,
                files_with_foreign_rows=found.files_with_foreign_rows,
            )
        return results

    def _own_users(self, sampled: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """Which of each business's sampled user ids are its users: one stream of the users of the
        sampled businesses (a check op's, up to 200), keeping only the sampled ids."""
        own: dict[str, set[str]] = {business_id: set() for business_id in sampled}
        if not sampled:
            return own
        query = WindowQuery(
            self.users,
            "updated_at",
            *ALL_TIME,
            columns=("business_id", "user_id"),
            among=("business_id", tuple(sampled)),
        )
        for batch in self.warehouse.stream(query):
            for business_id, user_id in zip(*(batch.column(n).to_pylist() for n in range(2)), strict=True):
                if user_id in sampled[business_id]:
                    own[business_id].add(user_id)
        return own
