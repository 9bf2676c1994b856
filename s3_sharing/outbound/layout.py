"""Object names of a delivery, from a template such as ``{date}/{user_id}/{dataset}.csv.pgp``.

Placeholders: ``{dataset}``, ``{date}`` (YYYY-MM-DD of the window start), ``{hour}`` (HH),
``{window}`` (window start as YYYYMMDDTHHMMZ), ``{user_id}`` and ``{business_id}``. A template
with ``{user_id}`` writes one file per user and data set (a per-user folder tree); without it, one
file per data set and window. Templates that could give two windows or two data sets the same name
are refused.

A user id can be anything the warehouse holds, so it is encoded into one safe folder or file name
(``user_object_name``): percent-encoding of its UTF-8 bytes except letters, digits and ``_ . - @``
(``%`` and ``~`` included, a leading ``.`` too, so no name is ``.``, ``..`` or hidden); an id whose
encoding would pass 200 bytes, or the empty id, is named ``~`` + the SHA-256 (hex) of its UTF-8
bytes. Names are unique per id, ASCII, at most 200 bytes, and reversible (``user_id_of``; the
digest form through the manifest, which lists each file's user id).
"""

import hashlib
import re
import string
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from s3_sharing.platform.time import Cadence

PLACEHOLDERS = frozenset({"dataset", "date", "hour", "window", "user_id", "business_id"})
MANIFEST_FOLDER = "_manifests"
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9_.=/-]*$")


DEFAULT_TEMPLATES = {
    Cadence.HOURLY: "{date}/{hour}/{user_id}/{dataset}.csv.pgp",
    Cadence.DAILY: "{date}/{user_id}/{dataset}.csv.pgp",
    Cadence.WEEKLY: "{date}/{user_id}/{dataset}.csv.pgp",
}


class LayoutError(ValueError):
    """A template that cannot name objects safely and uniquely."""


def window_id(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class Layout:
    template: str

    @property
    def fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}

    @property
    def per_user(self) -> bool:
        return "user_id" in self.fields

    def validate(self, cadence: Cadence) -> "Layout":
        parsed = list(string.Formatter().parse(self.template))
        names = [name for _, name, spec, conv in parsed if name is not None]
        unknown = set(names) - PLACEHOLDERS
        if unknown:
            raise LayoutError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use {_known()}")
        if any(spec or conv for _, name, spec, conv in parsed if name is not None):
            raise LayoutError("placeholders take no format spec or conversion")
        literal = "".join(text for text, _, _, _ in parsed)
        if not _SAFE_LITERAL.match(literal):
            raise LayoutError("only letters, digits and _ . = / - may appear outside placeholders")
        segments = self.template.split("/")
        if self.template.startswith("/") or ".." in segments or "" in segments:
            raise LayoutError("must be a relative path without empty or '..' segments")
        if segments[0] == MANIFEST_FOLDER:
            raise LayoutError(f"{MANIFEST_FOLDER}/ is reserved for manifests")
        if "dataset" not in names:
            raise LayoutError("must contain {dataset}, or two data sets would write the same object")
        has_day = "window" in names or "date" in names
        has_hour = "window" in names or ("date" in names and "hour" in names)
        if not (has_hour if cadence is Cadence.HOURLY else has_day):
            need = "{date} and {hour}" if cadence is Cadence.HOURLY else "{date}"
            raise LayoutError(
                f"{cadence} deliveries need {need} (or {{window}}), or two windows would collide"
            )
        return self

    def key(self, *, dataset: str, start: datetime, business_id: str, user_id: str | None = None) -> str:
        """The object name (below the destination prefix) of one file."""
        if self.per_user and user_id is None:
            raise LayoutError("this layout writes one file per user: a user_id is needed")
        values = {"dataset": dataset, "business_id": business_id}
        for name, value in values.items():
            if name in self.fields and not _SAFE_VALUE.match(value):
                raise LayoutError(f"{name} {value!r} cannot be used in an object name")
        values["user_id"] = "" if user_id is None else user_object_name(user_id)
        utc = start.astimezone(UTC)
        return self.template.format(
            **values, date=utc.strftime("%Y-%m-%d"), hour=utc.strftime("%H"), window=window_id(utc)
        )

    def window_start(self, key: str) -> datetime | None:
        """The start of the window whose file ``key`` would be, read back from the name; None when
        this layout could not have written ``key``."""
        match = self._pattern.fullmatch(key)
        if match is None:
            return None
        found = match.groupdict()
        if found.get("window"):
            return datetime.strptime(found["window"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        day = datetime.strptime(found["date"], "%Y-%m-%d").replace(tzinfo=UTC)
        return day.replace(hour=int(found.get("hour") or 0))

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        pattern, seen = "", set()
        for text, name, _, _ in string.Formatter().parse(self.template):
            pattern += re.escape(text)
            if name is None:
                continue
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>{_VALUE_PATTERNS[name]})"
            seen.add(name)
        return re.compile(pattern)


MAX_USER_NAME = 200
"""Bytes: far below S3's 1,024-byte keys and the 255-byte file names of partners' disks."""
DIGEST_MARK = "~"


def user_object_name(user_id: str) -> str:
    """The safe, unique, reversible name of a user's folder or file (see the module docstring)."""
    raw = user_id.encode("utf-8", "surrogatepass")
    name = urllib.parse.quote(raw, safe="@").replace("~", "%7E")  # quote leaves ~ as it is
    if name.startswith("."):
        name = "%2E" + name[1:]
    if not name or len(name) > MAX_USER_NAME:
        return DIGEST_MARK + hashlib.sha256(raw).hexdigest()
    return name


def user_id_of(name: str) -> str | None:
    """The user id a name encodes; None for the digest form (the manifest has the id)."""
    if name.startswith(DIGEST_MARK):
        return None
    return urllib.parse.unquote_to_bytes(name).decode("utf-8", "surrogatepass")


_VALUE_PATTERNS = {
    "dataset": r"[A-Z_]+",
    "date": r"\d{4}-\d{2}-\d{2}",
    "hour": r"\d{2}",
    "window": r"\d{8}T\d{4}Z",
    "user_id": r"[^/]+",
    "business_id": r"[^/]+",
}


def manifest_key(start: datetime) -> str:
    return f"{MANIFEST_FOLDER}/{window_id(start)}.json"


def _known() -> str:
    return ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
