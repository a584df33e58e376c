"""manifest.yml stays in step with what the code handles."""

from __future__ import annotations

from pathlib import Path

import yaml

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
