"""bot.commands: the /apikey parser (pure)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import (
    AuditCheckpoint,
    AuditTrail,
    Compromised,
    Help,
    ListIncidents,
    ListKeys,
    Register,
    Remove,
    Rotate,
    RotationOverview,
    SecretInText,
    SetRotationPolicy,
    Status,
    StatusTarget,
    TargetKind,
    label_problem,
    parse_command,
)
from bot.secret_shapes import SecretKind

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFIs\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("help", Help()),
        ("  HELP ", Help()),
        ("register", Register()),
        ("status", Status(StatusTarget(TargetKind.ALL))),
        ("status all", Status(StatusTarget(TargetKind.ALL))),
        ("status mine", Status(StatusTarget(TargetKind.MINE))),
        ("status trading-bot", Status(StatusTarget(TargetKind.LABEL, "trading-bot"))),
        ('status "market dashboard"', Status(StatusTarget(TargetKind.LABEL, "market dashboard"))),
        ("status <@U012AB3CD|alice>", Status(StatusTarget(TargetKind.USER, "U012AB3CD"))),
        ("status <@U012AB3CD>", Status(StatusTarget(TargetKind.USER, "U012AB3CD"))),
        ("list", ListKeys()),
        ("remove trading-bot", Remove("trading-bot")),
        ("remove  spaced label ", Remove("spaced label")),
        ("compromised trading-bot", Compromised("trading-bot")),
        ("compromised trading-bot since 14d", Compromised("trading-bot", since_days=14)),
        ("compromised trading-bot since 630d", Compromised("trading-bot", since_days=630)),
        (
            "compromised trading-bot since 2026-11-01",
            Compromised("trading-bot", since=date(2026, 11, 1)),
        ),
        ("incidents", ListIncidents()),
        ("rotation", RotationOverview()),
        ("rotate trading-bot", Rotate("trading-bot")),
        ("rotate trading-bot every 30d", SetRotationPolicy("trading-bot", 30)),
        ("audit", AuditTrail()),
        ("audit verify", AuditTrail(verify=True)),
        ("audit Checkpoint", AuditCheckpoint()),
        ("audit checkpoint-bot --days 7", AuditTrail(label="checkpoint-bot", days=7)),
    ],
)
def test_known_subcommands(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("frobnicate", "don't know the subcommand"),
        ("remove", "Which key?"),
        ("list everything", "takes no arguments"),
        ("register mykey", "private form"),
        ("status @alice", "mention list"),
        ("compromised", "Which key?"),
        ("compromised bot since tuesday", "date or a number of days"),
        ("compromised bot since 0d", "between 1 and 630 days"),
        ("compromised bot since 99999d", "at most 630 days back"),
        ("rotate bot every month", "period in days"),
    ],
)
def test_malformed_input_answers_with_help_and_a_reason(text, fragment):
    parsed = parse_command(text)
    assert isinstance(parsed, Help)
    assert fragment in parsed.reason


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"register {API_KEY}", SecretKind.KEY_OR_SECRET),
        (API_KEY, SecretKind.KEY_OR_SECRET),
        (f"status {API_KEY.lower()}", SecretKind.KEY_OR_SECRET),
        (PEM, SecretKind.PRIVATE_KEY),
        ("remove " + "A" * 120, SecretKind.PRIVATE_KEY),
    ],
)
def test_secret_shaped_text_is_refused_and_not_kept(text, kind):
    parsed = parse_command(text)
    assert parsed == SecretInText(kind)
    assert all(API_KEY not in str(v) for v in dataclasses.asdict(parsed).values())


def test_a_long_word_that_is_not_64_characters_is_not_a_secret():
    assert parse_command("status " + "a" * 63) == Status(StatusTarget(TargetKind.LABEL, "a" * 63))


@pytest.mark.parametrize(
    ("label", "ok"),
    [
        ("trading-bot", True),
        ("Market dashboard (prod)", True),
        ("x" * 80, True),
        ("x" * 81, False),
        ("", False),
        (" padded", False),
        ("zero\u200bwidth", False),
        ("rtl\u202eoverride", False),
        ("<!channel>", False),
        ("@here", False),
        ("all", False),
        ("Robert'); DROP TABLE api_keys;--", True),
        (API_KEY, False),
    ],
)
def test_label_rules(label, ok):
    assert (label_problem(label) is None) is ok


@given(st.text(max_size=300))
def test_parser_never_raises_and_never_returns_a_secret(text):
    parsed = parse_command(text)
    if API_KEY in text:
        assert isinstance(parsed, SecretInText)


@given(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=60))
def test_any_plain_label_round_trips_through_remove(label):
    parsed = parse_command(f"remove {label}")
    if isinstance(parsed, Remove):
        assert parsed.label == label


def test_entities_slack_puts_in_command_text_are_decoded_before_labels_are_matched():
    # Slack sends "R&D <test>" typed in a command as "R&amp;D &lt;test&gt;".
    assert parse_command("remove R&amp;D &lt;test&gt;") == parse_command("remove R&D <test>")
    assert parse_command("status &lt;@U0ALICE&gt;") == parse_command("status <@U0ALICE>")


def test_deliver_without_a_place_asks_where():
    from bot.commands import Deliver

    assert isinstance(parse_command("deliver bot to"), Help)
    assert parse_command("deliver bot to aws") == Deliver("bot", "aws")
    assert parse_command("deliver bot") == Deliver("bot")


def test_every_subcommand_the_parser_returns_has_a_handler():
    """Slash-command dispatch is a table: a new subcommand without a handler fails here, not
    with a KeyError in front of a user."""
    import typing

    from bot.commands import Command
    from bot.listeners.commands import SUBCOMMANDS

    assert set(typing.get_args(Command)) == set(SUBCOMMANDS)


# --- mistakes get one clear answer ----------------------------------------------------------

PERIOD_MESSAGE = (
    "Write the rotation period in days, from 1 to 3650, with its unit `d`, e.g. "
    "`/apikey rotate trading-bot every 90d`."
)


@pytest.mark.parametrize(
    "text",
    [
        "rotate bot every 0d",
        "rotate bot every -5d",
        "rotate bot every 100000d",
        "rotate bot every 3651d",
        "rotate bot every 30",
        "rotate bot every 1w",
        "rotate bot every month",
        "rotate bot every",
    ],
)
def test_any_rotation_period_out_of_range_or_without_its_unit_gets_one_message(text):
    assert parse_command(text) == Help(PERIOD_MESSAGE)


@pytest.mark.parametrize(
    ("text", "days"),
    [("rotate bot every 1d", 1), ("rotate bot every 3650 days", 3650), ("rotate bot every 7 d", 7)],
)
def test_periods_in_range_with_their_unit_are_accepted(text, days):
    assert parse_command(text) == SetRotationPolicy("bot", days)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("stauts", "/apikey status"),
        ("stauts mine", "/apikey status mine"),
        ("rotaet trading-bot", "/apikey rotate trading-bot"),
        ("incidnets", "/apikey incidents"),
        ("compromized bot", "/apikey compromised bot"),
        ("lst", "/apikey list"),
    ],
)
def test_a_mistyped_subcommand_gets_did_you_mean_not_the_whole_help(text, suggestion):
    parsed = parse_command(text)
    assert isinstance(parsed, Help) and not parsed.show_all
    assert f"Did you mean `{suggestion}`?" in parsed.reason


def test_a_word_like_no_subcommand_still_gets_the_whole_help():
    parsed = parse_command("frobnicate")
    assert isinstance(parsed, Help) and parsed.show_all and "Did you mean" not in parsed.reason


TODAY = date(2026, 12, 7)


def test_since_older_than_the_review_can_read_is_refused_with_the_window_named():
    from bot.commands import REVIEW_WINDOW_DAYS

    oldest = date.fromordinal(TODAY.toordinal() - REVIEW_WINDOW_DAYS)
    assert parse_command(f"compromised bot since {oldest}", today=TODAY) == Compromised(
        "bot", since=oldest
    )
    for too_old in ("2020-01-01", str(date.fromordinal(oldest.toordinal() - 1))):
        parsed = parse_command(f"compromised bot since {too_old}", today=TODAY)
        assert isinstance(parsed, Help), too_old
        assert f"at most {REVIEW_WINDOW_DAYS} days back" in parsed.reason
        assert "90 days" in parsed.reason and "withdrawal history" in parsed.reason
        assert str(oldest) in parsed.reason  # the oldest date it can start from
    days = parse_command(f"compromised bot since {REVIEW_WINDOW_DAYS + 1}d", today=TODAY)
    assert isinstance(days, Help) and f"at most {REVIEW_WINDOW_DAYS} days back" in days.reason


def test_the_review_window_is_what_one_second_of_withdrawal_history_reads_cover():
    """The window named to users follows from the gateway's own figures: each request reads
    90 days (Binance's span limit), the bot plans SAFETY of the account's 10 requests a second
    (https://developers.binance.com/docs/wallet/capital/withdraw-history), and the review also
    reads the 90 days before ``since`` to tell new withdrawal addresses from known ones."""
    from bot.binance.account import HISTORY_SPAN
    from bot.binance.budget import LIMITS, SAFETY, LimitKind
    from bot.binance.transport import ENDPOINTS, WITHDRAW_HISTORY_PATH
    from bot.commands import REVIEW_WINDOW_DAYS
    from bot.services.response.incident_activity import KNOWN_ADDRESS_LOOKBACK

    kind, weight = ENDPOINTS[WITHDRAW_HISTORY_PATH]
    assert kind is LimitKind.SAPI_UID_PER_SECOND
    requests_a_second = int(LIMITS[kind] * SAFETY[kind]) // weight
    covered = requests_a_second * HISTORY_SPAN.days - KNOWN_ADDRESS_LOOKBACK.days
    assert covered == REVIEW_WINDOW_DAYS
