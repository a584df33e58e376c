"""Values as people read them (pure): lists joined in words, people as mentions, channels as
links, times in one format with the zone, and booleans or Python values never shown raw."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from bot.blocks.text import escape, minute
from bot.model.findings import PURPOSE_NAMES
from bot.vocabulary import KeyPurpose

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_LONG_ID = re.compile(r"^[0-9a-f]{32}$")
_TIERS = {"NONE": "no", "READ": "Read", "TRADE": "Trade", "WITHDRAW": "Withdraw"}
_SINKS = {"file": "a file", "aws": "AWS Secrets Manager", "nowhere": "nowhere"}


def in_words(items: Iterable[str], *, empty: str = "nobody") -> str:
    """``["a"]`` -> a; ``["a", "b"]`` -> a and b; ``["a", "b", "c"]`` -> a, b and c."""
    shown = list(items)
    if not shown:
        return empty
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def person(value: object) -> str:
    text = str(value)
    if text in ("bot", "system"):
        return f"the {text}"
    return f"<@{text}>" if _SLACK_USER.match(text) else escape(text)


def quoted(value: object) -> str:
    return f"“{escape(str(value))}”"


def when(value: object) -> str:
    """An ISO timestamp stored in a detail, in the trail's one format."""
    try:
        return minute(datetime.fromisoformat(str(value)))
    except ValueError:
        return escape(str(value))


def tier(value: object) -> str:
    return f"{_TIERS.get(str(value).upper(), escape(str(value)).title())} tier"


def purpose(value: object) -> str:
    try:
        return PURPOSE_NAMES[KeyPurpose(str(value))]
    except ValueError:
        return escape(str(value))


def sink(value: object) -> str:
    return _SINKS.get(str(value), escape(str(value))) if value else "nowhere"


def humanised(value: object) -> str:
    """Any value, in words: what an unknown detail key is shown with."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return in_words((humanised(v) for v in value), empty="none")
    if isinstance(value, dict):
        return in_words(
            (f"{escape(str(k))} {humanised(v)}" for k, v in value.items()), empty="none"
        )
    text = str(value)
    if _SLACK_USER.match(text):
        return f"<@{text}>"
    if _SLACK_CHANNEL.match(text):
        return f"<#{text}>"
    if _LONG_ID.match(text):
        return text[:8]
    if re.match(r"^\d{4}-\d{2}-\d{2}T\d", text):
        return when(text)
    return escape(text)
