"""Parsing of ``/apikey`` text into typed commands (pure; no Slack, no database).

The parser never returns or keeps text that looks like a secret: such input becomes
``SecretInText`` carrying only what kind of secret it looked like.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from bot.secret_shapes import SecretKind, find_secret_shape

MAX_LABEL_LENGTH = 80

_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_RESERVED_LABELS = {"all", "mine", "help"}


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot name a key, or None when it can."""
    if not label:
        return "A label cannot be empty."
    if len(label) > MAX_LABEL_LENGTH:
        return f"A label can have at most {MAX_LABEL_LENGTH} characters."
    if label != label.strip():
        return "A label cannot start or end with a space."
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in label):
        return "A label cannot contain control, zero-width or text-direction characters."
    if label.startswith(("<", "@", "#")):
        return "A label cannot start with <, @ or #."
    if label.lower() in _RESERVED_LABELS:
        return f"“{label}” is reserved; please choose another label."
    if find_secret_shape(label):
        return "That label looks like an API key or secret; please choose a plain name."
    return None


class TargetKind(StrEnum):
    ALL = "all"
    MINE = "mine"
    LABEL = "label"
    USER = "user"
    KEY_ID = "key_id"  # never typed: one key chosen from a menu (its "Details")


@dataclass(frozen=True)
class StatusTarget:
    kind: TargetKind
    value: str | None = None


@dataclass(frozen=True)
class Help:
    reason: str | None = None  # set when the user typed something we did not understand
    # Every subcommand under the reason: for an unknown subcommand. A mistake in a known one
    # gets its reason (with an example) and a pointer to the full help, not the whole list.
    show_all: bool = False


@dataclass(frozen=True)
class Register:
    pass


@dataclass(frozen=True)
class Status:
    target: StatusTarget


@dataclass(frozen=True)
class ListKeys:
    pass


@dataclass(frozen=True)
class Remove:
    label: str


@dataclass(frozen=True)
class Rotate:
    label: str


@dataclass(frozen=True)
class SetRotationPolicy:
    label: str
    period_days: int


@dataclass(frozen=True)
class RotationOverview:
    pass


@dataclass(frozen=True)
class Deliver:
    """Where a key's credentials are delivered: ``sink`` "file", "aws" or "nowhere"; None
    asks where they go now."""

    label: str
    sink: str | None = None


@dataclass(frozen=True)
class Compromised:
    label: str
    since: date | None = None  # review account activity from this day (default: 7 days back)
    since_days: int | None = None


@dataclass(frozen=True)
class ListIncidents:
    pass


@dataclass(frozen=True)
class ListApprovals:
    pass


@dataclass(frozen=True)
class AuditTrail:
    label: str | None = None
    days: int = 30
    verify: bool = False


@dataclass(frozen=True)
class AuditCheckpoint:
    """Post the audit chain's head to the alert channel now (admins)."""


class EditField(StrEnum):
    OWNER = "owner"
    PURPOSE = "purpose"
    ACCOUNT = "account"


@dataclass(frozen=True)
class EditKey:
    """An admin changes a key's owner (a Slack user id), purpose or account alias."""

    label: str
    field: EditField
    value: str


@dataclass(frozen=True)
class Governor:
    """Admins: register the governor of a master account (``account``), or, without one, see
    the governors and the sub-accounts they manage."""

    account: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class SecretInText:
    kind: SecretKind


Command = (
    Help
    | Register
    | Status
    | ListKeys
    | Remove
    | Rotate
    | SetRotationPolicy
    | RotationOverview
    | Deliver
    | Compromised
    | ListIncidents
    | ListApprovals
    | AuditTrail
    | AuditCheckpoint
    | EditKey
    | Governor
    | SecretInText
)

_EVERY = re.compile(r"^(?P<label>.+?)\s+every\s+(?P<n>\d{1,5})\s*(?:d|days?)?$", re.IGNORECASE)


def _slack_unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` typed in a command as entities (mentions and links it
    made itself stay ``<…>``); labels are stored as typed, so decode before matching them."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_command(text: str) -> Command:
    text = _slack_unescape(text or "").strip()
    secret = find_secret_shape(text)
    if secret is not None:
        return SecretInText(secret)
    verb, _, rest = text.partition(" ")
    verb = verb.lower()
    if verb == "":
        return Help()
    parse = _PARSERS.get(ALIASES.get(verb, verb))
    if parse is None:
        return Help(f"I don't know the subcommand “{_shorten(verb)}”.", show_all=True)
    return parse(_unquote(rest.strip()))


def _help(rest: str) -> Command:
    return Help()


def _register(rest: str) -> Command:
    if rest:
        return Help(
            "`/apikey register` takes no arguments: the key goes into a private form, "
            "never into the command text."
        )
    return Register()


def _list(rest: str) -> Command:
    return ListKeys() if not rest else Help("`/apikey list` takes no arguments.")


def _remove(rest: str) -> Command:
    if not rest:
        return Help("Which key? Try `/apikey remove <label>`.")
    return Remove(rest)


def _rotation(rest: str) -> Command:
    return RotationOverview() if not rest else Help("`/apikey rotation` takes no arguments.")


def _incidents(rest: str) -> Command:
    return ListIncidents() if not rest else Help("`/apikey incidents` takes no arguments.")


def _approvals(rest: str) -> Command:
    return ListApprovals() if not rest else Help("`/apikey approvals` takes no arguments.")


_SINCE = re.compile(r"^(?P<label>.+?)\s+since\s+(?P<when>\S+)$", re.IGNORECASE)


MAX_REVIEW_DAYS = 3650


def _compromised(rest: str) -> Command:
    if not rest:
        return Help("Which key? Try `/apikey compromised <label>`.")
    since = _SINCE.match(rest)
    if not since:
        return Compromised(rest)
    label, when = _unquote(since.group("label").strip()), since.group("when").lower()
    days = re.fullmatch(r"(\d+)d(?:ays?)?", when)
    if days:
        if not 1 <= int(days.group(1)) <= MAX_REVIEW_DAYS:
            return Help(
                f"Review between 1 and {MAX_REVIEW_DAYS} days back, e.g. "
                "`/apikey compromised trading-bot since 14d`."
            )
        return Compromised(label, since_days=int(days.group(1)))
    try:
        return Compromised(label, since=date.fromisoformat(when))
    except ValueError:
        return Help(
            "Give the start of the activity review as a date or a number of days, e.g. "
            "`/apikey compromised trading-bot since 2026-11-01` or `… since 14d`."
        )


_DAYS = re.compile(r"(?:^|\s)--days\s+(\S+)\s*$")


def _audit(rest: str) -> Command:
    if rest.lower() == "verify":
        return AuditTrail(verify=True)
    if rest.lower() == "checkpoint":
        return AuditCheckpoint()
    days = 30
    found = _DAYS.search(rest)
    if found:
        if not found.group(1).isdigit() or not 1 <= int(found.group(1)) <= 3650:
            return Help("Write the period as a number of days, e.g. `/apikey audit --days 7`.")
        days = int(found.group(1))
        rest = rest[: found.start()].strip()
    elif "--days" in rest:
        return Help("Write the period as a number of days, e.g. `/apikey audit --days 7`.")
    return AuditTrail(label=_unquote(rest) or None, days=days)


_TO = re.compile(r"^(?P<label>.+?)\s+to\s+(?P<sink>\S+)$", re.IGNORECASE)


def _deliver(rest: str) -> Command:
    if not rest:
        return Help(
            "Which key? Try `/apikey deliver <label> to file`, `… to aws` or `… to nowhere`."
        )
    to = _TO.match(rest)
    if not to:
        if re.search(r"\sto$", rest, re.IGNORECASE):
            return Help(
                "Deliver where? Try `/apikey deliver <label> to file`, `… to aws` or `… to nowhere`."
            )
        return Deliver(rest)
    return Deliver(_unquote(to.group("label").strip()), to.group("sink").lower())


def _rotate(rest: str) -> Command:
    if not rest:
        return Help(
            "Which key? Try `/apikey rotate <label>` or `/apikey rotate <label> every 90d`."
        )
    every = _EVERY.match(rest)
    if every:
        return SetRotationPolicy(_unquote(every.group("label").strip()), int(every.group("n")))
    if re.search(r"\bevery\b", rest, re.IGNORECASE):
        return Help("Write the period in days, e.g. `/apikey rotate trading-bot every 90d`.")
    return Rotate(rest)


def _status(rest: str) -> Command:
    if not rest or rest.lower() == "all":
        return Status(StatusTarget(TargetKind.ALL))
    if rest.lower() == "mine":
        return Status(StatusTarget(TargetKind.MINE))
    mention = _USER_MENTION.match(rest)
    if mention:
        return Status(StatusTarget(TargetKind.USER, mention.group(1)))
    if rest.startswith("@"):
        return Help(
            "Please pick the person from Slack's mention list so the name becomes a real "
            "mention, e.g. `/apikey status @alice`."
        )
    return Status(StatusTarget(TargetKind.LABEL, rest))


_EDIT = re.compile(r"^(?P<label>.+?)\s+(?P<field>owner|purpose|account)\s+(?P<value>.+)$", re.I)
EDIT_EXAMPLE = (
    "`/apikey edit trading-bot owner @alice`, `… purpose read_only` (or trading, withdrawals) "
    "or `… account main`"
)
_PURPOSE_WORDS = {
    "read_only": "read_only",
    "read-only": "read_only",
    "readonly": "read_only",
    "read": "read_only",
    "trading": "trading",
    "trade": "trading",
    "withdrawals": "withdrawals",
    "withdraw": "withdrawals",
}


def _edit(rest: str) -> Command:
    found = _EDIT.match(rest)
    if not found:
        return Help(f"What should change? Try {EDIT_EXAMPLE}.")
    label = _unquote(found.group("label").strip())
    field, value = EditField(found.group("field").lower()), _unquote(found.group("value"))
    if field == EditField.OWNER:
        mention = _USER_MENTION.match(value)
        if not mention:
            return Help(
                "Please pick the new owner from Slack's mention list so the name becomes a real "
                "mention, e.g. `/apikey edit trading-bot owner @alice`."
            )
        value = mention.group(1)
    elif field == EditField.PURPOSE:
        purpose = _PURPOSE_WORDS.get(value.lower())
        if purpose is None:
            return Help(
                f"“{_shorten(value)}” is not a purpose: choose read_only, trading or "
                "withdrawals, e.g. `/apikey edit trading-bot purpose read_only`."
            )
        value = purpose
    return EditKey(label, field, value)


GOVERNOR_EXAMPLE = "`/apikey governor main-account`"


def _governor(rest: str) -> Command:
    words = rest.split()
    if not words:
        return Governor()
    if len(words) > 2:
        return Help(
            "Name the master account, and optionally the governor key's label, e.g. "
            f"{GOVERNOR_EXAMPLE} or `/apikey governor main-account main-governor`."
        )
    account = _unquote(words[0])
    label = _unquote(words[1]) if len(words) == 2 else None
    if label is not None and (why := label_problem(label)) is not None:
        return Help(why)
    return Governor(account=account, label=label)


# Every subcommand the parser knows, by its canonical name (help and the manifest's usage hint
# list each of them; a test keeps them in step).
_PARSERS: dict[str, Callable[[str], Command]] = {
    "help": _help,
    "register": _register,
    "status": _status,
    "list": _list,
    "edit": _edit,
    "remove": _remove,
    "rotate": _rotate,
    "rotation": _rotation,
    "deliver": _deliver,
    "compromised": _compromised,
    "incidents": _incidents,
    "audit": _audit,
    "governor": _governor,
    "approvals": _approvals,
}
SUBCOMMANDS: tuple[str, ...] = tuple(_PARSERS)
ALIASES = {"?": "help", "ls": "list", "rm": "remove", "delete": "remove", "leaked": "compromised"}


def _unquote(text: str) -> str:
    for left, right in (('"', '"'), ("'", "'"), ("“", "”"), ("`", "`")):
        if len(text) >= 2 and text[0] == left and text[-1] == right:
            return text[1:-1].strip()
    return text


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
