"""Sealing of secrets: AES-256-GCM under a ring of master keys.

A sealed value is self-describing::

    version (1 byte) | key id length (1 byte) | key id (ascii) | nonce (12 bytes) | ciphertext+tag

Every seal uses a fresh random 96-bit nonce. The associated data binds the ciphertext to
its place (``context``, e.g. ``"api_key:<row id>:secret"``) and to the key id, so a
ciphertext copied into another row or relabelled with another key id fails to open.

Fingerprints are keyed HMAC-SHA256 digests under a key derived (HKDF) from a master key:
they let the bot find duplicates and recognise a leaked key without storing it in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEAL_VERSION = 1
NONCE_BYTES = 12
MASTER_KEY_BYTES = 32
_AAD_PREFIX = b"apikey-bot/seal/v1"
_FINGERPRINT_INFO = b"apikey-bot/fingerprint/v1"
_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CryptoError(Exception):
    """Base class: a sealed value or a key ring could not be used. Never carries a secret."""


class KeyRingError(CryptoError):
    """The configured master keys are missing, malformed or inconsistent."""


class UnknownKeyId(CryptoError):
    """A sealed value names a master key that is not configured."""


class OpenFailed(CryptoError):
    """Authentication failed: wrong key, tampered ciphertext, or a ciphertext from another row."""


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID_PATTERN.match(self.key_id):
            raise KeyRingError(
                f"master key id {self.key_id!r} is invalid: "
                "use 1-64 letters, digits, '.', '_' or '-'"
            )
        if len(self.key) != MASTER_KEY_BYTES:
            raise KeyRingError(
                f"master key {self.key_id!r} must be {MASTER_KEY_BYTES} bytes (base64 of 32 random "
                f"bytes), got {len(self.key)}"
            )

    def encoded(self) -> str:
        """The ``id:base64`` line used in MASTER_KEYS and in the key file."""
        return f"{self.key_id}:{base64.b64encode(self.key).decode()}"


def generate_master_key(key_id: str) -> MasterKey:
    return MasterKey(key_id=key_id, key=os.urandom(MASTER_KEY_BYTES))


@dataclass(frozen=True)
class SealedValue:
    key_id: str
    blob: bytes = field(repr=False)


def parse_key_id(blob: bytes) -> str:
    """The id of the master key a sealed blob was made with (no decryption)."""
    if len(blob) < 2 or blob[0] != SEAL_VERSION:
        raise OpenFailed("sealed value has an unknown format")
    length = blob[1]
    if len(blob) < 2 + length + NONCE_BYTES + 16:
        raise OpenFailed("sealed value is truncated")
    return blob[2 : 2 + length].decode("ascii", errors="replace")


def _aad(key_id: str, context: str) -> bytes:
    return b"|".join((_AAD_PREFIX, key_id.encode(), context.encode("utf-8")))


class KeyRing:
    """Several master keys, one of them active (the one new seals use)."""

    def __init__(self, keys: Iterable[MasterKey], active_id: str | None = None) -> None:
        self._keys: dict[str, MasterKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise KeyRingError(f"master key id {key.key_id!r} is listed twice")
            self._keys[key.key_id] = key
        if not self._keys:
            raise KeyRingError("no master key configured")
        if active_id is None:
            active_id = list(self._keys)[-1]
        if active_id not in self._keys:
            raise KeyRingError(
                f"the active master key {active_id!r} is not among the configured keys"
            )
        self._active_id = active_id
        self._fingerprint_keys = {
            kid: HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_FINGERPRINT_INFO
            ).derive(k.key)
            for kid, k in self._keys.items()
        }

    def __repr__(self) -> str:
        return f"KeyRing(ids={self.key_ids!r}, active={self._active_id!r})"

    @classmethod
    def parse(cls, text: str, active_id: str | None = None) -> KeyRing:
        """Parse ``id:base64`` entries separated by commas or new lines (``#`` starts a comment).

        With no ``active_id`` the last entry is active, so appending a new key to the list and
        running the re-encryption is a complete rotation.
        """
        keys = []
        entries = (
            entry.strip()
            for line in text.splitlines()
            for entry in line.split("#", 1)[0].split(",")
        )
        for entry in entries:
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyRingError("each master key must be written as id:base64")
            try:
                material = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"master key {key_id.strip()!r} is not valid base64") from None
            keys.append(MasterKey(key_id=key_id.strip(), key=material))
        return cls(keys, active_id)

    @property
    def active(self) -> MasterKey:
        return self._keys[self._active_id]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def has(self, key_id: str) -> bool:
        return key_id in self._keys

    def export_line(self, key_id: str) -> str:
        """The ``id:base64`` line of one key, to write back into an owner-only key file."""
        return self._keys[key_id].encoded()

    def without(self, key_id: str) -> KeyRing:
        if key_id == self._active_id:
            raise KeyRingError(f"{key_id!r} is the active master key and cannot be retired")
        return KeyRing([k for k in self._keys.values() if k.key_id != key_id], self._active_id)

    def seal(self, plaintext: str | bytes, *, context: str) -> SealedValue:
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        key = self.active
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(key.key).encrypt(nonce, data, _aad(key.key_id, context))
        kid = key.key_id.encode("ascii")
        blob = bytes([SEAL_VERSION, len(kid)]) + kid + nonce + ciphertext
        return SealedValue(key_id=key.key_id, blob=blob)

    def open(self, blob: bytes, *, context: str) -> bytes:
        key_id = parse_key_id(blob)
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyId(f"sealed with master key {key_id!r}, which is not configured")
        offset = 2 + len(key_id.encode("ascii"))
        nonce = blob[offset : offset + NONCE_BYTES]
        ciphertext = blob[offset + NONCE_BYTES :]
        try:
            return AESGCM(key.key).decrypt(nonce, ciphertext, _aad(key_id, context))
        except InvalidTag:
            raise OpenFailed(
                f"sealed value for {context!r} does not open with master key {key_id!r}: "
                "wrong key, tampered data, or a value copied from another row"
            ) from None

    def open_text(self, blob: bytes, *, context: str) -> str:
        return self.open(blob, context=context).decode("utf-8")

    def fingerprint(self, value: str, *, key_id: str | None = None) -> str:
        """Keyed fingerprint of a value under the active (or the given) master key."""
        fkey = self._fingerprint_keys[key_id or self._active_id]
        return hmac.new(fkey, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()

    def fingerprints(self, value: str) -> list[str]:
        """The value's fingerprint under every configured key (to search across a rotation)."""
        return [self.fingerprint(value, key_id=kid) for kid in self._keys]


def mask_api_key(api_key: str) -> str:
    """A display form that identifies a key to its owner without revealing it."""
    key = api_key.strip()
    if len(key) <= 12:
        return "…" + key[-2:] if len(key) > 2 else "…"
    return f"{key[:4]}…{key[-4:]}"
