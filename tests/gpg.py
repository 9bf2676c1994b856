"""GnuPG as the independent OpenPGP client that checks what the platform wrote."""

import csv
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Opened:
    plaintext: bytes
    status: str  # gpg's --status-fd lines

    @property
    def rows(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.plaintext.decode("utf-8"), newline="")))

    def signed_by(self, fingerprint: str) -> bool:
        return (
            any(
                line.startswith("[GNUPG:] VALIDSIG") and fingerprint in line
                for line in self.status.splitlines()
            )
            and "[GNUPG:] GOODSIG" in self.status
        )


class Gpg:
    """A throwaway GnuPG home holding a recipient's secret key and the platform's public key."""

    def __init__(self, *key_files: Path) -> None:
        self._home = tempfile.TemporaryDirectory(prefix="gnupg-test-")
        os.chmod(self._home.name, 0o700)
        for key in key_files:
            self._run("--import", str(key))

    def _run(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [
            "gpg",
            "--homedir",
            self._home.name,
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]
        return subprocess.run([*command, *args], input=data, capture_output=True, check=False)

    def open(self, message: bytes) -> Opened:
        """Decrypt and verify; fails the test with gpg's own words when it cannot."""
        completed = self._run("--status-fd", "2", "--trust-model", "always", "--decrypt", data=message)
        status = completed.stderr.decode(errors="replace")
        if completed.returncode != 0:
            raise AssertionError(f"gpg could not decrypt: {status}")
        return Opened(completed.stdout, status)

    def verify_detached(self, data: bytes, signature: bytes) -> bool:
        with tempfile.NamedTemporaryFile(suffix=".sig") as sig:
            sig.write(signature)
            sig.flush()
            completed = self._run("--status-fd", "2", "--verify", sig.name, "-", data=data)
        return completed.returncode == 0 and "[GNUPG:] GOODSIG" in completed.stderr.decode(errors="replace")

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", self._home.name, "--kill", "gpg-agent"], capture_output=True, check=False
        )
        self._home.cleanup()
