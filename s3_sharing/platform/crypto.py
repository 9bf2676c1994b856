"""OpenPGP with Sequoia (pysequoia): encrypt to the business and the audit key, signed by the platform.

``encrypt_file`` streams file to file, so memory stays flat whatever the size. Messages use the
features the recipients' keys advertise; keys made by GnuPG get messages GnuPG reads.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pysequoia


class KeyProblem(ValueError):
    """A key that cannot be used: unreadable, expired, or without the needed capability."""


def load_cert(armor: str, owner: str) -> Any:
    try:
        return pysequoia.Cert.from_bytes(armor.encode())
    except Exception as error:  # pysequoia raises plain exceptions
        raise KeyProblem(f"{owner}: not an OpenPGP certificate ({error})") from None


def expiry(cert: Any) -> datetime | None:
    return cert.expiration


def require_unexpired(cert: Any, owner: str, now: datetime | None = None) -> None:
    expires = expiry(cert)
    moment = now or datetime.now(UTC)
    if cert.is_revoked:
        raise KeyProblem(f"{owner}: key {cert.fingerprint} is revoked")
    if expires is not None and expires <= moment:
        raise KeyProblem(f"{owner}: key {cert.fingerprint} expired on {expires:%Y-%m-%d}")


@dataclass(frozen=True)
class Sealer:
    """Encrypts to a set of recipients and signs with the platform key."""

    recipients: tuple[Any, ...]
    signer: Any

    def seal_file(self, plain: Path, cipher: Path, owner: str) -> None:
        try:
            pysequoia.encrypt_file(
                str(plain), str(cipher), recipients=list(self.recipients), signer=self.signer, armor=False
            )
        except Exception as error:
            raise KeyProblem(f"{owner}: cannot encrypt to its key ({error})") from None

    def sign_detached(self, data: bytes) -> bytes:
        return bytes(pysequoia.sign(self.signer, data, mode=pysequoia.SignatureMode.DETACHED, armor=True))


def load_signer(secret_armor: str, passphrase: str | None) -> tuple[Any, Any]:
    """(signer, certificate) of the platform's signing key."""
    try:
        key = pysequoia.Tsk.from_bytes(secret_armor.encode())
        return key.signer(passphrase), key.extract_certificate()
    except Exception as error:
        raise KeyProblem(f"platform signing key: unusable ({error})") from None


def load_decryptor(secret_armor: str, owner: str, passphrase: str | None = None) -> Any:
    try:
        return pysequoia.Tsk.from_bytes(secret_armor.encode()).decryptor(passphrase)
    except Exception as error:
        raise KeyProblem(f"{owner}: unusable ({error})") from None


def decrypt_bytes(message: bytes, decryptor: Any) -> bytes:
    """A small message opened in memory (an error file in the demo; never a data file)."""
    return bytes(pysequoia.decrypt(message, decryptor=decryptor).bytes)


def verify_detached(data: bytes, signature: bytes, cert: Any) -> bool:
    """True when ``signature`` is a valid signature of ``data`` by ``cert``."""
    try:
        pysequoia.verify(bytes=data, store=lambda _ids: [cert], signature=pysequoia.Sig.from_bytes(signature))
    except Exception:
        return False
    return True
