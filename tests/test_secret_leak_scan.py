"""Canary secrets must never leave the vault.

HMAC, Ed25519 and RSA keys from the simulator are registered through the register modal (a signed
``view_submission``, as Slack sends it); then every command and button runs once, the scheduler
ticks, a leak-detection message arrives. Afterwards each secret (and every wrong one that was
tried) is looked for, in clear, base64, hex and URL-encoded form (for PEM keys: each base64 body
line and pieces of it), in:

- every log record of every logger at DEBUG (pytest's ``caplog`` and a handler of our own on the
  root logger that also formats tracebacks, arguments and extras), and uncaught thread exceptions;
- every call the Slack stand-in recorded (Web API, ``response_url`` posts, views) and every HTTP
  answer the bot gave (acks carry messages and modal views);
- the text of the exceptions a wrong secret raises, chained causes and tracebacks included;
- every request that reached the Binance simulator, byte for byte: the API key may appear in the
  ``X-MBX-APIKEY`` header only, the secret nowhere (only signatures travel);
- a dump of the database (``SELECT *`` over every table inspect finds) and its raw files.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, select

from bot import binance
from bot.bootstrap import configure_logging
from bot.ids import Action, Block, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.binance_simulator import BinanceSimulator, SimKey
from bot.sandbox.binance_simulator import _Handler as _SimHandler
from bot.sandbox.requests import close_note_values, rotate_form_values
from bot.sandbox.slack_standin import SlackCall
from bot.sandbox.stack import LocalStack
from bot.services.custody.keys import RegistrationForm, register_key
from bot.services.errors import DomainError
from bot.services.oversight.drift_plan import ensure_drift_checks
from storage.models import (
    ApiKey,
    Incident,
    IncidentStep,
    KeyPurpose,
    KeyStatus,
    KeyType,
    utcnow,
)
from tests.e2e import (
    ALICE,
    BOB,
    TEAM,
    all_text,
    bot_client,
    register_sim_key,
    submit_registration,
    wait_until,
)
from tests.factories import TRADE, make_due, random_api_key
from tests.slack_requests import BotClient

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
GENERAL = "C0GENERAL"
GRAM = 16  # any run of this many characters of any encoding of a secret counts as a leak


def secret_encodings(secret: str) -> dict[str, str]:
    """Every form in which ``secret`` could leak, by name.

    Clear text, standard / URL-safe base64 (with and without padding), hex in both cases, the
    URL-encoded, form-encoded and JSON-escaped forms; for a PEM private key also each base64
    body line of 40+ characters (and its URL-encoded form).
    """
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    forms = {
        "clear": secret,
        "base64": b64,
        "base64 unpadded": b64.rstrip("="),
        "urlsafe base64": urlsafe,
        "urlsafe base64 unpadded": urlsafe.rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
    }
    body_lines = [
        line.strip()
        for line in secret.splitlines()
        if not line.startswith("-----") and len(line.strip()) >= 40
    ]
    if "-----BEGIN" in secret:
        assert body_lines, "a PEM secret must have body lines to look for"
    for number, line in enumerate(body_lines, 1):
        forms[f"PEM body line {number}"] = line
        forms[f"PEM body line {number}, url-encoded"] = quote(line, safe="")
    return forms


@dataclass(frozen=True)
class Canary:
    name: str
    secret: str

    def encodings(self) -> dict[str, str]:
        return secret_encodings(self.secret)


# The characters encodings are made of; a leak is a run of them (spaces and newlines only
# appear in the PEM armour, which is the same for every key).
_RUN = re.compile(r"[A-Za-z0-9+/=_%\\-]{" + str(GRAM) + ",}")


def _grams(text: str) -> Iterator[str]:
    for run in _RUN.findall(text):
        for start in range(len(run) - GRAM + 1):
            yield run[start : start + GRAM]


@functools.cache
def _shared_by_every_key() -> frozenset[str]:
    """Grams that every key of a type has (PEM armour, the PKCS#8 header): not secret."""
    sim = BinanceSimulator()  # used for its key generator only; never started
    shared: set[str] = set()
    for key_type in ("ED25519", "RSA"):
        first, second = (
            {
                g
                for form in secret_encodings(sim.add_key(key_type=key_type).secret).values()
                for g in _grams(form)
            }
            for _ in range(2)
        )
        shared |= first & second
    return frozenset(shared)


@functools.cache
def _sample_forms() -> tuple[dict[str, str], ...]:
    sim = BinanceSimulator()  # used for its key generator only; never started
    return tuple(
        secret_encodings(sim.add_key(key_type=key_type).secret)
        for key_type in ("ED25519", "RSA")
        for _ in range(3)
    )


def _common_prefix(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _fixed_head(form_name: str, form: str) -> str:
    """The start of ``form`` that other keys of its type share (armour, DER header), plus the
    next three characters: a gram inside it holds at most three random characters, so a
    sibling key matching it would be chance, not a leak."""
    common = max(
        (_common_prefix(form, sample.get(form_name, "")) for sample in _sample_forms()),
        default=0,
    )
    return form[: common + 3] if common >= GRAM else ""


def find_leaks(canaries: Iterable[Canary], haystacks: dict[str, str]) -> list[str]:
    """Where any encoding of any canary (or any ``GRAM`` characters of one) appears, as
    "<canary>: <encoding> in <haystack>". The finding names the place, never the secret."""
    origin: dict[str, str] = {}
    for canary in canaries:
        for form_name, form in canary.encodings().items():
            head = set(_grams(_fixed_head(form_name, form)))
            for gram in _grams(form):
                if gram not in head:
                    origin.setdefault(gram, f"{canary.name}: {form_name}")
    for gram in _shared_by_every_key():
        origin.pop(gram, None)
    found: set[str] = set()
    for where, text in haystacks.items():
        found.update(f"{origin[g]} in {where}" for g in set(_grams(text)) & origin.keys())
    return sorted(found)


def test_the_scanner_finds_every_encoding_and_nothing_else():
    """The detector itself must be able to fail (else the scan below proves nothing), and must
    not cry wolf at what every key of a type has in common."""
    sim = BinanceSimulator()  # keys only; never started
    for key_type in ("HMAC", "ED25519", "RSA"):
        secret = sim.add_key(key_type=key_type).secret
        canary = Canary(key_type, secret)
        raw = secret.encode()
        planted = [
            secret,
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            raw.hex(),
            raw.hex().upper(),
            quote_plus(secret),
            json.dumps({"secret": secret}),
        ]
        lines = [line for line in secret.splitlines() if not line.startswith("-----")]
        if key_type == "HMAC":
            planted += [f"secret={secret[:20]}…", f"…{secret[-GRAM:]}"]  # pieces leak too
        else:
            planted += [f"log: {line}" for line in lines if len(line) >= 40]
            planted.append(f"…{lines[-1][-GRAM - 4 :]}")
        for text in planted:
            found = find_leaks([canary], {"log": f"before {text} after"})
            assert found and all(f.startswith(f"{key_type}: ") for f in found), text[:20]
        other = sim.add_key(key_type=key_type).secret.splitlines()  # a sibling key
        innocent = {
            "random": "nothing to see " + random_api_key(),
            "another key's material": "\n".join(other[2:] if len(other) > 3 else other),
            "hint": "paste your PEM private key (-----BEGIN PRIVATE KEY----- …)",
            "armour": json.dumps("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"),
        }
        assert find_leaks([canary], innocent) == []


# --- capturing everything the bot emits ------------------------------------------------------


class _Everything(logging.Handler):
    """Every record, formatted with its traceback, its raw arguments and any extra fields."""

    _STANDARD = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message"}

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.texts: list[str] = []
        self._texts_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # a broken record must not hide the others
            text = f"unformattable record {record.name}: {exc!r}"
        extras = {k: v for k, v in vars(record).items() if k not in self._STANDARD}
        parts = [text, repr(record.msg), repr(record.args), repr(extras)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(exception_text(record.exc_info[1]))
        with self._texts_lock:
            self.texts.append("\n".join(parts))


def exception_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args, attributes, the formatted chain."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20:
        seen += [str(current), repr(current), repr(current.args), repr(vars(current))]
        current = current.__cause__ or current.__context__
    seen += traceback.format_exception(exc)
    return "\n".join(seen)


class _WireHandler(_SimHandler):  # BinanceSimulator.handler_class
    def read_body(self) -> bytes:
        body = super().read_body()
        owner = self.server.owner
        assert isinstance(owner, _WireSimulator)
        owner.record_wire(self.requestline, str(self.headers), body)
        return body


class _WireSimulator(BinanceSimulator):
    """The simulator, also keeping each request as it arrived: request line, headers, body."""

    handler_class = _WireHandler

    def __init__(self) -> None:
        super().__init__()
        self.wire: list[tuple[str, str, bytes]] = []

    def record_wire(self, request_line: str, headers: str, body: bytes) -> bytes:
        with self._lock:
            self.wire.append((request_line, headers, body))
        return body


@dataclass
class Run:
    stack: LocalStack
    client: BotClient
    sim: _WireSimulator
    answers: list[str]  # every HTTP answer of the bot (acks, modal responses)
    keys: dict[str, SimKey]  # every key whose API key was given to the bot, by label
    canaries: list[Canary]  # every secret the bot was ever given
    exceptions: list[str]

    def send(self, response) -> dict:
        assert response.status_code == 200, response.text
        self.answers.append(response.text)
        return response.json() if response.text.strip().startswith("{") else {}

    def command(self, text: str, *, user: str = ALICE) -> tuple[dict, str]:
        url = self.stack.slack.response_url()
        ack = self.send(self.client.command(text, user_id=user, response_url=url))
        return ack, url

    def reply_to(self, url: str, timeout: float = 15) -> dict:
        (call,) = self.stack.slack.wait_for(
            "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=timeout
        )
        return call.params

    def tick(self, clock: FixedClock, times: int = 1) -> None:
        for _ in range(times):
            scheduler = self.stack.scheduler(clock, worker_id="t")
            try:
                scheduler.tick()
            finally:
                scheduler.close()


@pytest.fixture
def wire_sim() -> Iterator[_WireSimulator]:
    sim = _WireSimulator().start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def stack_settings(wire_sim) -> dict[str, object]:
    """A bot that talks to the wire-recording simulator."""
    return dict(simulator=wire_sim, admin_user_ids=ADMIN, alert_channel=ALERTS)


@pytest.fixture
def logs(caplog) -> Iterator[_Everything]:
    """DEBUG for every logger (also the ones that do not propagate), plus our own handler."""
    caplog.set_level(logging.DEBUG)
    handler = _Everything()
    root = logging.getLogger()
    root.addHandler(handler)
    quiet = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            if not logger.propagate:
                logger.addHandler(handler)
                logger.addHandler(caplog.handler)
                quiet.append(logger)
    yield handler
    root.removeHandler(handler)
    for logger in quiet:
        logger.removeHandler(handler)
        logger.removeHandler(caplog.handler)


@pytest.fixture
def uncaught(monkeypatch) -> list[str]:
    """Exceptions that escape a thread (they would reach stderr), formatted."""
    seen: list[str] = []
    previous = threading.excepthook

    def hook(args) -> None:
        if args.exc_value is not None:
            seen.append(exception_text(args.exc_value))
        previous(args)

    monkeypatch.setattr(threading, "excepthook", hook)
    monkeypatch.setattr(
        sys,
        "unraisablehook",
        lambda unraisable: seen.append(f"{unraisable.err_msg} {unraisable.exc_value!r}"),
    )
    return seen


# --- the run: every command once ---------------------------------------------------------------


def _register_canaries(run: Run) -> None:
    stack, client, sim = run.stack, run.client, run.stack.simulator
    for label, key_type in (
        ("hmac-canary", "HMAC"),
        ("ed-canary", "ED25519"),
        ("rsa-canary", "RSA"),
    ):
        key = sim.add_key(key_type=key_type, ip_restrict=True, permissions=TRADE)
        run.keys[label] = key
        run.canaries.append(Canary(label, key.secret))
        answer = run.send(
            register_sim_key(stack, client, key, label=label, purpose="trading", channel=GENERAL)
        )
        assert answer.get("response_action") == "update", answer

        def registered(c: SlackCall, label: str = label) -> bool:
            return f"Registered {label}" in c.params.get("text", "")

        stack.slack.wait_for("chat.postEphemeral", predicate=registered)


def _fail_registrations(run: Run) -> None:
    """Wrong secrets for real keys: refused, and the refusal must not echo what was pasted."""
    sim = run.stack.simulator
    for key_type in ("HMAC", "ED25519", "RSA"):
        key = sim.add_key(key_type=key_type, ip_restrict=True)
        wrong = sim.add_key(key_type=key_type).secret  # well-formed, but not this key's
        run.keys[f"wrong-{key_type}"] = key
        run.canaries.append(Canary(f"wrong {key_type} secret", wrong))
        refused = run.send(
            submit_registration(
                run.client,
                label=f"wrong-{key_type.lower()}",
                api_key=key.api_key,
                secret=wrong,
                key_type=key_type,
            )
        )
        assert "signature is wrong" in refused["errors"][Block.SECRET], refused
    # and a mangled secret (wrong shape) never reaches Binance, nor the answer
    key = sim.add_key(ip_restrict=True)
    mangled = key.secret[:40] + "-_" + key.secret[40:]
    run.canaries.append(Canary("mangled HMAC secret", mangled))
    refused = run.send(
        submit_registration(run.client, label="mangled", api_key=key.api_key, secret=mangled)
    )
    assert "64 letters and digits" in refused["errors"][Block.SECRET]
    with Session(run.stack.services.engine) as session:
        labels = set(session.exec(select(ApiKey.label)).all())
    assert labels == {"hmac-canary", "ed-canary", "rsa-canary"}


def _exceptions_of_wrong_secrets(run: Run) -> None:
    """What the gateway and the service raise for a wrong secret, formatted in full."""
    services = run.stack.services
    sim = run.stack.simulator
    for key_type in ("HMAC", "ED25519", "RSA"):
        key = sim.add_key(key_type=key_type, ip_restrict=True)
        wrong = sim.add_key(key_type=key_type).secret
        run.canaries += [Canary(f"direct wrong {key_type}", wrong)]
        creds = binance.Credentials(
            api_key=key.api_key, secret=wrong, key_type=binance.KeyType(key_type)
        )
        with pytest.raises(binance.BinanceError) as gateway_error:
            services.gateway.api_restrictions(creds)
        run.exceptions.append(exception_text(gateway_error.value))
        run.exceptions.append(repr(creds))
        form = RegistrationForm(
            team_id=TEAM,
            actor=ALICE,
            label=f"direct-{key_type.lower()}",
            account_alias="main",
            owner_user_id=ALICE,
            purpose=KeyPurpose.READ_ONLY,
            key_type=KeyType(key_type),
            api_key=key.api_key,
            secret=wrong,
        )
        with pytest.raises(DomainError) as service_error:
            register_key(
                engine=services.engine,
                ring=services.ring,
                gateway=services.gateway,
                form=form,
                settings=services.settings,
            )
        run.exceptions += [exception_text(service_error.value), repr(form)]
    # a deleted key and a key whose secret is unreadable
    gone = sim.add_key(key_type="ED25519")
    sim.delete_key(gone.api_key)
    run.canaries.append(Canary("deleted ED25519 key", gone.secret))
    with pytest.raises(binance.BinanceError) as deleted:
        services.gateway.api_restrictions(
            binance.Credentials(gone.api_key, gone.secret, binance.KeyType.ED25519)
        )
    run.exceptions.append(exception_text(deleted.value))
    broken = gone.secret.replace("\n", "\n!", 2)
    run.canaries.append(Canary("broken ED25519 PEM", broken))
    with pytest.raises(binance.BinanceError) as unreadable:
        services.gateway.api_restrictions(
            binance.Credentials(gone.api_key, broken, binance.KeyType.ED25519)
        )
    run.exceptions.append(exception_text(unreadable.value))


def _status_and_lists(run: Run) -> None:
    slack = run.stack.slack
    ack, _ = run.command("help")
    assert "/apikey" in all_text(ack)
    run.command("register")
    (opened,) = slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == Callback.REGISTER
    for text in ("status hmac-canary", "status mine", "status all", f"status <@{ALICE}|alice>"):
        _, url = run.command(text)
        report = all_text(run.reply_to(url))
        assert "hmac-canary" in report, (text, report[:300])
    _, url = run.command("status all", user=ADMIN)
    assert "rsa-canary" in all_text(run.reply_to(url))
    ack, _ = run.command("list")
    assert all(label in all_text(ack) for label in ("hmac-canary", "ed-canary", "rsa-canary"))
    ack, _ = run.command("rotate hmac-canary every 7d")
    assert "every 7 days" in all_text(ack)
    ack, _ = run.command("rotation")
    assert "hmac-canary" in all_text(ack)


def _rotate(run: Run) -> None:
    """Rotate the HMAC key to a new one through the rotate modal; Binance proves it."""
    stack, slack = run.stack, run.stack.slack
    before = len(slack.calls_to("views.open"))
    run.command("rotate hmac-canary")
    opened = slack.wait_for("views.open", count=before + 1)[-1]
    assert opened.params["view"]["callback_id"] == Callback.ROTATE
    metadata = opened.params["view"]["private_metadata"]
    new = stack.simulator.add_key(ip_restrict=True, permissions=TRADE)
    run.keys["hmac-canary (new)"] = new
    run.canaries.append(Canary("rotated-in HMAC", new.secret))
    values = rotate_form_values(key_type="HMAC", api_key=new.api_key, secret=new.secret)
    answer = run.send(
        run.client.submit(Callback.ROTATE.value, values, user_id=ALICE, private_metadata=metadata)
    )
    assert answer.get("response_action") == "update", answer
    stack.simulator.delete_key(run.keys["hmac-canary"].api_key)  # the owner deletes the old one
    run.tick(FixedClock(utcnow() + timedelta(minutes=11)), times=2)
    slack.wait_for("chat.postMessage", predicate=lambda c: "Rotation of" in all_text(c.params))
    with Session(stack.services.engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.label == "hmac-canary")).one()
    assert key.status == KeyStatus.ACTIVE.value


def _home(run: Run) -> None:
    slack = run.stack.slack
    event = {"type": "app_home_opened", "user": ALICE, "channel": "D0HOME", "tab": "home"}
    run.send(run.client.event(event))
    (published,) = slack.wait_for("views.publish")
    assert "ed-canary" in all_text(published.params)
    run.send(
        run.client.action(
            Action.HOME_CHECK,
            None,
            user_id=ALICE,
            response_url=None,
            view={"id": "V0HOME", "type": "home", "blocks": []},
        )
    )
    slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: "keys:" in c.params.get("text", "") and c.params["channel"] != ALERTS,
        timeout=15,
    )
    slack.wait_for("views.publish", count=2)


def _drift(run: Run) -> None:
    stack = run.stack
    stack.simulator.set_permissions(run.keys["hmac-canary (new)"].api_key, enableWithdrawals=True)
    clock = FixedClock(utcnow() + timedelta(hours=1))
    ensure_drift_checks(stack.services.engine, interval=timedelta(0), now=clock.now())
    make_due(stack.services.engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    run.tick(clock)
    stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Daily key check" in c.params.get("text", "")
    )


def _incident(run: Run) -> None:
    stack, slack, client = run.stack, run.stack.slack, run.client
    engine = stack.services.engine
    run.command("compromised ed-canary")

    def incident() -> Incident | None:
        with Session(engine) as session:
            found = session.exec(select(Incident)).first()
        return found if found is not None and len(found.messages) == 1 else None

    incident_id = wait_until(incident).id

    def tick(step: int) -> str:
        url = slack.response_url()
        run.send(
            client.action(
                Action.INCIDENT_TICK,
                f"{incident_id}:{step}",
                user_id=ALICE,
                response_url=url,
                message_ts="1.0",
            )
        )
        wait_until(lambda: ticked(step))
        return url

    def ticked(step: int) -> bool:
        with Session(engine) as session:
            return session.get(IncidentStep, (incident_id, step)) is not None

    premature = tick(1)  # the key still works: the bot asks Binance and warns
    assert "still accepts" in all_text(run.reply_to(premature))
    for step in (2, 3, 4, 5):
        tick(step)
    stack.simulator.delete_key(run.keys["ed-canary"].api_key)
    run.tick(FixedClock(utcnow() + timedelta(minutes=1)), times=3)  # probe, activity review
    with Session(engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.label == "ed-canary")).one()
    # Binance rejects it, which is no proof of a deletion: kept (sealed) until the close
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    run.send(
        client.action(
            Action.INCIDENT_CLOSE,
            incident_id,
            user_id=ALICE,
            response_url=slack.response_url(),
            message_ts="1.0",
        )
    )
    slack.wait_for(
        "views.open", predicate=lambda c: c.params["view"]["callback_id"] == Callback.INCIDENT_CLOSE
    )
    note = close_note_values(note="gist")
    run.send(
        client.submit(
            Callback.INCIDENT_CLOSE.value, note, user_id=ALICE, private_metadata=incident_id
        )
    )
    slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Incident closed" in c.params.get("text", "")
    )
    with Session(engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.label == "ed-canary")).one()
    assert key.status == KeyStatus.REVOKED.value and key.secret_sealed is None
    ack, _ = run.command("incidents")
    assert "ed-canary" in all_text(ack)


def _audit_and_remove(run: Run) -> None:
    for text in ("audit", "audit hmac-canary", "audit --days 7", "audit verify"):
        ack, _ = run.command(text, user=ADMIN)
        assert "Only admins" not in all_text(ack), text
    ack, _ = run.command("audit", user=ALICE)
    assert "Only admins can read the audit trail" in all_text(ack)
    ack, _ = run.command("remove rsa-canary")
    (button,) = [
        el
        for block in ack["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
        if el["action_id"] == Action.REMOVE_CONFIRM
    ]
    url = run.stack.slack.response_url()
    run.send(run.client.action(Action.REMOVE_CONFIRM, button["value"], response_url=url))
    assert "Removed" in all_text(run.reply_to(url))


def _leak_event(run: Run) -> None:
    event = {
        "type": "message",
        "channel": "C0DEV",
        "user": BOB,
        "text": f"is this ours? {random_api_key()}",
        "ts": "1700000001.000200",
    }
    run.send(run.client.event(event))
    run.stack.slack.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C0DEV")


# --- the scan --------------------------------------------------------------------------------


def _database_dump(engine: sa.Engine) -> dict[str, str]:
    dumps = {}
    with engine.connect() as connection:
        for table in sa.inspect(connection).get_table_names():
            columns = [c["name"] for c in sa.inspect(connection).get_columns(table)]
            rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            lines = []
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    text = value.decode("latin-1") if isinstance(value, bytes) else repr(value)
                    lines.append(f"{column}={text}")
            dumps[f"table {table}"] = "\n".join(lines)
    return dumps


def _database_files(workdir: Path) -> dict[str, str]:
    return {
        f"file {path.name}": path.read_bytes().decode("latin-1")
        for path in sorted(workdir.iterdir())
        if path.is_file() and path.name.startswith("apikey-bot.db")
    }


def test_no_secret_leaves_the_vault_during_a_run_of_every_command(
    stack, wire_sim, logs, caplog, uncaught, tmp_path
):
    run = Run(
        stack=stack,
        client=bot_client(stack),
        sim=wire_sim,
        answers=[],
        keys={},
        canaries=[],
        exceptions=[],
    )
    _register_canaries(run)
    _fail_registrations(run)
    _status_and_lists(run)
    _rotate(run)
    _home(run)
    _drift(run)
    _incident(run)
    _audit_and_remove(run)
    _leak_event(run)
    _exceptions_of_wrong_secrets(run)

    # -- logs
    log_texts = {"caplog": caplog.text, "root handler": "\n".join(logs.texts)}
    assert len(logs.texts) > 20
    assert any("leak warning posted" in t for t in logs.texts)  # the capture works
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(r.name.startswith("urllib3") and "signature=" in r.getMessage() for r in debug)

    # -- Slack: every recorded call, and every answer the bot gave over HTTP
    calls = stack.slack.calls
    methods = {call.method for call in calls}
    for expected in (
        "views.open",
        "views.publish",
        "chat.postMessage",
        "chat.postEphemeral",
        "chat.update",
        "response_url",
        "conversations.open",
    ):
        assert expected in methods, expected
    slack_texts = {
        f"slack call {i} {call.method}": json.dumps(call.params, ensure_ascii=False)
        for i, call in enumerate(calls)
    }
    slack_texts.update({f"bot answer {i}": text for i, text in enumerate(run.answers)})
    assert "hmac-canary" in "".join(slack_texts.values())

    # -- Binance: signed requests carry the API key in the header, the secret nowhere
    assert wire_sim.wire and len(wire_sim.wire) == len(wire_sim.request_log)
    signed = [line for line, _, _ in wire_sim.wire if "signature=" in line]
    assert len(signed) >= 10
    api_keys = {label: key.api_key for label, key in run.keys.items()}
    sim_texts: dict[str, str] = {}
    outside_header: list[str] = []
    for i, (line, headers, body) in enumerate(wire_sim.wire):
        kept = "\n".join(
            h for h in headers.splitlines() if not h.lower().startswith("x-mbx-apikey:")
        )
        text = f"{line}\n{headers}\n{body.decode('latin-1')}"
        sim_texts[f"binance request {i} {line.split('?')[0]}"] = text
        rest = f"{line}\n{kept}\n{body.decode('latin-1')}"
        outside_header += [
            f"API key of {label} outside X-MBX-APIKEY in request {i}"
            for label, api_key in api_keys.items()
            if api_key in rest
        ]
    for i, request in enumerate(wire_sim.request_log):
        sim_texts[f"simulator log {i}"] = repr(request)
        outside_header += [
            f"API key of {label} outside X-MBX-APIKEY in logged request {i}"
            for label, api_key in api_keys.items()
            if api_key in repr((request.method, request.path, request.params))
        ]
    assert {r.api_key for r in wire_sim.request_log} >= {
        run.keys["ed-canary"].api_key,
        run.keys["rsa-canary"].api_key,
    }
    assert outside_header == []

    # -- the database, table by table, and its files on disk
    db_texts = _database_dump(stack.services.engine)
    assert "hmac-canary" in db_texts["table api_keys"]
    with Session(stack.services.engine) as session:
        sealed = [k.secret_sealed for k in session.exec(select(ApiKey)).all() if k.secret_sealed]
    assert sealed  # the live keys' secrets are there, sealed
    db_texts.update(_database_files(tmp_path))

    # -- exceptions
    exception_texts = {f"exception {i}": text for i, text in enumerate(run.exceptions)}
    exception_texts.update({f"uncaught {i}": text for i, text in enumerate(uncaught)})
    assert any("signature" in t.lower() for t in run.exceptions)

    assert len(run.canaries) == 13 and len({c.secret for c in run.canaries}) == 13
    leaks = find_leaks(
        run.canaries, {**log_texts, **slack_texts, **sim_texts, **db_texts, **exception_texts}
    )
    assert leaks == []
    # nor the full API keys, in clear, in what people and logs see (masked only)
    clear_keys = [
        f"API key of {label} in {where}"
        for where, text in {**log_texts, **slack_texts, **db_texts, **exception_texts}.items()
        for label, api_key in api_keys.items()
        if api_key in text
    ]
    assert clear_keys == []


# --- rejected requests: what reaches the log when the bot refuses a request --------------------


@pytest.fixture(params=["DEBUG", "INFO"])
def bot_log(request, caplog) -> Iterator[tuple[str, io.StringIO]]:
    """The bot's own log handler, configured as `apikey-bot` configures it at LOG_LEVEL."""
    caplog.set_level(request.param)
    stream = io.StringIO()
    handler = configure_logging(request.param, handler=logging.StreamHandler(stream))
    try:
        yield request.param, stream
    finally:
        logging.getLogger().removeHandler(handler)


def test_rejected_requests_carrying_a_secret_leave_it_out_of_every_log(stack, bot_log, caplog):
    """Forged, stale, future-dated and malformed requests that carry a canary secret (a register
    form refused after the signing secret was rotated, a paste in a stale command): refused, and
    the secret is in no log record and no line the bot's handler writes, at DEBUG and at INFO.
    Bolt's own verification, which logs a rejected body at INFO, is driven directly too."""
    from slack_bolt import BoltRequest

    from tests.e2e import register_values
    from tests.slack_requests import sign, slash_command, view_submission

    level, stream = bot_log
    canaries = []
    bodies: dict[str, str] = {}
    for key_type in ("HMAC", "ED25519", "RSA"):
        key = stack.simulator.add_key(key_type=key_type, ip_restrict=True)
        canaries.append(Canary(f"{key_type} secret", key.secret))
        values = register_values(
            label=f"canary-{key_type}", api_key=key.api_key, secret=key.secret, key_type=key_type
        )
        form = view_submission(Callback.REGISTER.value, values)
        bodies[f"{key_type} register form"] = form
        broken = json.dumps({"type": "view_submission", "user": {"id": ALICE}, "view": values})
        bodies[f"{key_type} malformed submission"] = "payload=" + quote_plus(broken)
        bodies[f"{key_type} not JSON"] = "payload=" + quote_plus("{" + key.secret)
    hmac_secret = canaries[0].secret
    bodies["stale command with a paste"] = slash_command(
        f"status {hmac_secret}", response_url=stack.slack.response_url()
    )
    now = int(time.time())
    url = stack.url + "/slack/events"
    sent = 0
    for what, body in bodies.items():
        signed = sign(body)
        attempts = {
            "another signing secret": sign(body, secret="rotated-signing-secret"),
            "stale": sign(body, timestamp=now - 3600),
            "future-dated": sign(body, timestamp=now + 3600),
            "no signature": {"Content-Type": signed["Content-Type"]},
        }
        if "malformed" in what or "not JSON" in what:
            attempts["signed"] = signed  # signed, but not a shape any listener can read
        for how, headers in attempts.items():
            response = requests.post(url, data=body.encode(), headers=headers, timeout=10)
            assert response.status_code in (400, 401), (what, how, response.status_code)
            sent += 1
    # Bolt's own check, behind the gate: it logs a rejected body at INFO (not any more)
    for what, body in bodies.items():
        if "malformed" in what or "not JSON" in what:
            continue  # BoltRequest itself cannot be built from those
        forged = {k.lower(): [v] for k, v in sign(body, secret="rotated").items()}
        assert stack.app.dispatch(BoltRequest(body=body, headers=forged)).status == 401, what

    written = stream.getvalue()
    assert written.count("refused a") == sent  # one line for each, none holding its body
    raw = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert find_leaks(canaries, {f"{level} handler": written, f"{level} records": raw}) == []
    assert "Traceback" not in written


def test_the_redacting_filter_cleans_what_a_library_logs(bot_log):
    """Whatever a library puts in a record (its message, arguments, traceback), the bot's
    handler writes no secret: Slack bodies, key-shaped text, PEM blocks."""
    level, stream = bot_log
    secret = "S3cr3tK3y" + "q" * 55  # 64 letters and digits, shaped like an HMAC secret
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB1pZ2h0ZWVuY2hhcnNvZnNlY3JldA\n"
    pem += "-----END PRIVATE KEY-----"
    form = f"token=t&team_id=T0TEST&user_id=U0ALICE&text=status+{secret}&response_url=x"
    library = logging.getLogger("slack_sdk.web.base_client")
    library.warning("Sending a request - body: %s", form)
    library.warning("view state %s", {"api_key": {"value": secret}, "secret": {"value": pem}})
    try:
        raise ValueError(f"bad key {secret} / {pem}")
    except ValueError:
        library.error("request failed", exc_info=True)
    written = stream.getvalue()
    assert "request failed" in written and "Traceback" in written  # the record is kept...
    canaries = [Canary("hmac-shaped", secret), Canary("pem", pem)]
    assert find_leaks(canaries, {f"{level} handler": written}) == []  # ...without the secrets
