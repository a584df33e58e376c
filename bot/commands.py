"""Parsing of ``/apikey`` text into typed commands (pure; no Slack, no database).

The parser never returns or keeps text that looks like a secret: such input becomes
``SecretInText`` carrying only what kind of secret it looked like.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from bot.secret_shapes import SecretKind, find_secret_shape

MAX_LABEL_LENGTH = 80
COMMAND = "/apikey"

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

_EVERY = re.compile(r"^(?P<label>.+?)\s+every\s+(?P<period>.+)$", re.IGNORECASE)
_PERIOD = re.compile(r"(?P<n>\d{1,5})\s*(?:d|days?)", re.IGNORECASE)  # the unit is required
MAX_PERIOD_DAYS = 3650
# One answer for every period that is not 1-3650 days with its unit (0d, -5d, 100000d, 30, 1w).
PERIOD_HELP = (
    f"Write the rotation period in days, from 1 to {MAX_PERIOD_DAYS}, with its unit `d`, e.g. "
    "`/apikey rotate trading-bot every 90d`."
)


def _slack_unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` typed in a command as entities (mentions and links it
    made itself stay ``<…>``); labels are stored as typed, so decode before matching them."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_command(text: str, *, today: date | None = None) -> Command:
    """``today`` (UTC; default: now) bounds how far back an activity review may start."""
    text = _slack_unescape(text or "").strip()
    secret = find_secret_shape(text)
    if secret is not None:
        return SecretInText(secret)
    verb, _, rest = text.partition(" ")
    verb = verb.lower()
    if verb == "":
        return Help()
    if ALIASES.get(verb, verb) == "compromised" and today is not None:
        return _compromised(_unquote(rest.strip()), today)
    parse = _PARSERS.get(ALIASES.get(verb, verb))
    if parse is None:
        return _unknown(verb, rest.strip())
    return parse(_unquote(rest.strip()))


# How alike a typo and a subcommand must be (difflib's ratio): "stauts" is 0.83 like "status",
# "hepl" 0.75 like "help"; "frobnicate" only 0.62 like "rotate", which is no suggestion.
DID_YOU_MEAN_CUTOFF = 0.7


def _unknown(verb: str, rest: str) -> Help:
    """A subcommand close to a known one (by edit distance) gets "did you mean", with the rest
    of what was typed; anything else gets the whole help."""
    unknown = f"I don't know the subcommand “{_shorten(verb)}”."
    close = difflib.get_close_matches(verb, [*_PARSERS, *ALIASES], n=1, cutoff=DID_YOU_MEAN_CUTOFF)
    if not close:
        return Help(unknown, show_all=True)
    suggestion = " ".join([COMMAND, ALIASES.get(close[0], close[0]), _shorten(rest, 60)])
    return Help(f"{unknown} Did you mean `{suggestion.strip()}`?")


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


# How far back the incident's activity review can start. Binance serves the withdrawal history
# at most 90 days per request ("time between startTime and endTime must be less than 90 days")
# and 10 requests a second per account (Weight(UID) 18,000 of 180,000 a second;
# https://developers.binance.com/docs/wallet/capital/withdraw-history). The bot plans 80% of
# that (8 requests: bot.binance.budget.SAFETY) and the review also reads the 90 days before
# ``since`` to tell new withdrawal addresses from known ones: one second's reads cover
# 8 x 90 - 90 = 630 days. A review within that window reads its withdrawals in about one
# second's allowance of the account; a longer one would queue behind the limit (a second for
# every two years) and, past the gateway's wait, stop half-way with "used up". Binance keeps
# older history: the message says to review it in Binance. tests/test_commands.py derives
# the figure from the gateway's constants.
REVIEW_WINDOW_DAYS = 630
MAX_REVIEW_DAYS = REVIEW_WINDOW_DAYS
_WINDOW_REASON = (
    "Binance serves the withdrawal history 90 days per request and 10 requests a second, "
    "and the review reads it in one go"
)


def _too_far_back(today: date) -> Help:
    oldest = today - timedelta(days=REVIEW_WINDOW_DAYS)
    return Help(
        f"The activity review can start at most {REVIEW_WINDOW_DAYS} days back, on "
        f"{oldest.isoformat()} at the earliest ({_WINDOW_REASON}). Nothing was marked. "
        "Review older activity in Binance yourself, and start the review within the window, "
        "e.g. `/apikey compromised trading-bot since 14d`."
    )


def _compromised(rest: str, today: date) -> Command:
    if not rest:
        return Help("Which key? Try `/apikey compromised <label>`.")
    since = _SINCE.match(rest)
    if not since:
        return Compromised(rest)
    label, when = _unquote(since.group("label").strip()), since.group("when").lower()
    days = re.fullmatch(r"(\d+)d(?:ays?)?", when)
    if days:
        if int(days.group(1)) > REVIEW_WINDOW_DAYS:
            return _too_far_back(today)
        if int(days.group(1)) < 1:
            return Help(
                f"Review between 1 and {REVIEW_WINDOW_DAYS} days back, e.g. "
                "`/apikey compromised trading-bot since 14d`."
            )
        return Compromised(label, since_days=int(days.group(1)))
    try:
        start = date.fromisoformat(when)
    except ValueError:
        return Help(
            "Give the start of the activity review as a date or a number of days, e.g. "
            "`/apikey compromised trading-bot since 2026-11-01` or `… since 14d`."
        )
    if start < today - timedelta(days=REVIEW_WINDOW_DAYS):
        return _too_far_back(today)
    return Compromised(label, since=start)


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
        period = _PERIOD.fullmatch(every.group("period").strip())
        if period is None or not 1 <= int(period.group("n")) <= MAX_PERIOD_DAYS:
            return Help(PERIOD_HELP)
        return SetRotationPolicy(_unquote(every.group("label").strip()), int(period.group("n")))
    if re.search(r"\bevery\b", rest, re.IGNORECASE):
        return Help(PERIOD_HELP)
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
    "compromised": lambda rest: _compromised(rest, datetime.now(UTC).date()),
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
