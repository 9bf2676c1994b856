"""The manifest of one delivered window: written and signed last, it makes the window visible.

It lists every file with row count, sizes and SHA-256 of plain and cipher text, says what the window
holds (``contents``: the changes received in it, or a snapshot as of its end), and carries the
SHA-256 of the business's previous manifest, so the archive holds a tamper-evident chain. A window
delivered again says so: ``restatement`` names the manifest it replaces and why.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

MANIFEST_VERSION = 2


@dataclass(frozen=True)
class FileEntry:
    key: str
    dataset: str
    rows: int
    plain_bytes: int
    plain_sha256: str
    cipher_bytes: int
    cipher_sha256: str
    cipher_md5: str
    user_id: str | None = None


@dataclass(frozen=True)
class ChainLink:
    """Where the previous manifest of the business is archived, and its hash."""

    key: str
    sha256: str


@dataclass(frozen=True)
class Restatement:
    """This manifest replaces one already published for the same window."""

    replaces: str
    """The archived copy of the replaced manifest (under ``_manifests/history/``)."""
    replaces_sha256: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    business_id: str
    cadence: str
    window_start: str
    window_end: str
    run_id: str
    created_at: str
    rows: dict[str, int]
    schema_versions: dict[str, int]
    files: list[FileEntry] = field(default_factory=list)
    previous: ChainLink | None = None
    contents: str = "changes"
    lookback_days: int | None = None
    restatement: Restatement | None = None
    manifest_version: int = MANIFEST_VERSION

    @property
    def empty(self) -> bool:
        return not any(self.rows.values())

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same manifest always hashes the same."""
        document = asdict(self) | {"empty": self.empty}
        return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        document: dict[str, Any] = json.loads(data)
        document.pop("empty", None)
        files = [FileEntry(**f) for f in document.pop("files")]
        previous = document.pop("previous")
        restatement = document.pop("restatement", None)
        return cls(
            **document,
            files=files,
            previous=ChainLink(**previous) if previous else None,
            restatement=Restatement(**restatement) if restatement else None,
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
