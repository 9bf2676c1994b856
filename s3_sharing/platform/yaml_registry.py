"""Reading a registry YAML file (businesses, import sources) with errors that name the file, the
entry and the field, e.g. ``sources.yaml: source 'acme': connection.bucket: ...``."""

from pathlib import Path
from typing import Any, TypeVar

import pysequoia
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

Model = TypeVar("Model", bound=BaseModel)


class RegistryError(ValueError):
    """A registry file cannot be used; each line names file, entry and field."""


class PublicKey(BaseModel):
    """An OpenPGP certificate: a file (relative to the registry) or inline armor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    armor: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "PublicKey":
        if (self.file is None) == (self.armor is None):
            raise ValueError("give exactly one of file or armor")
        return self


def read_public_key(key: PublicKey, registry: Path, where: str) -> str:
    """The armored certificate, checked to be one and to hold no secret key; ``where`` names the
    field in errors (``imports.yaml: source 'acme': public_key``)."""
    if key.file is not None:
        key_path = key.file if key.file.is_absolute() else registry.parent / key.file
        try:
            armor = key_path.read_text()
        except OSError:
            raise RegistryError(f"{where}.file: {key_path} cannot be read") from None
    else:
        armor = key.armor or ""
    try:
        cert = pysequoia.Cert.from_bytes(armor.encode())
    except Exception as error:  # pysequoia raises plain exceptions for unparsable input
        raise RegistryError(f"{where}: not an OpenPGP public key ({error})") from None
    if cert.has_secret_keys:
        raise RegistryError(f"{where}: contains a secret key; give the public key only")
    return armor


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader, refusing a key written twice in one mapping (the last would win).

    libyaml's parser when PyYAML has it (its wheels do): ten times faster than the pure-Python one,
    which took seconds for a registry of 1,000 businesses.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_registry_file(path: Path, model: type[Model], entries: str, noun: str, setting: str) -> Model:
    """``path`` validated as ``model``, whose list field ``entries`` holds one ``noun`` each."""
    try:
        text = path.read_text()
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found (set {setting})") from None
    except yaml.constructor.ConstructorError as error:
        where = _entry_at(text, entries, noun, error.problem_mark.line if error.problem_mark else -1)
        raise RegistryError(f"{path}: {where}{error.problem} ({error.problem_mark})") from None
    except yaml.YAMLError as error:
        raise RegistryError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: expected a mapping with a '{entries}' list")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(path, raw, e, entries, noun) for e in error.errors()]
        raise RegistryError("\n".join(lines)) from None


def _entry_at(text: str, entries: str, noun: str, line: int) -> str:
    """``"business 'acme': "`` for the entry of the ``entries`` list that spans ``line``, else ``""``."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only: no key is constructed twice
    listed = next(
        (value for key, value in getattr(root, "value", ()) if getattr(key, "value", None) == entries), None
    )
    for number, entry in enumerate(getattr(listed, "value", ())):
        if entry.start_mark.line <= line <= entry.end_mark.line:
            ids = [
                v.value for k, v in getattr(entry, "value", ()) if k.value == "id" and v.tag.endswith("str")
            ]
            return f"{noun} {ids[0]!r}: " if ids else f"{noun} #{number + 1}: "
    return ""


def _describe(path: Path, raw: dict[str, Any], error: Any, entries: str, noun: str) -> str:
    location = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if location[:1] == [entries] and len(location) >= 2 and isinstance(location[1], int):
        listed = raw.get(entries) or []
        entry = listed[location[1]] if location[1] < len(listed) else {}
        name = entry.get("id") if isinstance(entry, dict) else None
        who = f"{noun} {name!r}" if name else f"{noun} #{location[1] + 1}"
        field = ".".join(str(part) for part in location[2:]) or "(entry)"
        return f"{path}: {who}: {field}: {message}"
    if not location:  # a check across entries: its message names them
        return "\n".join(f"{path}: {line}" for line in message.splitlines())
    return f"{path}: {'.'.join(str(p) for p in location)}: {message}"
