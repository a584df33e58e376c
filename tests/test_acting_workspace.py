"""One acting workspace per request: the one the guard checked is the one every listener acts in.

Slack names the workspace in several fields of one request (api.slack.com/reference/
interaction-payloads: ``team``, ``user.team_id``, ``view.team_id``,
``view.app_installed_team_id``, ``enterprise``; slash commands: ``team_id``, ``enterprise_id``;
Events API: ``team_id``, ``authorizations``). A signed request whose fields disagree is
refused politely and audited, whatever its kind; the legitimate shapes of Enterprise Grid
(``team`` null, ``user.team_id`` an ``E`` id) and of Slack Connect channels (the outer
``team_id`` names the channel's home workspace) keep working.

Every request here is signed and posted to the running bot over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.ids import Action, Callback
from bot.sandbox.slack_standin import SlackStandIn
from storage.models import ApiKey, AuditEvent
from tests.e2e import ALICE, TEAM, all_text, bot_client, register_directly, register_values
from tests.factories import random_api_key
from tests.slack_requests import (
    block_action,
    event_callback,
    slash_command,
    view_submission,
)

OTHER_TEAM = "T0OTHER"
EVE = "U0EVE"
GRID = "E0GRID"  # the Enterprise Grid organisation the grid stack's workspace belongs to
TRACEBACK = "Traceback"


# --- building the requests ---------------------------------------------------------------------


def _interactive(body: str, change: Callable[[dict[str, Any]], None]) -> str:
    """An interactivity body (``payload=<json>``) with ``change`` applied to its payload."""
    payload = json.loads(dict(parse_qsl(body))["payload"])
    change(payload)
    return urlencode({"payload": json.dumps(payload)})


def _form(body: str, **fields: str) -> str:
    """A slash command's form body with ``fields`` set."""
    return urlencode({**dict(parse_qsl(body, keep_blank_values=True)), **fields})


def _event(body: str, change: Callable[[dict[str, Any]], None]) -> str:
    envelope = json.loads(body)
    change(envelope)
    return json.dumps(envelope)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """``change`` that sets the dotted ``path`` (``view.app_installed_team_id``) to ``value``."""

    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = payload
        for name in parents:
            node = node[name]
        node[last] = value

    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        for one in changes:
            one(payload)

    return change


def _register_form(*, user_id: str = ALICE, team_id: str = TEAM, label: str, sim_key) -> str:
    values = register_values(label=label, api_key=sim_key.api_key, secret=sim_key.secret)
    return view_submission(
        Callback.REGISTER.value,
        values,
        user_id=user_id,
        team_id=team_id,
        private_metadata=json.dumps({"channel": "C0GENERAL"}),
    )


def _open_register(*, response_url: str, **kw: Any) -> str:
    return block_action(
        Action.REGISTER_OPEN.value, "open", response_url=response_url, trigger_id="1.2.abc", **kw
    )


def _leak_event(secret: str, **kw: Any) -> str:
    event = {
        "type": "message",
        "channel": "C0DEV",
        "channel_type": "channel",
        "user": ALICE,
        "team": TEAM,
        "text": f"the secret is {secret}",
        "ts": "1700000001.000200",
    }
    return event_callback(event, **kw)


def _home_opened(**kw: Any) -> str:
    return event_callback({"type": "app_home_opened", "user": ALICE, "tab": "home"}, **kw)


# --- reading what happened -----------------------------------------------------------------------


def _rows(stack, table: str) -> list:
    with stack.services.engine.connect() as connection:
        return list(connection.execute(sa.text(f'SELECT * FROM "{table}"')))


def _state(stack) -> dict[str, list]:
    """Every row of every table but the audit trail (what a refused request must not change)."""
    engine = stack.services.engine
    return {
        table: sorted(repr(tuple(row)) for row in _rows(stack, table))
        for table in sa.inspect(engine).get_table_names()
        if table not in ("alembic_version", "audit_events")
    }


def _audit(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        return list(session.exec(query).all())


def _keys(stack) -> list[ApiKey]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(ApiKey)).all())


def _said(stack, response, url: str | None) -> str:
    """The HTTP answer plus whatever reached the response_url."""
    assert stack.wait_idle(timeout=20), "the bot kept working"
    later = [c.params for c in stack.slack.calls if url and c.params.get("_response_url") == url]
    return all_text(response.json() if response.text.strip() else {}) + all_text(later)


# --- 1. the hole: a form from another workspace that names ours as the installed one ------------


def test_a_register_form_of_another_workspace_naming_ours_as_installed_is_refused(stack, client):
    """Before: the guard read ``view.app_installed_team_id`` (ours) and let it through; the
    listener stored the key under ``team.id``, the other workspace."""
    sim_key = stack.simulator.add_key()
    before, binance_calls = _state(stack), len(stack.simulator.request_log)
    body = _interactive(
        _register_form(user_id=EVE, team_id=OTHER_TEAM, label="eves-key", sim_key=sim_key),
        _set("view.app_installed_team_id", TEAM),
    )
    response = client.post(body)
    assert response.status_code == 200
    said = _said(stack, response, None)
    assert "more than one Slack workspace" in said and "Nothing was changed" in said
    assert TRACEBACK not in said and sim_key.secret not in said
    assert _keys(stack) == [] and _state(stack) == before
    assert len(stack.simulator.request_log) == binance_calls  # Binance was never asked
    (denial,) = _audit(stack, "access.denied")
    assert denial.team_id == TEAM and denial.actor == EVE
    attempted = denial.detail["attempted"]
    assert OTHER_TEAM in attempted and "app_installed_team_id" in attempted


# --- 2. disagreeing fields, for every kind of request --------------------------------------------

INTERACTIVE_DISAGREEMENTS = {
    "button: user.team_id of another workspace": lambda url: _interactive(
        _open_register(response_url=url), _set("user.team_id", OTHER_TEAM)
    ),
    "button: team.id of another workspace, user's ours": lambda url: _interactive(
        _open_register(response_url=url), _set("team.id", OTHER_TEAM)
    ),
    "button in the App Home: view.team_id of another workspace": lambda url: block_action(
        Action.REGISTER_OPEN.value,
        "open",
        response_url=None,
        trigger_id="1.2.abc",
        view={"id": "V0HOME", "type": "home", "team_id": OTHER_TEAM},
    ),
    "button: two enterprises": lambda url: _interactive(
        _open_register(response_url=url),
        _both(_set("enterprise", {"id": "E0ONE"}), _set("team.enterprise_id", "E0TWO")),
    ),
}


@pytest.mark.parametrize("shape", list(INTERACTIVE_DISAGREEMENTS))
def test_a_click_whose_workspace_fields_disagree_is_refused_and_audited(stack, client, shape):
    url = stack.slack.response_url()
    response = client.post(INTERACTIVE_DISAGREEMENTS[shape](url))
    assert response.status_code == 200
    said = _said(stack, response, url)
    assert "more than one Slack workspace" in said and TRACEBACK not in said
    assert stack.slack.calls_to("views.open") == []  # the register modal was not opened
    (denial,) = _audit(stack, "access.denied")
    assert denial.team_id == TEAM and "disagree" in denial.detail["attempted"]


@pytest.mark.parametrize(
    "change",
    [
        _set("user.team_id", OTHER_TEAM),
        _set("view.team_id", OTHER_TEAM),
        _set("team", {"id": OTHER_TEAM, "domain": "other"}),
    ],
    ids=["user.team_id", "view.team_id", "team.id"],
)
def test_a_register_form_whose_workspace_fields_disagree_stores_nothing(stack, client, change):
    sim_key = stack.simulator.add_key()
    before = _state(stack)
    response = client.post(_interactive(_register_form(label="k", sim_key=sim_key), change))
    said = _said(stack, response, None)
    assert response.json()["response_action"] == "update"
    assert "more than one Slack workspace" in said and TRACEBACK not in said
    assert _state(stack) == before and _keys(stack) == []
    (denial,) = _audit(stack, "access.denied")
    assert denial.team_id == TEAM


def test_a_message_event_whose_workspace_fields_disagree_is_audited_and_ignored(stack, client):
    """Not a shared channel, yet the envelope's ``team_id`` and its ``authorizations`` name
    different workspaces: no warning, no leak recorded under either; the attempt is audited."""
    _, sim_key = register_directly(stack, "trading-bot")
    body = _event(_leak_event(sim_key.secret), _set("team_id", OTHER_TEAM))
    response = client.post(body)
    assert response.status_code == 200
    assert stack.wait_idle(timeout=20)
    assert stack.slack.calls_to("chat.postMessage") == []
    assert _audit(stack, "leak.detected") == []
    (denial,) = _audit(stack, "access.denied")
    assert denial.team_id == TEAM and OTHER_TEAM in denial.detail["attempted"]


def test_an_app_home_event_whose_workspace_fields_disagree_publishes_nothing(stack, client):
    body = _event(
        _home_opened(),
        _set("authorizations", [{"team_id": OTHER_TEAM, "user_id": "U0BOT", "is_bot": True}]),
    )
    response = client.post(body)
    assert response.status_code == 200
    assert stack.wait_idle(timeout=20)
    assert stack.slack.calls_to("views.publish") == []
    (denial,) = _audit(stack, "access.denied")
    assert denial.team_id == TEAM


# --- 3. Enterprise Grid: the installation's organisation ----------------------------------------


@pytest.fixture
def grid_stack(make_stack):
    """A bot installed in workspace T0TEST of the Enterprise Grid organisation E0GRID (its
    ``auth.test`` names the organisation, as Slack's does for a workspace of a grid)."""
    slack = SlackStandIn(bot_token="xoxb-grid", enterprise_id=GRID).start()
    try:
        stack = make_stack(slack=slack)
        yield stack
        stack.stop()  # before its Slack stand-in (stopping it again at the end is harmless)
    finally:
        slack.stop()


def test_a_command_from_another_organisation_is_refused(grid_stack):
    client = bot_client(grid_stack)
    url = grid_stack.slack.response_url(command=True)
    response = client.post(_form(slash_command("list", response_url=url), enterprise_id="E0OTHER"))
    said = _said(grid_stack, response, url)
    assert "another Slack workspace" in said and TRACEBACK not in said
    (denial,) = _audit(grid_stack, "access.denied")
    assert denial.team_id == TEAM and "E0OTHER" in denial.detail["attempted"]


def test_grid_shapes_with_absent_or_enterprise_fields_keep_working(grid_stack):
    """Slack's documented grid shapes: a command with the organisation's ``enterprise_id``; a
    click whose ``user.team_id`` is the organisation's ``E`` id; a form from an org-wide
    install whose ``team`` is null. Each acts in T0TEST, and the key lands there."""
    stack = grid_stack
    client = bot_client(stack)
    url = stack.slack.response_url(command=True)
    response = client.post(_form(slash_command("help", response_url=url), enterprise_id=GRID))
    assert "another Slack workspace" not in _said(stack, response, url)
    assert "/apikey" in _said(stack, response, url)

    url = stack.slack.response_url()
    grid_click = _both(
        _set("user.team_id", GRID),
        _set("team.enterprise_id", GRID),
        _set("enterprise", {"id": GRID, "name": "Grid"}),
    )
    response = client.post(_interactive(_open_register(response_url=url), grid_click))
    assert response.status_code == 200
    stack.slack.wait_for("views.open")

    sim_key = stack.simulator.add_key()
    org_wide_form = _both(
        _set("team", None),
        _set("user.team_id", GRID),
        _set("enterprise", {"id": GRID, "name": "Grid"}),
        _set("is_enterprise_install", True),
    )
    response = client.post(
        _interactive(_register_form(label="grid-key", sim_key=sim_key), org_wide_form)
    )
    assert response.status_code == 200
    assert stack.wait_idle(timeout=20)
    (key,) = _keys(stack)
    assert key.label == "grid-key" and key.team_id == TEAM
    assert _audit(stack, "access.denied") == []


# --- 4. Slack Connect: the envelope's team is the channel's home, not a claim about us ---------


def test_a_leak_in_a_shared_channel_started_elsewhere_is_still_caught_for_our_workspace(
    stack, client
):
    """In an externally shared channel the outer ``team_id`` names the workspace the channel
    belongs to and ``authorizations`` names our installation (bolt-python's
    ``extract_team_id``): the leak is recorded and answered in our workspace."""
    registered, sim_key = register_directly(stack, "trading-bot")
    shared = _both(
        _set("team_id", OTHER_TEAM),
        _set("context_team_id", OTHER_TEAM),
        _set("is_ext_shared_channel", True),
        _set("event.user_team", OTHER_TEAM),
        _set("event.team", OTHER_TEAM),
    )
    response = client.post(_event(_leak_event(sim_key.secret), shared))
    assert response.status_code == 200
    (reply,) = stack.slack.wait_for("chat.postMessage")
    assert "trading-bot" in all_text(reply.params)
    (leak,) = _audit(stack, "leak.detected")
    assert leak.team_id == TEAM and leak.target_key_id == registered.key_id
    assert _audit(stack, "access.denied") == []


def test_an_ordinary_key_shaped_message_still_gets_its_warning(stack, client):
    response = client.post(_leak_event(random_api_key()))
    assert response.status_code == 200
    stack.slack.wait_for("chat.postMessage")
    assert _audit(stack, "access.denied") == []
