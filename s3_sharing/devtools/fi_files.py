"""FI transaction files made as a financial institution makes them (demo, tests, benchmark): CSV
with the FI's own headers, encrypted to the platform's inbound key and signed with the FI's key by
GnuPG, the independent OpenPGP implementation FIs typically use."""

import csv
import os
import random
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEADER = (
    "id_transaccion",
    "cliente",
    "tarjeta",
    "monto",
    "moneda",
    "fecha",
    "tipo",
    "mcc",
    "comercio",
    "id_original",
)
"""The demo FI's column headers (its registry mapping names them)."""
TYPES = {"COMPRA": "purchase", "DEVOLUCION": "refund", "REVERSO": "reversal", "RETIRO": "cash_withdrawal"}
MCCS = ("5411", "5812", "5541", "5999", "4111")


def write_csv(path: Path, rows: Iterable[Sequence[object]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def purchases(count: int, users: int = 1000, day: datetime | None = None, seed: int = 7) -> Iterable[tuple]:
    """``count`` purchases (and a few cash withdrawals) spread over one day, deterministic."""
    rng = random.Random(seed)
    start = day or datetime(2026, 11, 30, tzinfo=UTC)
    for n in range(count):
        at = start + timedelta(seconds=rng.randrange(86_400))
        kind = "RETIRO" if n % 50 == 49 else "COMPRA"
        yield (
            f"TX{n:09d}",
            f"cli_{rng.randrange(users):06d}",
            f"tok_{rng.randrange(10**8):08d}",
            f"{rng.randrange(100, 500_000) / 100:.2f}",
            "COP",
            at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            kind,
            rng.choice(MCCS),
            "Comercio de prueba",
            "",
        )


def seal_as_fi(plain: Path, cipher: Path, platform_public: Path, fi_secret: Path | None) -> Path:
    """``plain`` encrypted to the platform's inbound key and, with ``fi_secret``, signed by the FI
    (without: an unsigned file, as a careless sender would make)."""
    with tempfile.TemporaryDirectory(prefix="gnupg-fi-") as home:
        os.chmod(home, 0o700)
        base = [
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
        try:
            for key in (platform_public, *([fi_secret] if fi_secret else [])):
                subprocess.run([*base, "--import", str(key)], check=True, capture_output=True)
            recipient = _fingerprint(base, platform_public)
            command = [*base, "--trust-model", "always", "--compress-algo", "none", "--yes"]
            command += ["--output", str(cipher), "--encrypt", "--recipient", recipient]
            if fi_secret is not None:
                command += ["--sign", "--local-user", _fingerprint(base, fi_secret)]
            subprocess.run([*command, str(plain)], check=True, capture_output=True)
        finally:
            subprocess.run(
                ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False
            )
    return cipher


def _fingerprint(base: list[str], key: Path) -> str:
    """The primary key's fingerprint of a key file (public or secret)."""
    shown = subprocess.run(
        [*base, "--with-colons", "--import-options", "show-only", "--import", str(key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:"))
