"""Hostile text in labels, account aliases and incident notes, through the real Slack paths.

Each value typed into the register modal (or the close-incident modal) is either stored verbatim
or refused with a polite message naming the rule (one exception: a close note longer than the
modal's 2,000-character limit, which only a forged request can send, keeps its first 2,000
characters). Wherever a stored value is rendered (register
summary, status, list, rotation, rotate modal, remove, incidents, checklist, closing summary,
reminders, drift digest, App Home, audit trail, refusals to another member) it is inert:
no ``<!channel>`` / ``<!here>`` / ``<!everyone>`` / ``<!subteam…>``, no user mention that a
person typed, no ``<http…|…>`` link, no right-to-left override in any mrkdwn text Slack would
parse (message fallback ``text``, ``mrkdwn`` objects). ``plain_text`` objects (headers, titles,
modal errors) are shown literally by Slack, so there only the direction override is forbidden.
The SQL text does nothing: the tables survive.

One module-scoped stack runs the whole scenario once; the tests then look at what it recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from bot.blocks.text import escape, safe_mrkdwn
from bot.ids import Action, Block, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.requests import close_note_values
from bot.sandbox.slack_standin import SlackCall
from bot.sandbox.stack import LocalStack
from bot.services.oversight.drift_plan import ensure_drift_checks
from storage.models import (
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentStep,
    utcnow,
)
from tests.conftest import start_test_stack
from tests.e2e import ALICE, BOB, bot_client, register_sim_key, wait_until
from tests.factories import make_due
from tests.slack_requests import BotClient

ADMIN = "U0ADMIN"
VICTIM = "U0VICTIM"  # nobody the bot would ever mention on its own
ALERTS = "C0ALERTS"
GENERAL = "C0GENERAL"

SQL = "x'; DROP TABLE api_keys; --"
ZERO_WIDTH = "zero\u200bwidth"
BOM = "\ufeffbom"
RTL_OVERRIDE = "invoice\u202etxt.exe"
HUGE = "a" * 10_000
CHANNEL = "<!channel>"
HERE = "<!here>"
MENTION = "<@U0ALICE>"
MRKDWN = "*bold* _x_ ~y~ `code` <https://evil.example|click>"

# --- what is refused, and why ---------------------------------------------------------------

NOT_ALLOWED_CHARACTERS = "cannot contain control, zero-width or text-direction characters"
REFUSED_LABELS = [
    pytest.param(ZERO_WIDTH, NOT_ALLOWED_CHARACTERS, id="zero-width-space"),
    pytest.param(BOM, NOT_ALLOWED_CHARACTERS, id="byte-order-mark"),
    pytest.param(RTL_OVERRIDE, NOT_ALLOWED_CHARACTERS, id="rtl-override"),
    pytest.param(HUGE, "at most 80 characters", id="10000-chars"),
    pytest.param(CHANNEL, "cannot start with <, @ or #", id="channel"),
    pytest.param(HERE, "cannot start with <, @ or #", id="here"),
    pytest.param(MENTION, "cannot start with <, @ or #", id="user-mention"),
    pytest.param("<https://evil.example|click>", "cannot start with <, @ or #", id="link"),
]
REFUSED_ALIASES = [
    pytest.param(ZERO_WIDTH, NOT_ALLOWED_CHARACTERS, id="zero-width-space"),
    pytest.param(BOM, NOT_ALLOWED_CHARACTERS, id="byte-order-mark"),
    pytest.param(RTL_OVERRIDE, NOT_ALLOWED_CHARACTERS, id="rtl-override"),
    pytest.param(HUGE, "short name (1-80 characters)", id="10000-chars"),
]

# --- what is stored verbatim: (label, account alias) of one key each -------------------------
# Labels cannot start with "<", so the mentions ride inside them; aliases may start with one.

ACCEPTED = [
    (SQL, MRKDWN),
    (MRKDWN, SQL),
    ("hi <!channel> and <!here>", CHANNEL),
    (f"cc <@{VICTIM}> and {MENTION}", HERE),
    ("team <!subteam^S0TEAM|@team> <!everyone>", f"<@{VICTIM}>"),
    ("hi @channel @here & <b>", MENTION),
]
LABELS = [label for label, _ in ACCEPTED]
ALIASES = [alias for _, alias in ACCEPTED]
# Incidents are raised on the first four keys and closed with these notes.
NOTES = [
    SQL,
    f"{CHANNEL} {HERE} <!everyone> <@{VICTIM}> {MRKDWN} <!subteam^S0TEAM>",
    f"{RTL_OVERRIDE} {ZERO_WIDTH} {BOM}",
    HUGE,
]
CLOSE_NOTE_LIMIT = 2000  # the close modal's max_length; the service keeps at most this much

# Things that must never reach a text Slack parses as mrkdwn. (The bot's own link to Binance
# API Management, in step 1 of the checklist, is the one link it writes.)
# Links the bot makes itself are allowed: Binance's site, and a checklist's permalink as
# Slack's chat.getPermalink gives it (https://<workspace>.slack.com/archives/...).
PINGS = re.compile(
    r"<!(?:channel|here|everyone|subteam)|<@"
    + VICTIM
    + r"|<https?://(?!www\.binance\.com/|[a-z0-9-]+\.slack\.com/archives/[A-Z0-9]+/p\d+\|)",
    re.I,
)


# --- the scenario ------------------------------------------------------------------------------


@dataclass
class World:
    stack: LocalStack
    client: BotClient
    answers: list[dict] = field(default_factory=list)  # the bot's HTTP answers (acks, modals)
    by_surface: dict[str, list[Any]] = field(default_factory=dict)
    tables_before: set[str] = field(default_factory=set)

    def keep(self, surface: str, payload: Any) -> Any:
        self.by_surface.setdefault(surface, []).append(payload)
        return payload

    def send(self, response) -> dict:
        assert response.status_code == 200, response.text
        answer = response.json() if response.text.strip().startswith("{") else {}
        self.answers.append(answer)
        return answer

    def command(self, text: str, *, user: str = ALICE) -> tuple[dict, str]:
        url = self.stack.slack.response_url()
        return self.send(self.client.command(text, user_id=user, response_url=url)), url

    def reply_to(self, url: str) -> dict:
        (call,) = self.stack.slack.wait_for(
            "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=15
        )
        return call.params

    def key(self, label: str) -> ApiKey:
        with Session(self.stack.services.engine) as session:
            return session.exec(select(ApiKey).where(ApiKey.label == label)).one()

    def api_key(self, label: str) -> str:
        key = self.key(label)
        assert key.api_key_sealed is not None
        return self.stack.services.ring.open_text(key.api_key_sealed, context=key.api_key_context())

    def tick(self, clock: FixedClock, times: int = 1) -> None:
        for _ in range(times):
            scheduler = self.stack.scheduler(clock, worker_id="t")
            try:
                scheduler.tick()
            finally:
                scheduler.close()


def _register_all(world: World) -> None:
    stack = world.stack
    for label, alias in ACCEPTED:
        sim_key = stack.simulator.add_key(account=alias, ip_restrict=True)
        answer = world.send(
            register_sim_key(stack, world.client, sim_key, label=label, account=alias)
        )
        assert answer.get("response_action") == "update", answer
        world.keep("register modal", answer)
    summaries = stack.slack.wait_for(
        "chat.postEphemeral",
        predicate=lambda c: c.params.get("text", "").startswith("Registered"),
        count=len(ACCEPTED),
    )
    for call in summaries:
        world.keep("register summary", call.params)


def _commands(world: World) -> None:
    slack = world.stack.slack
    for label in LABELS:
        _, url = world.command(f"status {label}")
        world.keep("status", world.reply_to(url))
        world.keep("rotation policy", world.command(f"rotate {label} every 60d")[0])
        world.keep("remove", world.command(f"remove {label}")[0])
        world.keep("refusal to bob", world.command(f"remove {label}", user=BOB)[0])
        before = len(slack.calls_to("views.open"))
        world.command(f"rotate {label}")
        world.keep("rotate modal", slack.wait_for("views.open", count=before + 1)[-1].params)
    for user in (ALICE, ADMIN):
        _, url = world.command("status all", user=user)
        world.keep("status", world.reply_to(url))
    world.keep("list", world.command("list")[0])
    world.keep("rotation", world.command("rotation")[0])
    # cancel one removal: the answer names the key again
    key_id = world.key(LABELS[2]).id
    url = slack.response_url()
    world.send(world.client.action(Action.REMOVE_CANCEL, key_id, response_url=url))
    world.keep("remove", world.reply_to(url))


def _home(world: World, surface: str) -> None:
    slack = world.stack.slack
    for user in (ALICE, ADMIN):
        before = len(slack.calls_to("views.publish"))
        event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
        world.send(world.client.event(event))
        world.keep(surface, slack.wait_for("views.publish", count=before + 1)[-1].params)


def _drift_and_reminders(world: World) -> None:
    stack = world.stack
    for label in LABELS:  # every key gained withdrawals since registration
        stack.simulator.set_permissions(world.api_key(label), enableWithdrawals=True)
    clock = FixedClock(utcnow() + timedelta(hours=1))
    ensure_drift_checks(stack.services.engine, interval=timedelta(0), now=clock.now())
    make_due(stack.services.engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    world.tick(clock)
    (digest,) = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Daily key check" in c.params.get("text", "")
    )
    world.keep("drift digest", digest.params)
    # 60-day policy: the "due in 14 days" reminder is due on day 46; nothing escalates yet
    world.tick(FixedClock(utcnow() + timedelta(days=46, minutes=5)))
    reminders = stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params.get("text", "").startswith("Rotation reminder"),
        count=len(LABELS),
    )
    for call in reminders:
        world.keep("reminder", call.params)


def _incidents(world: World) -> None:
    """Raise an incident on the first keys, look at the App Home, then close each one with a
    hostile note."""
    stack, slack, client = world.stack, world.stack.slack, world.client
    engine = stack.services.engine
    incidents = []
    for label in LABELS[: len(NOTES)]:
        _, url = world.command(f"compromised {label}")
        world.keep("raised", world.reply_to(url))

        def posted(label: str = label) -> Incident | None:
            with Session(engine) as session:
                found = session.exec(select(Incident).where(Incident.label == label)).first()
            return found if found is not None and len(found.messages) == 1 else None

        incidents.append(wait_until(posted))
    _home(world, "home with open incidents")
    clock = FixedClock(utcnow())
    for incident, note in zip(incidents, NOTES, strict=True):
        for step in (2, 3, 4, 5):
            world.send(
                client.action(
                    Action.INCIDENT_TICK,
                    f"{incident.id}:{step}",
                    response_url=slack.response_url(),
                    message_ts="1.0",
                )
            )
        stack.simulator.delete_key(world.api_key(incident.label))
        wait_until(lambda incident=incident: _steps(engine, incident.id) == 4)
        clock.advance(timedelta(hours=1))  # past any probe back-off: Binance rejects the key
        world.tick(clock, times=2)
        with Session(engine) as session:
            stored = session.get(Incident, incident.id)
            assert stored is not None
            assert stored.key_dead_at is not None
        world.send(  # whoever deleted it ticks step 1 (a rejection alone proves no deletion)
            client.action(
                Action.INCIDENT_TICK,
                f"{incident.id}:1",
                response_url=slack.response_url(),
                message_ts="1.0",
            )
        )
        wait_until(lambda incident=incident: _steps(engine, incident.id) == 5)
        world.send(
            client.action(
                Action.INCIDENT_CLOSE,
                incident.id,
                response_url=slack.response_url(),
                message_ts="1",
            )
        )

        def close_modal(c: SlackCall, i: str = incident.id) -> bool:
            return c.params["view"].get("private_metadata") == i

        (opened,) = slack.wait_for("views.open", predicate=close_modal)
        world.keep("close modal", opened.params)
        values = close_note_values(note=note)
        world.keep(
            "close answer",
            world.send(
                client.submit(Callback.INCIDENT_CLOSE.value, values, private_metadata=incident.id)
            ),
        )
        in_alerts = next(m["ts"] for m in incident.messages if m["channel"] == ALERTS)

        def closed_summary(c: SlackCall, ts: str = in_alerts) -> bool:
            return (
                c.params.get("channel") == ALERTS
                and c.params.get("thread_ts") == ts
                and "Incident closed" in c.params.get("text", "")
            )

        (summary,) = slack.wait_for("chat.postMessage", predicate=closed_summary)
        world.keep("closing summary", summary.params)
    for call in slack.calls_to("chat.postMessage") + slack.calls_to("chat.update"):
        if "Compromised key" in call.params.get("text", ""):
            world.keep("checklist", call.params)
    world.keep("incidents", world.command("incidents")[0])


def _steps(engine, incident_id: str) -> int:
    with Session(engine) as session:
        return len(
            session.exec(select(IncidentStep).where(IncidentStep.incident_id == incident_id)).all()
        )


def _audit(world: World) -> None:
    world.keep("audit", world.command("audit", user=ADMIN)[0])
    for label in LABELS:
        world.keep("audit", world.command(f"audit {label}", user=ADMIN)[0])


def _typed_by_hand(world: World) -> None:
    """Hostile text typed into commands (not stored anywhere): echoed inert, if at all."""
    for text in (
        f"status nothing <@{VICTIM}> {CHANNEL}",
        f"remove nothing <@{VICTIM}> <!here>",
        f"compromised nothing <@{VICTIM}> {MRKDWN}",
        f"audit nothing <@{VICTIM}> <!channel>",
        f"rotate nothing <@{VICTIM}> every 7d",
        f"<@{VICTIM}> {CHANNEL}",
        f"status <@{VICTIM}> {HERE}",
    ):
        answer, url = world.command(text, user=ADMIN)
        world.keep("typed by hand", answer)
        if text.startswith(("status", "compromised")):
            world.keep("typed by hand", world.reply_to(url))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("hostile")
    with start_test_stack(
        workdir, users=(ALICE, BOB, VICTIM), admin_user_ids=ADMIN, alert_channel=ALERTS
    ) as stack:
        world = World(stack, bot_client(stack))
        with stack.services.engine.connect() as connection:
            world.tables_before = set(sa.inspect(connection).get_table_names())
        _register_all(world)
        _commands(world)
        _home(world, "home")
        _drift_and_reminders(world)
        _incidents(world)
        _audit(world)
        _typed_by_hand(world)
        yield world


# --- walking payloads --------------------------------------------------------------------------

# Fields Slack never shows as text (ids, routing, button values).
_NOT_SHOWN = {
    "action_id",
    "block_id",
    "callback_id",
    "private_metadata",
    "value",
    "channel",
    "user",
    "user_id",
    "users",
    "ts",
    "thread_ts",
    "view_id",
    "trigger_id",
    "external_id",
    "_response_url",
    "type",
    "style",
}


def shown_texts(node: Any, *, plain: bool = False) -> Iterator[tuple[bool, str]]:
    """(is plain_text, string) for every string of a payload Slack would show."""
    if isinstance(node, dict):
        is_plain = plain or node.get("type") == "plain_text"
        for key, value in node.items():
            if key in _NOT_SHOWN:
                continue
            # modal field errors and titles are plain text
            yield from shown_texts(value, plain=is_plain or key in {"errors", "title"})
    elif isinstance(node, list):
        for item in node:
            yield from shown_texts(item, plain=plain)
    elif isinstance(node, str):
        yield plain, node


def mrkdwn_of(payloads: list[Any]) -> str:
    return "\n".join(text for p in payloads for plain, text in shown_texts(p) if not plain)


def everything(world: World) -> list[tuple[str, Any]]:
    recorded = [(f"{c.method} #{i}", c.params) for i, c in enumerate(world.stack.slack.calls)]
    return recorded + [(f"bot answer #{i}", a) for i, a in enumerate(world.answers)]


# --- refused values ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> Iterator[LocalStack]:
    with start_test_stack(tmp_path_factory.mktemp("refusals")) as stack:
        yield stack


def _attempt(stack: LocalStack, *, label: str = "fine-label", account: str = "main") -> dict:
    client = bot_client(stack)
    sim_key = stack.simulator.add_key(ip_restrict=True)
    asked_binance = len(stack.simulator.request_log)
    response = register_sim_key(stack, client, sim_key, label=label, account=account)
    assert response.status_code == 200
    assert len(stack.simulator.request_log) == asked_binance  # refused before Binance
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).all() == []
        assert session.exec(select(BinanceAccount)).all() == []
    return response.json()


def _assert_polite(message: str, reason: str, hostile: str) -> None:
    assert reason in message
    assert message.endswith(".") and len(message) < 200
    assert "Traceback" not in message and "Error" not in message
    if len(hostile) > 80 or any(ch in hostile for ch in "\u200b\ufeff\u202e"):
        assert hostile not in message  # a refusal does not repeat the offending text


@pytest.mark.parametrize(("label", "reason"), REFUSED_LABELS)
def test_refused_labels_get_a_polite_reason_and_store_nothing(refusals, label, reason):
    answer = _attempt(refusals, label=label)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {Block.LABEL}
    _assert_polite(answer["errors"][Block.LABEL], reason, label)


@pytest.mark.parametrize(("alias", "reason"), REFUSED_ALIASES)
def test_refused_account_names_get_a_polite_reason_and_store_nothing(refusals, alias, reason):
    answer = _attempt(refusals, account=alias)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {Block.ACCOUNT}
    _assert_polite(answer["errors"][Block.ACCOUNT], reason, alias)


def test_an_empty_close_note_is_refused_politely(world):
    """(The hostile notes below are all accepted; only an empty one is refused.)"""
    with Session(world.stack.services.engine) as session:
        incident = session.exec(select(Incident)).first()
    values = close_note_values(note=" ")
    answer = world.client.submit(
        Callback.INCIDENT_CLOSE.value, values, private_metadata=incident.id
    ).json()
    assert answer["response_action"] == "errors"
    assert "Please write a short closing note" in answer["errors"][Block.CLOSE_NOTE]


# --- accepted values: stored verbatim, tables intact ----------------------------------------


@pytest.mark.parametrize(("label", "alias"), ACCEPTED)
def test_accepted_labels_and_account_names_are_stored_verbatim(world, label, alias):
    key = world.key(label)
    with Session(world.stack.services.engine) as session:
        account = session.get(BinanceAccount, key.account_id)
    assert (key.label, account.alias) == (label, alias)


@pytest.mark.parametrize("note", NOTES, ids=["sql", "mentions-and-links", "invisible", "huge"])
def test_close_notes_are_stored_verbatim_up_to_the_modal_limit(world, note):
    with Session(world.stack.services.engine) as session:
        notes = [i.close_note for i in session.exec(select(Incident)).all()]
    assert note[:CLOSE_NOTE_LIMIT] in notes


def test_the_sql_text_did_nothing_and_every_table_survives(world):
    engine = world.stack.services.engine
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        keys = connection.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one()
        audit = connection.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE target = :t"), {"t": SQL}
        ).scalar_one()
    assert tables == world.tables_before
    assert set(SQLModel.metadata.tables) <= tables
    assert keys == len(ACCEPTED)
    assert audit >= 3  # registered, checked, compromised... all recorded under the SQL label


# --- rendering: escaped everywhere -----------------------------------------------------------

SURFACES_WITH_EVERY_LABEL = [
    "register summary",
    "status",
    "list",
    "rotation",
    "rotation policy",
    "remove",
    "refusal to bob",
    "rotate modal",
    "drift digest",
    "reminder",
    "home",
    "audit",
]
SURFACES_WITH_INCIDENT_LABELS = [
    "raised",
    "checklist",
    "home with open incidents",
    "closing summary",
    "incidents",
]


@pytest.mark.parametrize("surface", SURFACES_WITH_EVERY_LABEL + SURFACES_WITH_INCIDENT_LABELS)
def test_every_surface_shows_the_labels_escaped(world, surface):
    labels = LABELS if surface in SURFACES_WITH_EVERY_LABEL else LABELS[: len(NOTES)]
    payloads = world.by_surface[surface]
    text = mrkdwn_of(payloads)
    for label in labels:
        assert escape(label) in text, (surface, label)  # rendered, and rendered escaped
        if escape(label) != label:
            assert label not in text, (surface, label)  # never raw
    assert PINGS.findall(text) == [], surface


@pytest.mark.parametrize("surface", ["register summary", "status", "list", "remove", "home"])
def test_account_names_are_shown_escaped(world, surface):
    text = mrkdwn_of(world.by_surface[surface])
    for alias in ALIASES:
        assert escape(alias) in text, (surface, alias)
    assert PINGS.findall(text) == []


def test_closing_notes_are_shown_escaped_and_bounded(world):
    text = mrkdwn_of(world.by_surface["closing summary"])
    assert "x'; DROP TABLE api_keys; --" in text
    assert escape(f"{CHANNEL} {HERE} <!everyone> <@{VICTIM}>") in text
    assert "invoice\ufffdtxt.exe" in text  # the override is shown as a replacement character
    assert "a" * 1000 in text and "a" * 1600 not in text
    assert PINGS.findall(text) == [] and "\u202e" not in text


def test_nothing_anywhere_pings_anyone_links_or_reverses_text(world):
    """Every Web API call, response_url post, view and HTTP answer the bot produced."""
    payloads = everything(world)
    assert len(payloads) > 150
    offences = []
    for where, payload in payloads:
        for plain, text in shown_texts(payload):
            if "\u202e" in text:
                offences.append((where, "right-to-left override", text[:120]))
            if not plain and PINGS.search(text):
                offences.append((where, PINGS.search(text).group(0), text[:160]))
            if not plain and f"cc <@{VICTIM}>" in text:
                offences.append((where, "a typed mention", text[:160]))
        if isinstance(payload, dict):
            if payload.get("link_names") not in (None, False, 0, "0", "false"):
                offences.append((where, "link_names", payload["link_names"]))
            if payload.get("parse") == "full":
                offences.append((where, "parse=full", ""))
    assert offences == []


def test_the_walker_sees_what_slack_would_parse():
    """The checks above rely on shown_texts: it must find mrkdwn and skip ids and plain text."""
    payload = {
        "text": "fallback <!channel>",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "title <!here>"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "body <@U0VICTIM>"}},
            {"type": "actions", "elements": [{"type": "button", "value": "<!channel>"}]},
        ],
    }
    found = list(shown_texts(payload))
    assert (False, "fallback <!channel>") in found and (False, "body <@U0VICTIM>") in found
    assert (True, "title <!here>") in found
    assert all("value" not in text for _, text in found) and len(found) == 3
    assert len(PINGS.findall(mrkdwn_of([payload]))) == 2
    assert json.dumps(payload)  # plain JSON, as recorded


def test_text_typed_into_commands_is_echoed_inert(world):
    text = mrkdwn_of(world.by_surface["typed by hand"])
    assert f"&lt;@{VICTIM}&gt;" in text  # the unknown label is quoted back, as text
    assert PINGS.findall(text) == []


def test_a_quoted_label_never_becomes_a_mention_but_the_bots_own_mentions_stay():
    message = safe_mrkdwn(
        f"Only its owner <@U0ALICE> or an admin can remove “a” <@{VICTIM}> “b”. Nothing changed."
    )
    assert message.startswith("Only its owner <@U0ALICE> or an admin")
    assert f"“a” &lt;@{VICTIM}&gt; “b”" in message
    assert safe_mrkdwn("keys of <@U0ALICE>") == "keys of <@U0ALICE>"
