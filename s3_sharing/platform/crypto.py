"""OpenPGP with Sequoia (pysequoia): encrypt to the business and the audit key, signed by the platform.

``encrypt_file`` streams file to file, so memory stays flat whatever the size. Messages use the
features the recipients' keys advertise; keys made by GnuPG get messages GnuPG reads.
"""

from collections.abc import Sequence
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


class NotVerified(ValueError):
    """A message that is not signed by one of the keys it must be signed by."""


def decrypt_verified(cipher: Path, plain: Path, decryptor: Any, signers: Sequence[Any], owner: str) -> str:
    """Decrypt ``cipher`` to ``plain`` (streamed, file to file), requiring a valid signature by one
    of ``signers``; the fingerprint of the key that signed it. An unsigned message, or one signed
    by any other key, raises ``NotVerified`` and leaves no ``plain``: Sequoia checks the signature
    at the end of the message, after it may have written plaintext, so that is removed here."""
    pinned = {cert.fingerprint.upper() for cert in signers}
    try:
        decrypted = pysequoia.decrypt_file(
            str(cipher), str(plain), decryptor=decryptor, store=lambda _ids: list(signers)
        )
        fingerprints = [sig.certificate.upper() for sig in decrypted.valid_sigs]
    except Exception as error:
        plain.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NotVerified(f"{owner}: rejected, not decrypted and verified: {reason}") from None
    if not set(fingerprints) & pinned:
        plain.unlink(missing_ok=True)
        raise NotVerified(f"{owner}: rejected: not signed by a pinned key ({', '.join(sorted(pinned))})")
    return next(f for f in fingerprints if f in pinned)


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
