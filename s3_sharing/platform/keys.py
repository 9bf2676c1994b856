"""What is wrong with the keys a feature relies on (expired, revoked, unusable, expiring soon), as
findings its asset checks turn into evaluations: outbound for businesses' keys, inbound for FIs'."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pysequoia

from s3_sharing.platform import crypto


class Severity(StrEnum):
    ERROR = "error"
    WARN = "warn"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    message: str


def key_findings(
    keys: Sequence[tuple[str, Any, bool]], warning_days: int, now: datetime | None = None
) -> list[Finding]:
    """Problems of (owner, certificate, must encrypt) keys: expired, revoked or unusable keys are
    errors; a key that expires within ``warning_days`` is a warning."""
    moment = now or datetime.now(UTC)
    findings = []
    for owner, cert, must_encrypt in keys:
        try:
            crypto.require_unexpired(cert, owner, moment)
        except crypto.KeyProblem as problem:
            findings.append(Finding(Severity.ERROR, str(problem)))
            continue
        if must_encrypt:
            try:
                pysequoia.encrypt(b"probe", recipients=[cert])
            except Exception as error:
                findings.append(Finding(Severity.ERROR, f"{owner}: cannot encrypt to key ({error})"))
                continue
        expires = crypto.expiry(cert)
        if expires is not None and expires - moment < timedelta(days=warning_days):
            days = (expires - moment).days
            findings.append(
                Finding(Severity.WARN, f"{owner}: key expires in {days} days ({expires:%Y-%m-%d})")
            )
    return findings
