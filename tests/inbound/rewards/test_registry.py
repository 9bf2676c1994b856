"""The FI registry refuses what would let an unverified file in or mis-reward one, naming file,
FI or program and field."""

from pathlib import Path

import pytest
import yaml

from s3_sharing.inbound.rewards.registry import read_fi_registry
from s3_sharing.platform.yaml_registry import RegistryError

from .conftest import registry_document, rules


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "rewards.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_pinned_fingerprint_must_be_the_key_given(tmp_path, fi_keys):
    document = registry_document(fi_keys)
    document["fis"][0]["signing_keys"][0]["key"] = {"file": str(fi_keys["stranger"].public)}
    with pytest.raises(
        RegistryError, match=r"FI 'banco_andes': signing_keys.0.fingerprint: the key given is"
    ):
        read_fi_registry(write(tmp_path, document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["fis"][0]["mapping"].pop("amount"), "FI 'banco_andes': .*required field amount"),
        (lambda d: d["fis"][0].update(program="nope"), "'nope' is not a program"),
        (lambda d: d["fis"][0].update(prefix="../x/"), "FI 'banco_andes': prefix"),
        (lambda d: d["fis"][0].update(timezone="Mars/Olympus"), "FI 'banco_andes': timezone"),
        (lambda d: d["fis"][0].update(signing_keys=[]), "FI 'banco_andes': signing_keys"),
        (lambda d: d["fis"][0]["types"].update(X="lottery"), "FI 'banco_andes': types.X"),
        (
            lambda d: d["programs"][0].update(versions=[rules(2), rules(1)]),
            "versions: list them in order",
        ),
        (
            lambda d: d["programs"][0]["versions"][0].update(excluded_types=["refund"]),
            "take points back; they cannot be excluded",
        ),
        (lambda d: d["programs"][0]["versions"][0].update(multipliers={"54": 2}), "4-digit merchant"),
        (
            lambda d: d["programs"][0]["versions"][0].update(effective_from="2026-01-01T00:00:00"),
            "UTC offset",
        ),
        (lambda d: d["fis"].append(dict(d["fis"][0])), "FI id 'banco_andes' appears more than once"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(tmp_path, fi_keys, change, message):
    document = registry_document(fi_keys)
    change(document)
    with pytest.raises(RegistryError, match=message):
        read_fi_registry(write(tmp_path, document))


def test_the_rules_in_effect_are_those_of_the_landing_moment(tmp_path, fi_keys):
    from datetime import UTC, datetime

    document = registry_document(fi_keys, [rules(), rules(2, effective_from="2026-06-01T00:00:00Z")])
    program = read_fi_registry(write(tmp_path, document)).program("debit_rewards")
    assert program.rules_at(datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)).version == 1
    assert program.rules_at(datetime(2026, 6, 1, tzinfo=UTC)).version == 2
    with pytest.raises(ValueError, match="no rules version in effect at 2025-12-31"):
        program.rules_at(datetime(2025, 12, 31, tzinfo=UTC))
