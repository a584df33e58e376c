"""Text helpers shared by the screens: escaping, mentions, ages, tiers, icons, truncation.

Anything a person typed (labels, account aliases) goes through ``escape`` before it reaches
mrkdwn, so it can never ping ``<!channel>``, make a link or reverse the text around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from bot.binance.permissions import KeyPermissions, Tier
from bot.model.findings import PERMISSION_NAMES, Severity, new_permission_flags, permission_name

# Slack's documented limits (Block Kit reference).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000  # per element; context text is rendered small, keep it short anyway
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_FALLBACK_TEXT = 3000
# Undocumented: chat.postMessage answers `msg_blocks_too_long` once the blocks' text adds up
# to roughly 13,000 characters (slackapi/bolt-js#2509). Stay well below it.
MAX_MESSAGE_TEXT = 12_000
# A label or alias is at most 80 characters, but escaping can make it up to five times longer.
MAX_NAME_TEXT = 200

SEVERITY_ICON = {
    Severity.CRITICAL: "🔴",
    Severity.WARNING: "🟠",
    Severity.UNKNOWN: "⚪",
    Severity.INFO: "🔵",
    Severity.OK: "🟢",
}

_TIER_NAMES = {Tier.NONE: "None", Tier.READ: "Read", Tier.TRADE: "Trade", Tier.WITHDRAW: "Withdraw"}

# Control characters and the bidirectional overrides / isolates / marks that can make text
# display differently from what it is ("right-to-left override" spoofing).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_INLINE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
_UNSAFE_BLOCK = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}]")  # keeps \t and \n
_REPLACEMENT = "\ufffd"
# Mentions a service may put in its own messages ("keys of <@U123>"); nothing else survives.
_MENTION_TOKEN = re.compile(r"(<@[UW][A-Z0-9]{2,}>|<#C[A-Z0-9]{2,}>)")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# What a service quotes from a person: from the first opening to the last closing quote.
_QUOTED = re.compile("“.*”", re.DOTALL)


def _escape_entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape(text: str) -> str:
    """Something a person typed, made inert for mrkdwn, on one line.

    &, < and > become entities (no mentions, no links); control and text-direction
    characters become "\ufffd" so they show instead of acting.
    """
    return _escape_entities(_UNSAFE_INLINE.sub(_REPLACEMENT, text))


def safe_mrkdwn(text: str) -> str:
    """Text written by the bot that may quote user input: escaped, except plain user and
    channel mentions the bot itself wrote (``<@U123>``, ``<#C123>``). Keeps line breaks.

    The services quote whatever a person typed in “…” (a label, an unknown subcommand), so
    everything from the first “ to the last ” is escaped whole: a label such as
    ``cc <@U123>`` is shown as typed, never as a mention."""
    text = _UNSAFE_BLOCK.sub(_REPLACEMENT, text)
    quoted = _QUOTED.search(text)
    if quoted is None:
        return _keep_mentions(text)
    return (
        _keep_mentions(text[: quoted.start()])
        + _escape_entities(quoted.group(0))
        + _keep_mentions(text[quoted.end() :])
    )


def _keep_mentions(text: str) -> str:
    parts = _MENTION_TOKEN.split(text)
    return "".join(part if i % 2 else _escape_entities(part) for i, part in enumerate(parts))


def name(text: str, limit: int = MAX_NAME_TEXT) -> str:
    """A user-chosen name (label, alias) ready for mrkdwn: escaped and bounded."""
    return truncate(escape(text), limit)


def mention(user_id: str | None) -> str:
    if not user_id:
        return "_nobody_"
    if _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut.

    Never leaves half an entity (``&am``) or half a mention (``<@U12``) behind.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 5:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut.rstrip() + "…"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {word}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def age(created_at: datetime, now: datetime) -> str:
    """How old something is, roughly: "today", "3 days", "5 months", "2 years"."""
    days = (_aware(now) - _aware(created_at)).days
    if days < 1:
        return "today"
    if days < 60:
        return plural(days, "day")
    if days < 730:
        return plural(days // 30, "month")
    return plural(days // 365, "year")


def ago(created_at: datetime, now: datetime) -> str:
    """ "today" or "3 days ago"."""
    text = age(created_at, now)
    return text if text == "today" else f"{text} ago"


def day(moment: datetime) -> str:
    return f"{_aware(moment).astimezone(UTC):%Y-%m-%d}"


def minute(moment: datetime) -> str:
    return f"{_aware(moment).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def tier_name(tier: Tier | int | None) -> str:
    if tier is None:
        return "unknown"
    return _TIER_NAMES.get(Tier(tier), "unknown")


def tier_text(tier: Tier | int | None, new_on: Iterable[str] = ()) -> str:
    """ "Trade tier", with the switched-on permissions the bot does not know counted and named
    (they may allow more than the tier says)."""
    return f"{tier_name(tier)} tier{new_permissions_note(new_on)}"


def last_known_tier(tier: Tier | int | None, new_on: Iterable[str], *, checked: bool) -> str:
    """A key's tier as last seen ("Trade tier"), or why none is known: never checked, or
    checked without an answer (e.g. Binance rejected the key)."""
    if tier is not None:
        return tier_text(tier, new_on)
    return "unknown tier" if checked else "not checked yet"


def new_permissions_note(new_on: Iterable[str]) -> str:
    """ " + 1 unknown permission (Copy trading)", or "" when there is none."""
    names = [permission_name(n) for n in new_on]
    if not names:
        return ""
    count = plural(len(names), "unknown permission")
    return f" + {count} ({escape(truncate(', '.join(names), 200))})"


def severity_icon(severity: Severity | int) -> str:
    return SEVERITY_ICON.get(Severity(severity), SEVERITY_ICON[Severity.UNKNOWN])


SEVERITY_WORDS = {
    Severity.OK: "fine",
    Severity.INFO: "a note",
    Severity.UNKNOWN: "unknown",
    Severity.WARNING: "warning",
    Severity.CRITICAL: "critical",
}


def severity_word(severity: Severity | int) -> str:
    """Said beside the colour: severity is never told by colour alone."""
    return f"_{SEVERITY_WORDS[Severity(severity)]}_"


_CLAUSE_END = re.compile(r"(?<=[^\d\s])[.:](?=\s)")
_SENTENCE_END = re.compile(r"(?<=[^\d\s])[.](?=\s)")


def headline(text: str, limit: int = 120, *, sentence: bool = False) -> str:
    """The first clause of a finding ("Withdrawals are enabled" of "Withdrawals are enabled:
    a leak of this key can move funds off Binance."), or its first sentence, for a one-line
    summary; bounded."""
    end = _SENTENCE_END if sentence else _CLAUSE_END
    first = end.split(text.strip(), maxsplit=1)[0].rstrip(".")
    return truncate(first, limit)


def flag_mark(value: object) -> str:
    """✅ on, ❌ off, ❔ unknown (absent, None, or anything that is not a boolean)."""
    if value is True:
        return "✅"
    if value is False:
        return "❌"
    return "❔"


def permission_marks(permissions: Mapping[str, object] | None) -> str:
    """The permissions the key has (not the ten it lacks), then any Binance did not report;
    ``None`` (no answer about the key) is all unknown, and the key's findings say why."""
    if permissions is None:
        return "❔ Permissions not known: see why below."
    observed = KeyPermissions.from_dict(permissions)
    granted = [label for flag, label in PERMISSION_NAMES.items() if observed.flag(flag) is True]
    # Permissions Binance added that the bot does not know: shown by name, marked as new.
    granted += [
        f"{escape(permission_name(flag))} (unknown to the bot)"
        for flag in new_permission_flags(permissions)
        if observed.flag(flag) is True
    ]
    text = f"{flag_mark(True)} " + " · ".join(granted) if granted else "No permission at all."
    unreported = [label for flag, label in PERMISSION_NAMES.items() if observed.flag(flag) is None]
    if unreported:
        text += f" · {flag_mark(None)} not reported: " + ", ".join(unreported)
    return text


def ip_whitelist_answer(permissions: Mapping[str, object] | None) -> str:
    """Whether the key has an IP whitelist: "yes", "*no*" or "unknown" (Binance never says
    which addresses are on it)."""
    value = None if permissions is None else permissions.get("ipRestrict")
    answers: dict[object, str] = {True: "yes", False: "*no*"}
    return answers.get(value, "unknown")


def ip_whitelist(permissions: Mapping[str, object] | None) -> str:
    answer = ip_whitelist_answer(permissions)
    icon = {"yes": "🔒", "*no*": "🌐"}.get(answer, "❔")
    return f"{icon} IP whitelist: {answer}"


def pack_lines(lines: Iterable[str], limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Lines joined into as few texts of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = truncate(line, limit)
        added = len(line) + (1 if current else 0)
        if current and size + added > limit:
            chunks.append("\n".join(current))
            current, size, added = [], 0, len(line)
        current.append(line)
        size += added
    if current:
        chunks.append("\n".join(current))
    return chunks


KEY_TYPE_NAMES = {"HMAC": "HMAC", "ED25519": "Ed25519", "RSA": "RSA"}


def key_type_name(key_type: str) -> str:
    """A key type as people write it (Binance: "Ed25519"), wherever it is shown."""
    return KEY_TYPE_NAMES.get(str(key_type), escape(str(key_type)))
