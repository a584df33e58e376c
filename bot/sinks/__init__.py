"""Secret sinks: where a key's credentials are delivered for the service that uses them.

A sink receives a ``DeliveredCredentials`` (the API key with its HMAC secret or private key,
and the delivery's version) and the destination to write them to, and confirms what it wrote,
or raises ``SinkError`` with a reason safe to show and log (never the credentials). Writing
the same delivery twice is harmless: the file sink writes the same bytes again, the AWS sink
passes the delivery's id as Secrets Manager's idempotency token, so a retry after a lost
answer creates no second version.

Destinations are named one-to-one (``unique_name``): two keys never get one name, so one key
can never be made to overwrite what another key's service reads. Which key may write a
destination is the services' business (bot.services.custody.sink_destinations).

This package imports nothing else of the bot: the services build sinks from the settings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from hashlib import sha256
from typing import Protocol

CREDENTIALS_FORMAT = "apikey-bot/credentials@1"


class SinkKind(StrEnum):
    FILE = "file"
    AWS_SECRETS_MANAGER = "aws"


class SinkFailure(StrEnum):
    UNREACHABLE = "unreachable"  # the directory is missing, the service does not answer
    DENIED = "denied"  # no permission to write there
    FAILED = "failed"  # anything else: a partial write, a refused value


class SinkError(Exception):
    """A delivery that did not happen, with a reason that never holds the credentials."""

    def __init__(self, failure: SinkFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass(frozen=True)
class DeliveredCredentials:
    """What a sink writes. ``version`` and ``updated_at`` belong to the delivery, not to the
    attempt, so a retried write carries exactly the same content."""

    label: str
    account: str
    key_type: str  # "HMAC", "ED25519" or "RSA"
    api_key: str
    secret: str  # the HMAC secret, or the PEM private key of an Ed25519 / RSA key
    version: int
    updated_at: datetime

    def __repr__(self) -> str:  # never the credentials, whatever prints this object
        return f"DeliveredCredentials(label={self.label!r}, version={self.version})"

    def document(self) -> bytes:
        """The JSON document a sink stores (README: *Delivering credentials*)."""
        body: dict[str, object] = {
            "format": CREDENTIALS_FORMAT,
            "label": self.label,
            "account": self.account,
            "key_type": self.key_type,
            "api_key": self.api_key,
        }
        if self.key_type == "HMAC":
            body["secret"] = self.secret
        else:
            body["private_key_pem"] = self.secret
        body["version"] = self.version
        body["updated_at"] = self.updated_at.isoformat().replace("+00:00", "Z")
        return (json.dumps(body, indent=2) + "\n").encode()


@dataclass(frozen=True)
class Written:
    """A sink's confirmation: where, and which version it holds now."""

    destination: str
    version_id: str


class SecretSink(Protocol):
    kind: SinkKind

    def write(
        self, credentials: DeliveredCredentials, *, destination: str, idempotency_token: str
    ) -> Written:
        """Write ``credentials`` to ``destination`` (a name this sink gave); the caller holds
        the destination's lock, so no other write of it runs meanwhile."""
        ...

    def leftovers(self) -> list[str]:
        """The destinations where an interrupted write left something behind."""
        ...

    def clean(self, destination: str) -> int:
        """Remove what interrupted writes left at ``destination`` (never the credentials
        delivered there); how many things were removed. The caller holds its lock."""
        ...


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# What ``unique_name`` appends to a name it had to change: 32 hex digits of SHA-256.
_DIGEST_SUFFIX = re.compile(r"-[0-9a-fA-F]{32}$")
DIGEST_LENGTH = 32


def unique_name(text: str, *, unsafe: re.Pattern[str] = _UNSAFE) -> str:
    """A name for ``text`` that no other text gets.

    ``text`` itself when it is plain: no character matches ``unsafe``, it does not start with
    a dot and does not end like a changed name. Otherwise every unsafe character becomes
    ``_`` (a leading dot too) and ``-`` plus 32 hex digits of the SHA-256 of ``text`` are
    appended. Plain names never end like that (checked regardless of case, for file systems
    that ignore it), so a plain name never equals a changed one; two changed names are equal
    only if SHA-256 collides. Plain labels keep the names earlier versions gave them."""
    if not unsafe.search(text) and not text.startswith(".") and not _DIGEST_SUFFIX.search(text):
        return text
    cleaned = unsafe.sub("_", text)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    return f"{cleaned}-{sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]}"


def earlier_name(text: str, *, unsafe: re.Pattern[str] = _UNSAFE) -> str:
    """The name versions before issue 21 gave ``text``: changed only where a character was
    replaced, with 8 hex digits of a hash, so a plain label could equal another label's
    changed name. Kept to find the destinations keys were already delivered to."""
    cleaned = unsafe.sub("_", text)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned != text:
        cleaned += "-" + sha256(text.encode()).hexdigest()[:8]
    return cleaned


def content_digest(document: bytes) -> str:
    return sha256(document).hexdigest()[:16]
