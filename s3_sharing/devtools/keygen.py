"""OpenPGP key pairs made with GnuPG, as a partner business would make them (demo and tests)."""

from dataclasses import dataclass
from pathlib import Path

from s3_sharing.platform.gnupg import gnupg_home, gpg


@dataclass(frozen=True)
class KeyPair:
    public: Path
    secret: Path
    fingerprint: str


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
