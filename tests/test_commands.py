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
        ("compromised trading-bot since 1000d", Compromised("trading-bot", since_days=1000)),
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
        ("compromised bot since 0d", "between 1 and 3650 days"),
        ("compromised bot since 99999d", "between 1 and 3650 days"),
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
