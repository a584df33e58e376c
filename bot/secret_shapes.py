"""The shapes of secrets: what a Binance API key, an HMAC secret and a private key look like in
text. One place for them, used by command parsing (a secret typed into a command is refused),
leak detection (a secret posted in a channel is flagged), log redaction (a secret never reaches
a log) and the checks of what a person pasted into the forms. Pure: nothing but ``re``."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "API_KEY",
    "BASE64_LINE",
    "BASE64_RUN",
    "KEY_IN_TEXT",
    "LONG_BASE64_RUN",
    "LONG_URL_ENCODED_BASE64_RUN",
    "NEAR_KEY_IN_TEXT",
    "PEM_ARMOUR",
    "PEM_BLOCK",
    "PEM_IN_TEXT",
    "PEM_PRIVATE_KEY",
    "SecretKind",
    "find_secret_shape",
    "looks_random",
    "secret_shaped_tokens",
]

_ALNUM = "A-Za-z0-9"
_BASE64 = "A-Za-z0-9+/"

# Binance API keys and HMAC secrets are 64 letters and digits.
API_KEY = re.compile(rf"^[{_ALNUM}]{{64}}$")  # a whole value
KEY_IN_TEXT = re.compile(rf"(?<![{_ALNUM}])[{_ALNUM}]{{64}}(?![{_ALNUM}])")  # inside text
# A near miss: a key pasted with a character or a few missing or added (60 to 70 characters).
# It must also look random (``looks_random``), so a long plain word or a hex digest that is not
# 64 characters long is not taken for a key.
NEAR_KEY_IN_TEXT = re.compile(rf"(?<![{_ALNUM}])[{_ALNUM}]{{60,70}}(?![{_ALNUM}])")

# PEM: a whole private key as the forms take it (one line or many) ...
PEM_PRIVATE_KEY = re.compile(
    rf"^-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s{_BASE64}=]+-----END (?:[A-Z]+ )?PRIVATE KEY-----$"
)
# ... any PEM block, its label and body (to rebuild canonical line breaks) ...
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
# ... a block in text, also cut short (to the end of the text) ...
PEM_IN_TEXT = re.compile(r"-----BEGIN.*?(?:-----END[^-\n]*-----|\Z)", re.DOTALL)
# ... and the armour whole or in fragments: "-----BEGIN", "-----END …", "PRIVATE KEY".
PEM_ARMOUR = re.compile(
    r"-{3,}\s*(?:BEGIN|END)\b|\b(?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY\b"
)

# Long unbroken base64 runs (a private key pasted without its PEM armour).
BASE64_RUN = re.compile(rf"[{_BASE64}]{{100,}}={{0,2}}")
# A single line of a PEM body is 64 base64 characters: a run of 60 or more that looks random.
BASE64_LINE = re.compile(rf"(?<![{_BASE64}])[{_BASE64}]{{60,}}={{0,2}}")
# For logs, more broadly: base64 or base64url runs of 80 or more (a private key's DER, a secret in
# another encoding), also URL-encoded (+ / = as %2B %2F %3D).
LONG_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{80,}={0,2}")
LONG_URL_ENCODED_BASE64_RUN = re.compile(r"(?:[A-Za-z0-9]|%2[BbFf]){80,}(?:%3[Dd]){0,2}")
# Links: a long path or id in a URL (a shared spreadsheet, say) is not a near miss of a key.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


class SecretKind(StrEnum):
    KEY_OR_SECRET = "an API key or secret"  # noqa: S105 - a description
    PRIVATE_KEY = "a private key"


def looks_random(token: str) -> bool:
    """Upper case, lower case and digits, as every Binance key has."""
    return (
        any(ch.isupper() for ch in token)
        and any(ch.islower() for ch in token)
        and any(ch.isdigit() for ch in token)
    )


def find_secret_shape(text: str) -> SecretKind | None:
    """What kind of secret ``text`` seems to contain, if any (near misses included)."""
    if PEM_ARMOUR.search(text) or BASE64_RUN.search(text):
        return SecretKind.PRIVATE_KEY
    if KEY_IN_TEXT.search(text):
        return SecretKind.KEY_OR_SECRET
    unlinked = _URL.sub(" ", text)
    if any("+" in t or "/" in t for t in BASE64_LINE.findall(unlinked) if looks_random(t)):
        return SecretKind.PRIVATE_KEY
    if any(looks_random(t) for t in NEAR_KEY_IN_TEXT.findall(unlinked)):
        return SecretKind.KEY_OR_SECRET
    return None


def secret_shaped_tokens(text: str) -> list[str]:
    """The key-shaped tokens in ``text`` (to fingerprint a leak; never to store or log).

    A near miss of 65 to 70 characters may be a key with something stuck to it: each of its
    64-character windows is offered too, so the leak can still be traced to its key."""
    tokens = KEY_IN_TEXT.findall(text)
    for near in NEAR_KEY_IN_TEXT.findall(text):
        if len(near) > 64 and looks_random(near):
            tokens.extend(near[i : i + 64] for i in range(len(near) - 63))
    return tokens
