"""Slack's request signature, checked on the raw bytes before anything reads the body.

Slack signs every request it sends: ``X-Slack-Signature`` is ``v0=`` and the hex HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}`` under the app's signing secret, and a request
whose timestamp is more than five minutes from local time is to be refused as a possible replay
(https://api.slack.com/authentication/verifying-requests-from-slack). Unlike slack_sdk's
``SignatureVerifier.is_valid``, which raises ``ValueError`` on a timestamp that is not a number,
this answers every header it is given with a reason, and never looks inside the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re

MAX_CLOCK_SKEW_SECONDS = 5 * 60
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def signature_problem(
    *,
    signing_secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float,
) -> str | None:
    """Why this request is not from Slack (a short reason for the log), or None when it is."""
    if not timestamp or not signature:
        return "no signature headers"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "the timestamp is not a number"
    skew = int(now) - int(timestamp)
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        direction = "old" if skew > 0 else "in the future"
        return f"the timestamp is {abs(skew)} s {direction} (more than 5 minutes)"
    if not _SIGNATURE.fullmatch(signature):
        return "the signature is malformed"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "the signature does not match"
    return None
