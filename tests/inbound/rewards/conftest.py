"""FI transaction files for real: keys made by GnuPG, files sealed by GnuPG as an FI seals them,
the landing bucket on the local moto server (versioned, SSE-KMS, IAM enforced, each FI's upload
user with exactly its policy), and a fresh PostgreSQL database per test."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from s3_sharing.devtools import fi_files
from s3_sharing.devtools.keygen import KeyPair, generate_key_pair
from s3_sharing.devtools.local_endpoints import LocalEndpoints, local_stack
from s3_sharing.inbound.rewards.assets import build_processor
from s3_sharing.inbound.rewards.processor import Processor
from s3_sharing.inbound.rewards.registry import FiRegistry, read_fi_registry
from s3_sharing.outbound.registry import Registry
from s3_sharing.platform.postgres import Postgres
from s3_sharing.platform.resources import PlatformKeys, WorkDirectory
from s3_sharing.platform.storage import S3Buckets

from ...conftest import ARCHIVE

LANDING = "s3-sharing-landing"
FI = "banco_andes"


def rules(version: int = 1, **overrides: object) -> dict[str, object]:
    return {
        "version": version,
        "effective_from": "2026-01-01T00:00:00Z",
        "points_per_unit": "0.01",  # a point per 100 COP
        "multipliers": {"5411": 2},
        "excluded_types": ["cash_withdrawal", "fee"],
        "daily_cap": 1000,
        "rounding": "floor",
    } | overrides


def registry_document(fi_keys: dict[str, KeyPair], versions: list[dict[str, object]] | None = None) -> dict:
    return {
        "landing": {"bucket": LANDING, "region": "eu-west-1"},
        "programs": [{"id": "debit_rewards", "name": "Debit rewards", "versions": versions or [rules()]}],
        "fis": [
            {
                "id": FI,
                "name": "Banco de los Andes",
                "program": "debit_rewards",
                "prefix": f"{FI}/",
                "timezone": "America/Bogota",
                "signing_keys": [
                    {"fingerprint": fi_keys["fi"].fingerprint, "key": {"file": str(fi_keys["fi"].public)}}
                ],
                "mapping": dict(fi_files.MAPPING),
                "types": dict(fi_files.TYPES),
            }
        ],
    }


@pytest.fixture(scope="session")
def fi_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Our inbound key, the FI's signing key, a stranger's key, and the audit and signing keys."""
    directory = tmp_path_factory.mktemp("fi-keys")
    return {
        name: generate_key_pair(directory, name)
        for name in ("inbound", "fi", "stranger", "audit", "platform")
    }


@pytest.fixture
def fi_registry_file(tmp_path: Path, fi_keys: dict[str, KeyPair]) -> Path:
    path = tmp_path / "rewards.yaml"
    path.write_text(yaml.safe_dump(registry_document(fi_keys)))
    return path


@pytest.fixture
def fi_registry(fi_registry_file: Path) -> FiRegistry:
    return read_fi_registry(fi_registry_file)


@pytest.fixture
def landing(fi_registry: FiRegistry) -> Iterator[LocalEndpoints]:
    with local_stack(Registry(businesses=[]), ARCHIVE, fi_registry=fi_registry) as aws:
        yield aws


@dataclass
class Fi:
    """An FI dropping files into its folder, as its SFTP upload would."""

    aws: LocalEndpoints
    keys: dict[str, KeyPair]
    directory: Path

    def drop(self, name: str, rows: list[tuple], signer: str | None = "fi", header=fi_files.HEADER) -> str:
        plain = fi_files.write_csv(self.directory / f"{name}.csv", rows, header)
        cipher = self.directory / f"{name}.csv.pgp"
        secret = self.keys[signer].secret if signer else None
        fi_files.seal_as_fi(plain, cipher, self.keys["inbound"].public, secret)
        key = f"{FI}/{name}.csv.pgp"
        self.aws.fi_client(FI).upload_file(str(cipher), LANDING, key)
        return key


@pytest.fixture
def fi(landing: LocalEndpoints, fi_keys: dict[str, KeyPair], tmp_path: Path) -> Fi:
    directory = tmp_path / "fi"
    directory.mkdir()
    return Fi(landing, fi_keys, directory)


def platform_keys(keys: dict[str, KeyPair]) -> PlatformKeys:
    return PlatformKeys(
        signing_key_file=str(keys["platform"].secret),
        audit_key_file=str(keys["audit"].public),
        inbound_key_file=str(keys["inbound"].secret),
    )


def make_processor(
    registry: FiRegistry, postgres: Postgres, keys: dict[str, KeyPair], work: Path, run_id: str = "test"
) -> Processor:
    return build_processor(
        registry, S3Buckets(), postgres, platform_keys(keys), WorkDirectory(root=str(work)), None, run_id
    )


@pytest.fixture
def processor(fi_registry: FiRegistry, postgres: Postgres, fi_keys, tmp_path: Path, landing) -> Processor:
    return make_processor(fi_registry, postgres, fi_keys, tmp_path / "work")
