"""AWS KMS as the key service of envelope encryption (see storage.crypto, seal version 2).

Every seal asks KMS for a fresh data key (GenerateDataKey, KeySpec AES_256): the plaintext
copy encrypts the value locally with AES-256-GCM and is dropped; the encrypted copy (the
response's CiphertextBlob) is stored in the sealed blob. Opening sends that blob back to KMS
(Decrypt). Both calls carry the same EncryptionContext, built from the seal's ``context``
(``"api_key:<row id>:secret"``), so KMS only unwraps a row's data key for that row: AWS's
GenerateDataKey and Decrypt API references ask that the context be reconstructible from the
data, which it is, and it must match exactly or Decrypt fails with InvalidCiphertextException.
The context is not secret (CloudTrail logs it in clear): row ids only, never key material.

Decrypt always names the configured key (its KeyId parameter), as AWS recommends, so a
ciphertext made under another key is refused (IncorrectKeyException) instead of being opened
by whichever key it names. The bot calls GenerateDataKey and Decrypt and nothing else: its
IAM policy needs ``kms:GenerateDataKey`` and ``kms:Decrypt`` on the key, no more.

The ring id of a KMS key (stored in every row's ``seal_key_id`` and in the canary table, both
64 characters wide) is ``kms:`` followed by the key reference with its ARN prefix dropped:
``alias/apikey-bot`` -> ``kms:alias/apikey-bot``; ``arn:aws:kms:eu-west-1:111122223333:key/
1234abcd-...`` or ``1234abcd-...`` -> ``kms:1234abcd-...``. A reference too long for that
keeps its first 50 characters, then ``~`` and 8 hex digits of its SHA-256.

Unwrapped data keys are cached in memory for a few minutes (opening the same row again, as a
status check of every key does, costs no round trip); they are never logged nor put in an
exception.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict

from botocore.exceptions import BotoCoreError, ClientError  # light: no client machinery

from storage.crypto import (
    DATA_KEY_BYTES,
    EnvelopeKey,
    KeyRingError,
    KeyServiceUnavailable,
    OpenFailed,
)

KMS_ID_PREFIX = "kms:"
_MAX_RING_ID = 64
_ENCRYPTION_CONTEXT_KEY = "apikey-bot"  # the EncryptionContext's one pair: {this: context}
# Key id (UUID), multi-Region key id (mrk-...), alias name, or the ARN of a key or an alias.
_KEY_ID = r"(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_KEY_REF = re.compile(
    rf"^(?:{_KEY_ID}|{_ALIAS}"
    rf"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{{12}}:(?:key/{_KEY_ID}|{_ALIAS}))$"
)
# Errors meaning "this ciphertext does not open with this key under this context".
_WRONG_CIPHERTEXT = {"InvalidCiphertextException", "IncorrectKeyException"}


def check_key_ref(key_ref: str) -> str:
    """``key_ref`` if it is a KMS key id, key ARN, alias name or alias ARN; else KeyRingError."""
    ref = key_ref.strip()
    if not _KEY_REF.match(ref) or ref.startswith("alias/aws/"):
        raise KeyRingError(
            "must be a KMS key id, key ARN, alias name (alias/...) or alias ARN of a customer "
            "managed symmetric key"
        )
    return ref


def region_of(key_ref: str) -> str | None:
    """The region an ARN names (``None`` for a key id or alias name)."""
    if key_ref.startswith("arn:"):
        return key_ref.split(":")[3] or None
    return None


def kms_ring_id(key_ref: str) -> str:
    """The short id of a KMS key in the key ring and in the key-id columns (module docstring)."""
    ref = check_key_ref(key_ref)
    if ref.startswith("arn:"):
        ref = ref.split(":", 5)[5]  # "key/<id>" or "alias/<name>"
    ref = ref.removeprefix("key/")
    ring_id = KMS_ID_PREFIX + ref
    if len(ring_id) > _MAX_RING_ID:
        digest = hashlib.sha256(ref.encode()).hexdigest()[:8]
        ring_id = f"{KMS_ID_PREFIX}{ref[:50]}~{digest}"
    return ring_id


def _encryption_context(context: str) -> dict[str, str]:
    return {_ENCRYPTION_CONTEXT_KEY: context}


class KmsDataKeys:
    """storage.crypto.DataKeyService over one KMS key: GenerateDataKey and Decrypt."""

    def __init__(
        self,
        *,
        key_ref: str,
        region: str,
        endpoint_url: str | None = None,
        cache_seconds: float = 300.0,
        cache_size: int = 4096,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        self.key_ref = check_key_ref(key_ref)
        self.ring_id = kms_ring_id(key_ref)
        self._region = region
        self._endpoint_url = endpoint_url
        # Imported here, not at start-up: boto3 costs ~20 MB of memory, and only a KMS master
        # key needs it.
        import boto3
        from botocore.config import Config

        # Credentials come from boto3's usual chain (environment, shared profile, instance or
        # task role). Nothing is sent until the first seal or open.
        self._client = boto3.client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            # Fail within seconds when KMS cannot be reached: start-up stops, a request errors.
            # botocore's max_attempts counts the retries after the first attempt.
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": retries, "mode": "standard"},
            ),
        )
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KmsDataKeys({self.ring_id!r})"

    def for_probes(self, timeout: float) -> KmsDataKeys:
        """The same key for a readiness check: one attempt, ``timeout`` seconds to connect and
        as many to read, and no cache (a cached data key would hide a KMS that stopped
        answering)."""
        return KmsDataKeys(
            key_ref=self.key_ref,
            region=self._region,
            endpoint_url=self._endpoint_url,
            cache_seconds=0,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries=0,
        )

    def generate_data_key(self, *, context: str) -> tuple[bytes, bytes]:
        try:
            # GenerateDataKey: Plaintext (to use and drop) and CiphertextBlob (to store).
            response = self._client.generate_data_key(
                KeyId=self.key_ref,
                KeySpec="AES_256",
                EncryptionContext=_encryption_context(context),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("GenerateDataKey", exc) from None
        plaintext, wrapped = response["Plaintext"], response["CiphertextBlob"]
        if len(plaintext) != DATA_KEY_BYTES or not wrapped or len(wrapped) > 0xFFFF:
            raise KeyServiceUnavailable(
                f"AWS KMS GenerateDataKey returned an unusable data key for {self.ring_id}"
            )
        # Not cached: the first open of a new seal goes to KMS, which proves Decrypt works
        # (start-up relies on that before it stores a new canary).
        return plaintext, wrapped

    def unwrap_data_key(self, wrapped: bytes, *, context: str) -> bytes:
        cache_key = self._cache_key(wrapped, context)
        cached = self._recall(cache_key)
        if cached is not None:
            return cached
        try:
            # Decrypt, naming the key (KeyId) and the exact EncryptionContext of GenerateDataKey.
            response = self._client.decrypt(
                CiphertextBlob=wrapped,
                KeyId=self.key_ref,
                EncryptionContext=_encryption_context(context),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _WRONG_CIPHERTEXT:
                raise OpenFailed(
                    f"sealed value for {context!r} does not open with master key "
                    f"{self.ring_id!r}: wrong KMS key, tampered data, or a value copied from "
                    "another row"
                ) from None
            raise self._unavailable("Decrypt", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("Decrypt", exc) from None
        plaintext = response["Plaintext"]
        self._remember(cache_key, plaintext)
        return plaintext

    def _unavailable(self, operation: str, exc: ClientError | BotoCoreError) -> Exception:
        """One line naming the call, the key and the error code; never the request itself."""
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            reason = f"HTTP {status}" if not code or code.isdigit() else code
        else:
            reason = type(exc).__name__
        return KeyServiceUnavailable(f"AWS KMS {operation} failed for {self.key_ref} ({reason})")

    @staticmethod
    def _cache_key(wrapped: bytes, context: str) -> bytes:
        # The context is part of the key: a data key copied into another row is not found here
        # and goes to KMS, which refuses it.
        return hashlib.sha256(wrapped + b"\0" + context.encode("utf-8")).digest()

    def _recall(self, cache_key: bytes) -> bytes | None:
        with self._lock:
            entry = self._cache.get(cache_key)
            if entry is None:
                return None
            expires, plaintext = entry
            if expires < time.monotonic():
                del self._cache[cache_key]
                return None
            self._cache.move_to_end(cache_key)
            return plaintext

    def _remember(self, cache_key: bytes, plaintext: bytes) -> None:
        if self._cache_seconds <= 0:
            return
        with self._lock:
            self._cache[cache_key] = (time.monotonic() + self._cache_seconds, plaintext)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def kms_master_key(
    *,
    key_ref: str,
    region: str | None,
    endpoint_url: str | None = None,
    cache_seconds: float = 300.0,
) -> EnvelopeKey:
    """The ring member for a KMS key (``region`` may be omitted when ``key_ref`` is an ARN)."""
    ref = check_key_ref(key_ref)
    region = region or region_of(ref)
    if not region:
        raise KeyRingError("no AWS region: set AWS_REGION, or give the key as an ARN")
    service = KmsDataKeys(
        key_ref=ref, region=region, endpoint_url=endpoint_url, cache_seconds=cache_seconds
    )
    return EnvelopeKey(key_id=service.ring_id, service=service)
