"""Sealing of secrets: AES-256-GCM under a ring of master keys.

A sealed value is self-describing. Under a local master key (version 1)::

    version (1 byte) | key id length (1 byte) | key id (ascii) | nonce (12 bytes) | ciphertext+tag

Under an envelope key (version 2: a key service such as AWS KMS generates a fresh data key for
every seal and returns it wrapped under a key that never leaves the service)::

    version (1 byte) | key id length (1 byte) | key id (ascii)
      | wrapped data key length (2 bytes, big endian) | wrapped data key | nonce (12) | ciphertext+tag

Both kinds coexist in one ring, so rows move from one to the other by re-encryption.

Every seal uses a fresh random 96-bit nonce. The associated data binds the ciphertext to
its place (``context``, e.g. ``"api_key:<row id>:secret"``) and to the key id, so a
ciphertext copied into another row or relabelled with another key id fails to open. An
envelope key's service binds the wrapped data key to the same ``context`` too (KMS: the
encryption context), so the data key itself only unwraps for its own row.

Fingerprints are keyed HMAC-SHA256 digests under a key derived (HKDF) from a master key:
they let the bot find duplicates and recognise a leaked key without storing it in clear. An
envelope key has no key material here, so its fingerprint key is derived from a random
*fingerprint root* that storage.master_keys keeps sealed under that envelope key in the database and
hands to the ring at start-up (``KeyRing.with_fingerprint_root``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEAL_VERSION = 1  # sealed under a local master key
SEAL_VERSION_ENVELOPE = 2  # sealed under a data key wrapped by a key service (AWS KMS)
NONCE_BYTES = 12
MASTER_KEY_BYTES = 32
DATA_KEY_BYTES = 32
FINGERPRINT_ROOT_BYTES = 32
_TAG_BYTES = 16
_AAD_PREFIX = b"apikey-bot/seal/v1"
_AAD_PREFIX_ENVELOPE = b"apikey-bot/seal/v2"
_FINGERPRINT_INFO = b"apikey-bot/fingerprint/v1"
_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# An envelope key's id names its service, then the key there: "kms:alias/apikey-bot". The ':'
# keeps it apart from every local key id; 64 characters fit every key-id column.
_ENVELOPE_KEY_ID_PATTERN = re.compile(r"^[a-z]{2,8}:[A-Za-z0-9/_+=.@:~-]{1,60}$")


class CryptoError(Exception):
    """Base class: a sealed value or a key ring could not be used. Never carries a secret."""


class KeyRingError(CryptoError):
    """The configured master keys are missing, malformed or inconsistent."""


class UnknownKeyId(CryptoError):
    """A sealed value names a master key that is not configured."""


class OpenFailed(CryptoError):
    """Authentication failed: wrong key, tampered ciphertext, or a ciphertext from another row."""


class KeyServiceUnavailable(CryptoError):
    """The key service of an envelope key (AWS KMS) could not be reached or refused the call:
    no access, unknown or disabled key, no credentials. Nothing could be sealed or opened."""


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


class DataKeyService(Protocol):
    """Envelope encryption's key service (storage.kms: AWS KMS). Implementations never log a
    plaintext data key nor put one in an exception."""

    def generate_data_key(self, *, context: str) -> tuple[bytes, bytes]:
        """A fresh 256-bit data key bound to ``context``: (plaintext, wrapped)."""
        ...

    def unwrap_data_key(self, wrapped: bytes, *, context: str) -> bytes:
        """The plaintext of a wrapped data key. OpenFailed when it does not unwrap under
        ``context`` (wrong key, another row's key); KeyServiceUnavailable when the service
        cannot be used."""
        ...


@dataclass(frozen=True)
class EnvelopeKey:
    """A master key that lives in a key service: it only ever wraps and unwraps data keys."""

    key_id: str
    service: DataKeyService = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key_id) > 64 or not _ENVELOPE_KEY_ID_PATTERN.match(self.key_id):
            raise KeyRingError(
                f"envelope key id {self.key_id!r} is invalid: use 'service:name', at most 64 "
                "characters"
            )


RingKey = MasterKey | EnvelopeKey


@dataclass(frozen=True)
class SealedValue:
    key_id: str
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class _Parsed:
    version: int
    key_id: str
    wrapped_key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)


def _parse(blob: bytes) -> _Parsed:
    if len(blob) < 2 or blob[0] not in (SEAL_VERSION, SEAL_VERSION_ENVELOPE):
        raise OpenFailed("sealed value has an unknown format")
    offset = 2 + blob[1]
    key_id = blob[2:offset].decode("ascii", errors="replace")
    wrapped = b""
    if blob[0] == SEAL_VERSION_ENVELOPE:
        if len(blob) < offset + 2:
            raise OpenFailed("sealed value is truncated")
        wrapped_length = int.from_bytes(blob[offset : offset + 2], "big")
        wrapped = blob[offset + 2 : offset + 2 + wrapped_length]
        offset += 2 + wrapped_length
        if not wrapped_length:
            raise OpenFailed("sealed value has no wrapped data key")
    if len(blob) < offset + NONCE_BYTES + _TAG_BYTES:
        raise OpenFailed("sealed value is truncated")
    return _Parsed(
        version=blob[0],
        key_id=key_id,
        wrapped_key=wrapped,
        nonce=blob[offset : offset + NONCE_BYTES],
        ciphertext=blob[offset + NONCE_BYTES :],
    )


def parse_key_id(blob: bytes) -> str:
    """The id of the master key a sealed blob was made with (no decryption)."""
    return _parse(blob).key_id


def _aad(key_id: str, context: str, *, version: int = SEAL_VERSION) -> bytes:
    prefix = _AAD_PREFIX if version == SEAL_VERSION else _AAD_PREFIX_ENVELOPE
    return b"|".join((prefix, key_id.encode(), context.encode("utf-8")))


def _fingerprint_key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FINGERPRINT_INFO).derive(
        secret
    )


class KeyRing:
    """Several master keys, one of them active (the one new seals use).

    Local master keys (``MasterKey``) and at most a few envelope keys (``EnvelopeKey``, AWS KMS)
    may be mixed: each sealed value names the key that opens it.
    """

    def __init__(
        self,
        keys: Iterable[RingKey],
        active_id: str | None = None,
        *,
        fingerprint_roots: Mapping[str, bytes] | None = None,
    ) -> None:
        self._keys: dict[str, RingKey] = {}
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
        self._fingerprint_roots = {
            kid: root
            for kid, root in (fingerprint_roots or {}).items()
            if isinstance(self._keys.get(kid), EnvelopeKey)
        }
        if any(len(root) != FINGERPRINT_ROOT_BYTES for root in self._fingerprint_roots.values()):
            raise KeyRingError(f"a fingerprint root must be {FINGERPRINT_ROOT_BYTES} bytes")
        self._fingerprint_keys = {
            kid: _fingerprint_key(k.key)
            for kid, k in self._keys.items()
            if isinstance(k, MasterKey)
        }
        for kid, root in self._fingerprint_roots.items():
            self._fingerprint_keys[kid] = _fingerprint_key(root)

    def __repr__(self) -> str:
        return f"KeyRing(ids={self.key_ids!r}, active={self._active_id!r})"

    @classmethod
    def parse(cls, text: str, active_id: str | None = None) -> KeyRing:
        """Parse ``id:base64`` entries separated by commas or new lines (``#`` starts a comment).

        With no ``active_id`` the last entry is active, so appending a new key to the list and
        running the re-encryption is a complete rotation.
        """
        return cls(parse_master_keys(text), active_id)

    @property
    def active(self) -> RingKey:
        return self._keys[self._active_id]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def local_key_ids(self) -> tuple[str, ...]:
        """The ids of the local master keys (those MASTER_KEYS or the key file hold)."""
        return tuple(kid for kid, k in self._keys.items() if isinstance(k, MasterKey))

    @property
    def envelope_key_ids(self) -> tuple[str, ...]:
        """The ids of the keys held by a key service (AWS KMS)."""
        return tuple(kid for kid, k in self._keys.items() if isinstance(k, EnvelopeKey))

    def has(self, key_id: str) -> bool:
        return key_id in self._keys

    def is_envelope(self, key_id: str) -> bool:
        return isinstance(self._keys.get(key_id), EnvelopeKey)

    def export_line(self, key_id: str) -> str:
        """The ``id:base64`` line of one key, to write back into an owner-only key file."""
        key = self._keys[key_id]
        if not isinstance(key, MasterKey):
            raise KeyRingError(f"{key_id!r} lives in a key service: it has no key line")
        return key.encoded()

    def without(self, key_id: str) -> KeyRing:
        if key_id == self._active_id:
            raise KeyRingError(f"{key_id!r} is the active master key and cannot be retired")
        return KeyRing(
            [k for k in self._keys.values() if k.key_id != key_id],
            self._active_id,
            fingerprint_roots=self._fingerprint_roots,
        )

    def with_fingerprint_root(self, key_id: str, root: bytes) -> KeyRing:
        """The same ring, able to fingerprint under envelope key ``key_id`` too."""
        if not self.is_envelope(key_id):
            raise KeyRingError(f"{key_id!r} is not an envelope key: its fingerprints need no root")
        return KeyRing(
            self._keys.values(),
            self._active_id,
            fingerprint_roots={**self._fingerprint_roots, key_id: root},
        )

    def seal(
        self, plaintext: str | bytes, *, context: str, key_id: str | None = None
    ) -> SealedValue:
        """Seal under the active key (or ``key_id``), bound to ``context``."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        key = self._keys[key_id or self._active_id]
        nonce = os.urandom(NONCE_BYTES)
        kid = key.key_id.encode("ascii")
        if isinstance(key, MasterKey):
            ciphertext = AESGCM(key.key).encrypt(nonce, data, _aad(key.key_id, context))
            blob = bytes([SEAL_VERSION, len(kid)]) + kid + nonce + ciphertext
            return SealedValue(key_id=key.key_id, blob=blob)
        data_key, wrapped = key.service.generate_data_key(context=context)
        version = SEAL_VERSION_ENVELOPE
        ciphertext = AESGCM(data_key).encrypt(
            nonce, data, _aad(key.key_id, context, version=version)
        )
        blob = (
            bytes([version, len(kid)])
            + kid
            + len(wrapped).to_bytes(2, "big")
            + wrapped
            + nonce
            + ciphertext
        )
        return SealedValue(key_id=key.key_id, blob=blob)

    def open(self, blob: bytes, *, context: str) -> bytes:
        parsed = _parse(blob)
        key_id = parsed.key_id
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyId(f"sealed with master key {key_id!r}, which is not configured")
        failed = OpenFailed(
            f"sealed value for {context!r} does not open with master key {key_id!r}: "
            "wrong key, tampered data, or a value copied from another row"
        )
        if isinstance(key, MasterKey):
            if parsed.version != SEAL_VERSION:
                raise failed
            data_key = key.key
        else:
            if parsed.version != SEAL_VERSION_ENVELOPE:
                raise failed
            data_key = key.service.unwrap_data_key(parsed.wrapped_key, context=context)
        try:
            return AESGCM(data_key).decrypt(
                parsed.nonce, parsed.ciphertext, _aad(key_id, context, version=parsed.version)
            )
        except (InvalidTag, ValueError):
            raise failed from None

    def open_text(self, blob: bytes, *, context: str) -> str:
        return self.open(blob, context=context).decode("utf-8")

    def fingerprint(self, value: str, *, key_id: str | None = None) -> str:
        """Keyed fingerprint of a value under the active (or the given) master key."""
        kid = key_id or self._active_id
        fkey = self._fingerprint_keys.get(kid)
        if fkey is None:
            raise CryptoError(
                f"the fingerprint key of master key {kid!r} is not loaded: the key ring was "
                "not verified against the database (storage.master_keys.verify_key_ring)"
            )
        return hmac.new(fkey, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()

    def fingerprints(self, value: str) -> list[str]:
        """The value's fingerprint under every configured key (to search across a rotation)."""
        return [self.fingerprint(value, key_id=kid) for kid in self._keys]


def parse_master_keys(text: str) -> list[MasterKey]:
    """The local master keys of ``id:base64`` entries (commas or new lines, ``#`` comments)."""
    keys = []
    entries = (
        entry.strip() for line in text.splitlines() for entry in line.split("#", 1)[0].split(",")
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
    return keys


def mask_api_key(api_key: str) -> str:
    """A display form that identifies a key to its owner without revealing it."""
    key = api_key.strip()
    if len(key) <= 12:
        return "…" + key[-2:] if len(key) > 2 else "…"
    return f"{key[:4]}…{key[-4:]}"
