"""A partner checks the deliveries in its own bucket with our single-file script: its own read-only
credentials, its own secret key and our public key, nothing else of ours (the script is copied out
and run by a separate interpreter). The local S3 (moto, IAM enforced) and real OpenPGP (gpg)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s3_sharing.platform.settings import REPO_ROOT

from ..outbound.runs import deliver, role

pytestmark = pytest.mark.e2e

SCRIPT = REPO_ROOT / "s3_sharing" / "partner" / "verify_deliveries.py"


def verify_as_acme(stack, keys, workdir: Path) -> subprocess.CompletedProcess[str]:
    tool = workdir / "verify_deliveries.py"
    shutil.copy(SCRIPT, tool)
    environment = {"PATH": os.environ["PATH"], "HOME": str(workdir), "AWS_DEFAULT_REGION": "eu-west-1"}
    command = [sys.executable, "-I", str(tool), "--bucket", "acme-bucket", "--prefix", "shared/"]
    command += ["--our-key", str(keys["platform-signing"].public)]
    command += ["--our-fingerprint", keys["platform-signing"].fingerprint]
    command += ["--secret-key", str(keys["acme"].secret), "--endpoint-url", stack.aws_url]
    return subprocess.run(
        command, cwd=workdir, env=environment | stack.reader_keys, capture_output=True, text=True, check=False
    )


def test_the_script_needs_nothing_of_the_platform():
    imports = [line for line in SCRIPT.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert imports and not [line for line in imports if "s3_sharing" in line]


def test_a_partner_verifies_every_window_and_sees_what_was_tampered_with(built, stack, keys, tmp_path):
    for hour in ("2026-01-01-05:00", "2026-01-01-06:00"):
        deliver(built, hour)

    clean = verify_as_acme(stack, keys, tmp_path)

    assert clean.returncode == 0, clean.stdout + clean.stderr
    print(f"\npartner tool, clean:\n{clean.stdout}")
    assert clean.stdout.count("OK   window ") == 2
    summary = clean.stdout.splitlines()[-1]
    assert summary.startswith("s3://acme-bucket/shared/: 2 windows, ") and summary.endswith("all verified")

    bucket = role(built, "acme")
    bucket.upload_bytes("stray/leftover.csv.pgp", b"not ours", "application/pgp-encrypted")
    listed = sorted(k for k in bucket.sizes() if k.startswith("2026-01-01/05/") and k.endswith(".csv.pgp"))
    bucket.upload_bytes(listed[0], b"replaced", "application/pgp-encrypted")

    tampered = verify_as_acme(stack, keys, tmp_path)

    assert tampered.returncode == 1
    out = tampered.stdout
    print(f"\npartner tool, tampered:\n{out}")
    assert "FAIL shared/stray/leftover.csv.pgp: no manifest lists this object" in out
    assert f"FAIL shared/{listed[0]}: 8 bytes, SHA-256 " in out and "; the manifest lists " in out
    assert "FAIL window 2026-01-01T05:00:00Z" in out and "OK   window 2026-01-01T06:00:00Z" in out
    assert out.splitlines()[-1].endswith("2 problems")
