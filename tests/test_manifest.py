"""manifest.yml stays in step with what the code handles."""

from __future__ import annotations

import html
from pathlib import Path

import yaml

from bot.blocks.help import help_message
from bot.commands import SUBCOMMANDS, Help, parse_command
from bot.ids import COMMAND, EVENTS
from bot.listeners import COMMAND_LISTENERS, EVENT_LISTENERS

MANIFEST = yaml.safe_load((Path(__file__).parent.parent / "manifest.yml").read_text())


def test_manifest_declares_exactly_the_command_the_code_handles():
    declared = {c["command"] for c in MANIFEST["features"]["slash_commands"]}
    assert declared == {COMMAND} == set(COMMAND_LISTENERS)


def test_manifest_subscribes_to_exactly_the_events_the_code_handles():
    declared = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    # Slack names channel messages "message.channels" / "message.groups"; Bolt sees "message".
    handled = {event.split(".")[0] for event in declared}
    assert handled == set(EVENTS) == set(EVENT_LISTENERS)


def test_manifest_asks_for_the_scopes_it_needs_and_no_more():
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "im:write",
        "users:read",
        "usergroups:read",  # ADMIN_USERGROUP_ID (optional)
        "channels:history",  # leak detection (optional)
        "groups:history",
    }


def test_manifest_turns_on_interactivity_the_home_tab_and_socket_mode():
    settings = MANIFEST["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is True
    urls = {
        settings["interactivity"]["request_url"],
        settings["event_subscriptions"]["request_url"],
    }
    urls |= {c["url"] for c in MANIFEST["features"]["slash_commands"]}
    assert {u.rsplit("/", 2)[-2:] == ["slack", "events"] for u in urls} == {True}


# What each subcommand takes besides a label: help and the usage hint must both show it.
OPTIONS = {
    "status": ["@user", "mine", "all"],
    "rotate": ["every"],
    "deliver": ["to file", "aws", "nowhere"],
    "compromised": ["since", "<date>", "d]"],
    "audit": ["--days", "verify", "checkpoint"],
    "edit": ["owner", "purpose", "account"],
}


def _usage_hint() -> str:
    (command,) = MANIFEST["features"]["slash_commands"]
    return command["usage_hint"]


def _help_usages() -> dict[str, str]:
    """The usage shown on each line of `/apikey help`, by subcommand."""
    text = "\n".join(
        block["text"]["text"]
        for block in help_message().as_kwargs()["blocks"]
        if block.get("type") == "section"
    )
    prefix = f"• `{COMMAND} "
    usages = [
        html.unescape(line[len(prefix) :].split("`", 1)[0])
        for line in text.splitlines()
        if line.startswith(prefix)
    ]
    return {usage.split()[0]: usage for usage in usages}


def test_every_subcommand_is_in_the_usage_hint_with_its_options():
    hint = _usage_hint()
    assert len(hint) <= 330  # shown under the message box while typing: keep it short
    segments = {segment.split()[0]: segment for segment in hint.split(" · ")}
    assert list(segments) == list(SUBCOMMANDS)
    for subcommand, options in OPTIONS.items():
        for option in options:
            assert option in segments[subcommand].replace("|", " | "), (subcommand, option)


def test_every_subcommand_is_in_help_with_its_options():
    usages = _help_usages()
    assert list(usages) == list(SUBCOMMANDS)
    for subcommand, options in OPTIONS.items():
        for option in options:
            assert option in usages[subcommand], (subcommand, option)


def test_every_subcommand_named_in_help_is_one_the_parser_accepts():
    for subcommand in SUBCOMMANDS:
        parsed = parse_command(f"{subcommand} trading-bot")
        assert not (isinstance(parsed, Help) and parsed.show_all), subcommand
    assert parse_command("frobnicate") == Help(
        "I don't know the subcommand “frobnicate”.", show_all=True
    )
