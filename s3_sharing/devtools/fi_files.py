"""FI transaction files made as a financial institution makes them (demo, tests, benchmark): CSV
with the FI's own headers, encrypted to the platform's inbound key and signed with the FI's key by
GnuPG, the independent OpenPGP implementation FIs typically use."""

import csv
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from s3_sharing.inbound.rewards.registry import FIELDS
from s3_sharing.platform.gnupg import gnupg_home, gpg

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
MAPPING = dict(zip(FIELDS, HEADER, strict=True))
"""The demo FI's registry mapping: our field → its header."""
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
    with gnupg_home("gnupg-fi-") as home:
        for key in (platform_public, *([fi_secret] if fi_secret else [])):
            gpg(home, "--import", str(key))
        command = ["--trust-model", "always", "--compress-algo", "none", "--yes", "--output", str(cipher)]
        command += ["--encrypt", "--recipient", _fingerprint(home, platform_public)]
        if fi_secret is not None:
            command += ["--sign", "--local-user", _fingerprint(home, fi_secret)]
        gpg(home, *command, str(plain))
    return cipher


def _fingerprint(home: str, key: Path) -> str:
    """The primary key's fingerprint of a key file (public or secret)."""
    shown = gpg(home, "--with-colons", "--import-options", "show-only", "--import", str(key))
    return next(line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:"))


DEMO_FI = "banco_andes"


def demo_fi_registry(path: Path, fi_public: Path, fi_fingerprint: str) -> Path:
    """The demo's FI registry (``make demo`` writes it under ``.local/``: it pins the fingerprint
    of a key made on this machine): one FI, one program with one rules version."""
    import yaml

    document = {
        "landing": {"bucket": "s3-sharing-landing", "region": "eu-west-1"},
        "programs": [
            {
                "id": "debit_rewards",
                "name": "Debit card rewards",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2026-01-01T00:00:00Z",
                        "points_per_unit": "0.01",
                        "multipliers": {"5411": 2, "5812": 3},
                        "excluded_types": ["cash_withdrawal", "fee"],
                        "daily_cap": 2000,
                        "rounding": "floor",
                    }
                ],
            }
        ],
        "fis": [
            {
                "id": DEMO_FI,
                "name": "Banco de los Andes (demo)",
                "program": "debit_rewards",
                "prefix": f"{DEMO_FI}/",
                "timezone": "America/Bogota",
                "signing_keys": [{"fingerprint": fi_fingerprint, "key": {"file": str(fi_public)}}],
                "mapping": dict(MAPPING),
                "types": TYPES,
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


def demo_days(today: datetime) -> dict[str, list[tuple]]:
    """Two days of the demo FI: purchases; then more, a refund of one of the first day's, a card
    number where the token belongs and an amount with too many decimals (two bad rows)."""
    first, second = today - timedelta(days=2), today - timedelta(days=1)

    def row(
        n: int,
        user: str,
        amount: str,
        kind: str,
        mcc: str,
        day: datetime,
        hour: int,
        original: str = "",
        card: str | None = None,
    ) -> tuple:
        at = day.replace(hour=hour, minute=15).strftime("%Y-%m-%dT%H:%M:%S-05:00")
        return (f"BA{n:06d}", user, card or f"tok_{user}", amount, "COP", at, kind, mcc, "Comercio", original)

    return {
        first.strftime("%Y-%m-%d"): [
            row(1, "cli_ana", "85000.00", "COMPRA", "5411", first, 9),
            row(2, "cli_ana", "42000.50", "COMPRA", "5812", first, 13),
            row(3, "cli_luis", "120000.00", "COMPRA", "5999", first, 10),
            row(4, "cli_luis", "300000.00", "RETIRO", "6011", first, 11),
            row(5, "cli_sofia", "18990.00", "COMPRA", "5541", first, 18),
        ],
        second.strftime("%Y-%m-%d"): [
            row(6, "cli_ana", "25000.00", "COMPRA", "5411", second, 8),
            row(7, "cli_luis", "120000.00", "DEVOLUCION", "5999", second, 9, original="BA000003"),
            row(8, "cli_sofia", "5000.00", "COMPRA", "5999", second, 12, card="4111 1111 1111 1111"),
            row(9, "cli_sofia", "10.123", "COMPRA", "5999", second, 15),
        ],
    }
