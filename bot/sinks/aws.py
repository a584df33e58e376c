"""The AWS Secrets Manager sink: one secret per key, a new version on every delivery.

The secret's name comes from a pattern (``SINK_AWS_SECRET_NAME``, default
``apikey-bot/{account}/{label}``), each field in a ``/``-separated segment of its own and
named by ``unique_name`` (a ``/`` inside an account or a label is replaced, and the name marked
with a hash), so a name splits back into one account and one label: two keys never share a
secret. The first delivery creates the secret (CreateSecret); every
later one adds a version (PutSecretValue), which Secrets Manager labels AWSCURRENT and moves
AWSPREVIOUS to the one before: a service reading the secret by name always gets the newest.

Both calls pass the delivery's id as ``ClientRequestToken``. AWS's PutSecretValue reference:
"If a version with this value already exists and that version's SecretString and SecretBinary
values are the same as those in the request, then the request is ignored", so a retry after a
lost answer creates no second version; and the document is the same on every attempt (its
version and time belong to the delivery). The bot needs secretsmanager:CreateSecret and
secretsmanager:PutSecretValue on the names the pattern makes, nothing else. AWS credentials
are boto3's own (environment, profile, instance or task role).
"""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError  # light: no client machinery

from bot.sinks import (
    DeliveredCredentials,
    SinkError,
    SinkFailure,
    SinkKind,
    Written,
    earlier_name,
    unique_name,
)

DEFAULT_NAME_PATTERN = "apikey-bot/{account}/{label}"
PATTERN_FIELDS = ("account", "label")
# Secret names: letters, digits and /_+=.@- (AWS CreateSecret reference: "The secret name
# can contain ASCII letters, numbers, and the following characters: /_+=.@-"), at most 512.
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9/_+=.@-]")
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# Inside a field, "/" separates nothing: it is replaced like any character a name cannot hold.
_UNSAFE_IN_FIELD = re.compile(r"[^A-Za-z0-9_+=.@-]")
_DENIED = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "AccessDenied",
}


def check_name_pattern(pattern: str) -> str:
    """``pattern`` if it names each key's secret uniquely; else ValueError saying why."""
    try:
        parts = list(Formatter().parse(pattern))
        sample = pattern.format(account="a", label="l")
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            "may only use the fields {account} and {label}, e.g. apikey-bot/{account}/{label}"
        ) from None
    fields_in_segment = 0
    for literal, field, spec, conversion in parts:
        if "/" in literal:
            fields_in_segment = 0
        if field is None:
            continue
        if field not in PATTERN_FIELDS or spec or conversion:
            raise ValueError(
                "may only use the fields {account} and {label}, as they are (no format), e.g. "
                "apikey-bot/{account}/{label}"
            )
        fields_in_segment += 1
        if fields_in_segment > 1:
            # "{account}-{label}": account "a-b" with label "c" and account "a" with label
            # "b-c" would share one secret.
            raise ValueError(
                "must put {account} and {label} between different slashes, e.g. "
                "apikey-bot/{account}/{label}: otherwise two keys could share one secret"
            )
    if "{label}" not in pattern:
        raise ValueError("must contain {label}: one secret per key")
    if _UNSAFE_IN_NAME.search(sample) or len(sample) > 400:
        raise ValueError("may only hold letters, digits and /_+=.@- besides its fields")
    return pattern


def secret_name(pattern: str, *, label: str, account: str) -> str:
    """The secret that holds a key's credentials: ``pattern`` with its fields filled in, each
    named one-to-one (``unique_name``, with "/" replaced inside a field)."""
    return pattern.format(
        account=unique_name(account, unsafe=_UNSAFE_IN_FIELD),
        label=unique_name(label, unsafe=_UNSAFE_IN_FIELD),
    )


def earlier_secret_name(pattern: str, *, label: str, account: str) -> str:
    """The name versions before issue 21 gave the secret, a "/" in a field left as it was
    (kept by keys delivered there)."""
    return pattern.format(
        account=earlier_name(account, unsafe=_UNSAFE_IN_NAME),
        label=earlier_name(label, unsafe=_UNSAFE_IN_NAME),
    )


class AwsSecretsManagerSink:
    kind = SinkKind.AWS_SECRETS_MANAGER

    def __init__(
        self,
        *,
        name_pattern: str = DEFAULT_NAME_PATTERN,
        region: str | None,
        endpoint_url: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        self.name_pattern = check_name_pattern(name_pattern)
        self._kms_key_id = kms_key_id
        # Imported here, not at start-up: boto3 costs ~20 MB of memory, and only a team that
        # delivers to Secrets Manager needs it.
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=3,
            read_timeout=10,
        )
        self._client = boto3.client(
            "secretsmanager", region_name=region, endpoint_url=endpoint_url, config=config
        )

    def destination(self, *, label: str, account: str) -> str:
        return secret_name(self.name_pattern, label=label, account=account)

    def leftovers(self) -> list[str]:
        return []  # a version is written whole or not at all: nothing is left behind

    def clean(self, destination: str) -> int:
        return 0

    def write(
        self, credentials: DeliveredCredentials, *, destination: str, idempotency_token: str
    ) -> Written:
        name = destination
        if not _SECRET_NAME.fullmatch(name):
            raise SinkError(SinkFailure.FAILED, "that is not a secret name AWS accepts")
        document = credentials.document().decode()
        try:
            version_id = self._put(name, document, idempotency_token)
        except ClientError as exc:
            raise _sink_error(exc, name) from None
        except BotoCoreError as exc:
            raise SinkError(
                SinkFailure.UNREACHABLE,
                f"AWS Secrets Manager did not answer ({type(exc).__name__})",
            ) from None
        return Written(destination=name, version_id=version_id)

    def _put(self, name: str, document: str, token: str) -> str:
        try:
            answer: Any = self._client.put_secret_value(
                SecretId=name, SecretString=document, ClientRequestToken=token
            )
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            return self._create(name, document, token)
        if "AWSCURRENT" not in answer.get("VersionStages", ["AWSCURRENT"]):
            raise SinkError(SinkFailure.FAILED, f"the new version of {name} is not the current one")
        return str(answer["VersionId"])

    def _create(self, name: str, document: str, token: str) -> str:
        extra: dict[str, Any] = {"KmsKeyId": self._kms_key_id} if self._kms_key_id else {}
        try:
            answer: Any = self._client.create_secret(
                Name=name,
                SecretString=document,
                ClientRequestToken=token,
                Description="Binance API key credentials, delivered by apikey-bot",
                **extra,
            )
        except ClientError as exc:
            if _code(exc) != "ResourceExistsException":
                raise
            # Created in the meantime (another replica, or our own lost answer): add a version.
            answer = self._client.put_secret_value(
                SecretId=name, SecretString=document, ClientRequestToken=token
            )
        return str(answer["VersionId"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _sink_error(exc: ClientError, name: str) -> SinkError:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _DENIED or status == 403:
        return SinkError(SinkFailure.DENIED, f"AWS refused to write {name} ({code or status})")
    if status >= 500 or code in {"InternalServiceError", "ServiceUnavailable", "Throttling"}:
        return SinkError(SinkFailure.UNREACHABLE, f"AWS Secrets Manager failed ({code or status})")
    return SinkError(SinkFailure.FAILED, f"AWS refused the new version of {name} ({code})")
