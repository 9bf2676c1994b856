"""GnuPG for what must stream whatever the size: decrypting an inbound file with its sender's
pinned keys required. (pysequoia's ``decrypt_file`` holds the message in memory while it checks
the signature: measured here, 273 MB of RSS for a 102 MB file; gpg streams it in a few MB.)
Also the throwaway homes the demo, the tests and the benchmark make keys and files in."""

import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH = ["--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback"]


class NotVerified(ValueError):
    """A message that is not signed by one of the keys it must be signed by, or not for us."""


@contextmanager
def gnupg_home(prefix: str = "gnupg-") -> Iterator[str]:
    """A throwaway GnuPG home (0700), its agent stopped and the folder removed afterwards. In the
    system's temporary directory: gpg-agent's socket path must stay under the 108 bytes of a Unix
    socket name, which a deep work directory would pass."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        os.chmod(home, 0o700)
        try:
            yield home
        finally:
            subprocess.run(
                ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False
            )


def gpg(home: str, *args: str, faked_time: str | None = None) -> str:
    """GnuPG in batch mode on ``home`` (no passphrase); its output, or RuntimeError with its words."""
    command = ["gpg", "--homedir", home, *BATCH, "--passphrase", ""]
    if faked_time:
        command += ["--faked-system-time", faked_time]
    completed = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"gpg {args[0]} failed: {completed.stderr.strip()}")
    return completed.stdout


@dataclass(frozen=True)
class PinnedDecryptor:
    """Our secret key (armored) and its passphrase; decrypts only what a pinned key signed."""

    secret_armor: str
    passphrase: str | None = None

    def decrypt_verified(self, cipher: Path, plain: Path, signers: Sequence[Any], owner: str) -> str:
        """Decrypt ``cipher`` to ``plain``, streamed, requiring a valid signature by one of
        ``signers`` (certificates); the fingerprint of the pinned key that signed it. Anything
        else raises ``NotVerified`` and leaves no ``plain``: gpg checks the signature at the end
        of the message, after it has written the plaintext, so that is removed here."""
        pinned = {cert.fingerprint.upper() for cert in signers}
        with gnupg_home("gnupg-in-") as home:
            keys = [self.secret_armor, *(str(cert) for cert in signers)]
            subprocess.run(
                ["gpg", "--homedir", home, *BATCH, "--import"],
                input="\n".join(keys).encode(),
                capture_output=True,
                check=False,
            )
            completed = subprocess.run(
                [
                    "gpg",
                    "--homedir",
                    home,
                    *BATCH,
                    "--status-fd",
                    "1",
                    "--passphrase-fd",
                    "0",
                    "--trust-model",
                    "always",
                    "--yes",
                    "--output",
                    str(plain),
                    "--decrypt",
                    str(cipher),
                ],
                input=(self.passphrase or "").encode(),
                capture_output=True,
                check=False,
            )
        status = completed.stdout.decode(errors="replace").splitlines()
        signed_by = [line.split()[-1].upper() for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
        good = [fpr for fpr in signed_by if fpr in pinned]
        if completed.returncode == 0 and good and "[GNUPG:] DECRYPTION_OKAY" in status:
            return good[0]
        plain.unlink(missing_ok=True)
        raise NotVerified(f"{owner}: rejected, not decrypted and verified: {_reason(status, signed_by)}")


def _reason(status: list[str], signed_by: list[str]) -> str:
    """What is wrong with a message gpg would not decrypt and verify, from its status lines."""
    seen = {line.split()[1] for line in status if line.startswith("[GNUPG:] ") and len(line.split()) > 1}
    no_data = [line.split()[-1] for line in status if line.startswith("[GNUPG:] NODATA")]
    if "ENC_TO" not in seen and (no_data or not seen):
        return "not an OpenPGP encrypted message"
    if "DECRYPTION_KEY" not in seen and ("NO_SECKEY" in seen or "DECRYPTION_FAILED" in seen):
        recipients = [line.split()[2] for line in status if line.startswith("[GNUPG:] ENC_TO")]
        return f"encrypted to another key ({', '.join(recipients)}), not to our inbound key"
    if no_data or "DECRYPTION_OKAY" not in seen:
        return "corrupt or truncated: not a complete OpenPGP message"
    if signed_by:
        return f"signed by {', '.join(signed_by)}, which is not a pinned key"
    if unknown := [_signer(line) for line in status if line.startswith("[GNUPG:] ERRSIG")]:
        return f"signed by {', '.join(unknown)}, which is not a pinned key"
    if "BADSIG" in seen:
        return "the signature does not match the content (altered after signing)"
    return "not signed (a pinned key's signature is required)"


def _signer(errsig: str) -> str:
    """The signing key of an ``ERRSIG`` line: its fingerprint when gpg gives it, else its key id."""
    fields = errsig.split()
    return fields[8] if len(fields) > 8 and fields[8] != "-" else f"key id {fields[2]}"
