"""Check the deliveries in your own bucket, with nothing of ours but our public key.

A single file: it needs Python 3.11+, boto3 and GnuPG (``gpg``), not the s3_sharing platform. Copy it
anywhere and run, with your usual AWS credentials::

    python verify_deliveries.py --bucket my-bucket --prefix shared/ \\
        --our-key s3-sharing-signing.asc --our-fingerprint <fingerprint from onboarding> \\
        --secret-key my-secret-key.asc [--passphrase-env MY_KEY_PASSPHRASE]

For every window's manifest (``_manifests/<window>.json``) it checks: the detached signature is
ours (the pinned fingerprint); the manifest names the window its key says; every listed object
exists with the listed size and SHA-256; each file decrypts with your key, is signed by us, and its
plain text has the listed SHA-256, size and row count. Then: no object under the prefix that no
manifest lists, and no fork in the chain of manifests (two manifests naming the same predecessor).
Files are streamed (downloaded to a private temporary directory, decrypted through a pipe), never
held whole in memory. Exit status 0 when everything checks out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFESTS = "_manifests/"
CHUNK = 1 << 20


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    windows: int = 0
    files: int = 0
    rows: int = 0

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"FAIL {message}")


class Gpg:
    """A throwaway GnuPG home with our public key and your secret key."""

    def __init__(self, our_key: Path, secret_key: Path, passphrase: str | None) -> None:
        self.home = tempfile.TemporaryDirectory(prefix="verify-deliveries-gnupg-")
        os.chmod(self.home.name, 0o700)
        self.passphrase = passphrase or ""
        for key in (our_key, secret_key):
            imported = self.run("--import", str(key))
            if imported.returncode != 0:
                raise SystemExit(f"gpg cannot import {key}: {imported.stderr.decode(errors='replace')}")

    def command(self, *args: str) -> list[str]:
        base = ["gpg", "--homedir", self.home.name, "--batch", "--pinentry-mode", "loopback"]
        return [*base, "--passphrase", self.passphrase, "--trust-model", "always", *args]

    def run(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*args), input=data, capture_output=True, check=False)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", self.home.name, "--kill", "gpg-agent"], capture_output=True, check=False
        )
        self.home.cleanup()


def signed_by(status: str, fingerprint: str) -> bool:
    """gpg's status lines show a good signature whose key (or primary key) is ``fingerprint``."""
    lines = status.splitlines()
    good = any(line.startswith("[GNUPG:] GOODSIG") for line in lines)
    valid = any(line.startswith("[GNUPG:] VALIDSIG") and fingerprint in line.upper() for line in lines)
    return good and valid


class HashingReader(io.RawIOBase):
    """Reads a stream, hashing and counting the bytes that pass."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.sha256, self.size = stream, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        self.sha256.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)


def objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def window_id(start: str) -> str:
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%MZ")


def check_file(s3: Any, gpg: Gpg, args: argparse.Namespace, entry: dict[str, Any], work: Path) -> list[str]:
    """Problems with one listed file (none: it is exactly what the manifest says)."""
    key = args.prefix + entry["key"]
    cipher = work / "cipher"
    try:
        s3.download_file(args.bucket, key, str(cipher))
    except Exception as error:  # botocore's ClientError and transport errors alike
        return [f"{key}: listed but cannot be read ({error})"]
    digest, size = hashlib.sha256(), 0
    with cipher.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if (size, digest.hexdigest()) != (entry["cipher_bytes"], entry["cipher_sha256"]):
        return [
            f"{key}: {size} bytes, SHA-256 {digest.hexdigest()}; the manifest lists "
            f"{entry['cipher_bytes']} bytes, {entry['cipher_sha256']}"
        ]
    command = gpg.command("--status-fd", "2", "--decrypt", str(cipher))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        plain = HashingReader(process.stdout)
        text = io.TextIOWrapper(io.BufferedReader(plain, CHUNK), encoding="utf-8", newline="")
        rows = sum(1 for _ in csv.reader(text)) - 1  # the header is not a row
        status = process.stderr.read().decode(errors="replace") if process.stderr else ""
    problems = []
    if process.returncode != 0 or "[GNUPG:] DECRYPTION_OKAY" not in status:
        return [f"{key}: does not decrypt with your key"]
    if not signed_by(status, args.our_fingerprint):
        problems.append(f"{key}: not signed by our key {args.our_fingerprint}")
    if (plain.size, plain.sha256.hexdigest()) != (entry["plain_bytes"], entry["plain_sha256"]):
        problems.append(f"{key}: plain text differs from the manifest (size or SHA-256)")
    if rows != entry["rows"]:
        problems.append(f"{key}: {rows} rows, the manifest lists {entry['rows']}")
    return problems


def verify(s3: Any, gpg: Gpg, args: argparse.Namespace) -> Report:
    report = Report()
    listed: set[str] = set()
    manifest_keys = []
    everything = []
    for item in objects(s3, args.bucket, args.prefix):
        key = item["Key"]
        everything.append(key)
        if key.startswith(args.prefix + MANIFESTS) and key.endswith(".json"):
            manifest_keys.append(key)
    predecessors: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="verify-deliveries-") as private:
        for key in sorted(manifest_keys):
            body = s3.get_object(Bucket=args.bucket, Key=key)["Body"].read()
            listed.update({key, key + ".sig"})
            try:
                signature = s3.get_object(Bucket=args.bucket, Key=key + ".sig")["Body"].read()
            except Exception:
                report.fail(f"{key}: no signature ({key}.sig)")
                continue
            with tempfile.NamedTemporaryFile(dir=private, suffix=".sig") as sig:
                sig.write(signature)
                sig.flush()
                checked = gpg.run("--status-fd", "2", "--verify", sig.name, "-", data=body)
            if not signed_by(checked.stderr.decode(errors="replace"), args.our_fingerprint):
                report.fail(f"{key}: the signature is not a good one by our key {args.our_fingerprint}")
                continue
            manifest = json.loads(body)
            expected = f"{args.prefix}{MANIFESTS}{window_id(manifest['window_start'])}.json"
            if key != expected:
                report.fail(f"{key}: holds the manifest of window {manifest['window_start']} ({expected})")
                continue
            if manifest.get("previous"):
                predecessors[manifest["previous"]["sha256"]] += 1
            report.windows += 1
            problems = []
            for entry in manifest["files"]:
                listed.add(args.prefix + entry["key"])
                problems += check_file(s3, gpg, args, entry, Path(private))
                report.files += 1
                report.rows += entry["rows"]
            for problem in problems:
                report.fail(problem)
            state = "OK  " if not problems else "FAIL"
            print(f"{state} window {manifest['window_start']}: {len(manifest['files'])} files")
    for key in sorted(set(everything) - listed):
        report.fail(f"{key}: no manifest lists this object")
    for previous, count in predecessors.items():
        if count > 1:
            report.fail(f"chain: {count} manifests name the same predecessor {previous[:16]}… (a fork)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="the folder we deliver to, ending in '/'")
    parser.add_argument("--our-key", type=Path, required=True, help="our signing public key (armored)")
    parser.add_argument("--our-fingerprint", required=True, help="its fingerprint, as onboarding gave it")
    parser.add_argument("--secret-key", type=Path, required=True, help="your OpenPGP secret key")
    parser.add_argument("--passphrase-env", help="the environment variable holding its passphrase")
    parser.add_argument("--endpoint-url", help="an S3-compatible endpoint instead of AWS")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    args.our_fingerprint = args.our_fingerprint.replace(" ", "").upper()
    import boto3  # here, so --help works without it

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=args.region)
    passphrase = os.environ.get(args.passphrase_env) if args.passphrase_env else None
    gpg = Gpg(args.our_key, args.secret_key, passphrase)
    try:
        report = verify(s3, gpg, args)
    finally:
        gpg.close()
    verdict = "all verified" if not report.failures else f"{len(report.failures)} problems"
    print(
        f"s3://{args.bucket}/{args.prefix}: {report.windows} windows, {report.files} files, "
        f"{report.rows:,} rows: {verdict}"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
