"""Why an inbound file is refused, in words that tell the sender what to fix: the reasons come from
gpg's status lines, for files made by an independent gpg as a careless or hostile sender would."""

from pathlib import Path

import pytest

from s3_sharing.devtools import fi_files
from s3_sharing.platform import crypto
from s3_sharing.platform.gnupg import NotVerified, PinnedDecryptor


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return fi_files.write_csv(tmp_path / "day.csv", [("T1", "u1", "10.00")] * 2000, ("id", "user", "amount"))


def decrypt(keys, cipher: Path, tmp_path: Path) -> str:
    """Decrypt as the platform (our key: platform-signing's pair stands in), pinning acme's key."""
    pinned = crypto.load_cert(keys["acme"].public.read_text(), "acme")
    ours = PinnedDecryptor(keys["platform-signing"].secret.read_text())
    out = tmp_path / "out.csv"
    try:
        return ours.decrypt_verified(cipher, out, [pinned], "fi")
    finally:
        assert not out.exists() or out.stat().st_size > 0


def refusal(keys, cipher: Path, tmp_path: Path) -> str:
    with pytest.raises(NotVerified) as refused:
        decrypt(keys, cipher, tmp_path)
    assert not (tmp_path / "out.csv").exists(), "no plaintext is left behind"
    return str(refused.value).removeprefix("fi: rejected, not decrypted and verified: ")


def seal(keys, plain: Path, to: str, signer: str | None, tmp_path: Path) -> Path:
    secret = keys[signer].secret if signer else None
    return fi_files.seal_as_fi(plain, tmp_path / f"{to}-{signer}.pgp", keys[to].public, secret)


def test_a_file_for_us_signed_by_the_pinned_key_opens(keys, plain, tmp_path):
    cipher = seal(keys, plain, "platform-signing", "acme", tmp_path)
    pinned = crypto.load_cert(keys["acme"].public.read_text(), "acme").fingerprint
    assert decrypt(keys, cipher, tmp_path).lower() == pinned.lower()
    assert (tmp_path / "out.csv").read_bytes() == plain.read_bytes()


def test_each_refusal_says_what_is_wrong(keys, plain, tmp_path):
    unsigned = seal(keys, plain, "platform-signing", None, tmp_path)
    assert refusal(keys, unsigned, tmp_path) == "not signed (a pinned key's signature is required)"

    stranger = seal(keys, plain, "platform-signing", "globex", tmp_path)
    fingerprint = crypto.load_cert(keys["globex"].public.read_text(), "g").fingerprint.upper()
    assert refusal(keys, stranger, tmp_path) == f"signed by {fingerprint}, which is not a pinned key"

    elsewhere = seal(keys, plain, "other", "acme", tmp_path)
    assert refusal(keys, elsewhere, tmp_path).startswith("encrypted to another key (")
    assert refusal(keys, elsewhere, tmp_path).endswith("), not to our inbound key")

    good = seal(keys, plain, "platform-signing", "acme", tmp_path).read_bytes()
    truncated = tmp_path / "truncated.pgp"
    truncated.write_bytes(good[: len(good) // 2])
    assert refusal(keys, truncated, tmp_path) == "corrupt or truncated: not a complete OpenPGP message"

    assert refusal(keys, plain, tmp_path) == "not an OpenPGP encrypted message"
