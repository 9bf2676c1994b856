"""OpenPGP key pairs made with GnuPG, as a partner business would make them (demo and tests)."""

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    public: Path
    secret: Path
    fingerprint: str


@contextmanager
def gnupg_home(prefix: str = "gnupg-") -> Iterator[str]:
    """A throwaway GnuPG home (0700), its agent stopped and the folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        os.chmod(home, 0o700)
        try:
            yield home
        finally:
            subprocess.run(
                ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False
            )


def gpg(home: str, *args: str, faked_time: str | None = None) -> str:
    """GnuPG in batch mode on ``home``; its output, or RuntimeError with its own words."""
    command = [
        "gpg",
        "--homedir",
        home,
        "--batch",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    if faked_time:
        command += ["--faked-system-time", faked_time]
    completed = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"gpg {args[0]} failed: {completed.stderr.strip()}")
    return completed.stdout


def generate_key_pair(
    directory: Path,
    name: str,
    *,
    expire: str = "2y",
    can_encrypt: bool = True,
    created: str | None = None,
) -> KeyPair:
    """``<name>.pub`` and ``<name>.sec`` (unprotected: for the demo and tests only).

    ``expire`` is GnuPG's (``2y``, ``10d``, ``never``); ``created`` (``20200101T000000``) backdates
    the key, which with a short ``expire`` makes an already expired one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    user_id = f"{name} <{name}@s3-sharing.invalid>"
    faked = f"{created}!" if created else None
    with gnupg_home() as home:
        gpg(home, "--quick-gen-key", user_id, "ed25519", "sign,cert", expire, faked_time=faked)
        fingerprint = next(
            line.split(":")[9]
            for line in gpg(home, "--with-colons", "--list-keys", user_id).splitlines()
            if line.startswith("fpr:")
        )
        if can_encrypt:
            gpg(home, "--quick-add-key", fingerprint, "cv25519", "encr", expire, faked_time=faked)
        public = directory / f"{name}.pub"
        secret = directory / f"{name}.sec"
        public.write_text(gpg(home, "--armor", "--export", fingerprint))
        secret.write_text(gpg(home, "--armor", "--export-secret-keys", fingerprint))
        secret.chmod(0o600)
    return KeyPair(public, secret, fingerprint)
