"""Report-to-containment of governed keys: how long after `/apikey compromised <key>` Binance
rejects the key, deleted by the bot through the governor, with Binance answering in 100 ms.

    python bench/contain.py [--incidents 50] [--latency-ms 100] [--burst]

The bot runs as its own process (`python -m bot`, HTTP mode); the Binance simulator and the
Slack stand-in run in a third process, as Binance and Slack are remote for a real bot; the
requests come from this process, signed as Slack signs them. Everything goes through the bot
as a person would drive it: an admin registers the governor of each master account
(`/apikey governor desk-1`, the self-generated key made from the bot's public key, its API key
entered in the form), then one key per sub-account is created through the register form
("Create it in Binance for me"), then each is reported compromised. The setup runs with
Binance at 0 ms (it is not measured); the reports run at ``--latency-ms``.

Measured per incident, from the database the bot writes: report (Incident.raised_at) to
proof (Incident.contained_at: the governor deleted the key and a probe signed with the key
itself was rejected), and, from this process, the request's send time to the same proof.
Reports go one at a time (each waits for its containment), or all at once with ``--burst``.

The manual path has no figure here: the checklist asks a person to open Binance, find the
key and delete it by hand, which takes minutes and depends on who is awake; nothing models it.

Binance allows 180,000 UID weight a minute per management endpoint and account, 3,000 per
create or delete: at most 60 creations and 60 deletions a minute per master account, in the
simulator as in Binance. The bot plans to use 80 % of that (48), and today in ONE budget for
all its governors (its governor calls name no account: bot.binance.budget.on_account), so
past 48 in a minute it refuses or waits, whichever master account the key is in. The keys
are spread over master accounts of ``SUBS_PER_MASTER`` sub-accounts (as teams have several),
and the creations, and the reports one at a time, are paced to ``CALLS_PER_MINUTE``: what is
measured is the bot and Binance's latency, not a queue behind the limit. ``--burst`` sends
every report at once: past 48 it shows that queue.
Prints a table for people and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests
from _common import SIGNING_SECRET, start_bot
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.ids import Action, Block, Callback
from bot.model.governor import CREATE_IN_BINANCE
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.requests import (
    block_action,
    register_form_values,
    sign,
    slash_command,
    view_submission,
)
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.custody.key_pairs import waiting_pairs
from storage.crypto import generate_master_key
from storage.db import make_engine
from storage.models import ApiKey, BinanceAccount, Incident

TEAM = "T0TEST"
ADMIN = "U0BENCH"
SUBS_PER_MASTER = 45
# Under the 48 creations (and deletions) a minute the bot plans for all its governors.
CALLS_PER_MINUTE = 45
SERVICE_IP = "203.0.113.7"  # the trading service's address (documentation range)
# What an admin ticks for the governor in Binance: Read and Spot & margin trading only.
GOVERNOR_FLAGS = {"enableSpotAndMarginTrading": True}
SETUP_TIMEOUT = 180.0
CONTAIN_TIMEOUT = 180.0  # a burst past the limit waits for the next minute, then a retry


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (as bench/ack_latency.py)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- Binance and Slack, remote ----------------------------------------------------------------


class GovernedRemote:
    """The Binance simulator with master accounts and their sub-accounts (``subs``: master ->
    emails), and the Slack stand-in, in a child process; this process asks it what a person
    would do in Binance."""

    def __init__(self, *, subs: dict[str, list[str]]) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.Process(target=_serve, args=(child, subs), daemon=True)
        self._proc.start()
        info = self._conn.recv()
        self.binance_url: str = info["binance"]
        self.slack_url: str = info["slack"]

    def _ask(self, *command: object) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def response_url(self) -> str:
        return str(self._ask("response_url"))

    def set_latency(self, seconds: float) -> None:
        self._ask("latency", seconds)

    def make_self_generated_key(self, public_key_pem: str, *, master: str) -> str:
        """What the admin does in ``master`` with the bot's public key; returns the API key."""
        return str(self._ask("self_generated", public_key_pem, master))

    def deleted_keys(self) -> int:
        """How many keys of the sub-accounts Binance has deleted."""
        return int(self._ask("deleted"))

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


def _serve(conn: Any, subs: dict[str, list[str]]) -> None:
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(BinanceSimulator())
        slack = stack.enter_context(SlackStandIn())
        slack.add_user(ADMIN, name="bench", is_admin=True)
        for master, emails in subs.items():
            for email in emails:
                sim.add_sub_account(master=master, email=email)
        conn.send({"binance": sim.url, "slack": slack.url})
        while (command := conn.recv()) != "stop":
            kind, *args = command
            if kind == "response_url":
                conn.send(slack.response_url())
            elif kind == "latency":
                sim.latency = args[0]
                conn.send("ok")
            elif kind == "self_generated":
                key = sim.add_self_generated_key(
                    args[0], account=args[1], permissions=GOVERNOR_FLAGS, ip_restrict=True
                )
                conn.send(key.api_key)
            elif kind == "deleted":
                emails = [email for group in subs.values() for email in group]
                conn.send(sum(k.deleted for email in emails for k in sim.keys_of(email)))


# --- the bot, driven as Slack would ------------------------------------------------------------


@dataclass
class SlackSide:
    """Signed requests to the bot, as Slack sends them."""

    url: str
    remote: GovernedRemote

    def post(self, body: str) -> requests.Response:
        headers = sign(body, secret=SIGNING_SECRET)
        response = requests.post(self.url + "/slack/events", data=body, headers=headers, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"the bot answered HTTP {response.status_code}")
        return response

    def command(self, text: str) -> requests.Response:
        return self.post(
            slash_command(
                text, response_url=self.remote.response_url(), team_id=TEAM, user_id=ADMIN
            )
        )


def wait_for(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def register_governor(slack: SlackSide, engine: Engine, master: str, known: int) -> None:
    """`/apikey governor <master>`, the key made in Binance from the bot's public key, its API
    key entered in the small form; returns once the bot knows ``known`` sub-accounts."""
    slack.command(f"governor {master}")
    label = f"governor-{master}"
    pair = wait_for(
        "the governor's key pair",
        lambda: next((p for p in waiting_pairs(engine, TEAM) if p.label == label), None),
        30,
    )
    api_key = slack.remote.make_self_generated_key(pair.public_key_pem, master=master)
    slack.post(
        block_action(
            Action.PAIR_ENTER_KEY.value,
            pair.pending_id,
            user_id=ADMIN,
            team_id=TEAM,
            response_url=slack.remote.response_url(),
        )
    )
    values: dict[str, Any] = {
        Block.PAIR_API_KEY: {Action.PAIR_API_KEY: {"type": "plain_text_input", "value": api_key}}
    }
    slack.post(
        view_submission(
            Callback.PAIR_COMPLETE.value,
            values,
            user_id=ADMIN,
            team_id=TEAM,
            private_metadata=pair.pending_id,
        )
    )
    wait_for("the governed sub-accounts", lambda: _governed(engine) >= known, 60)


def create_keys(slack: SlackSide, engine: Engine, subs: list[str]) -> None:
    """One trading key per sub-account, created in Binance by the bot from the register form
    (paced: at most ``CALLS_PER_MINUTE`` a minute)."""
    pace = Pace(len(subs))
    for i, email in enumerate(subs):
        pace.wait()
        body = view_submission(
            Callback.REGISTER.value,
            register_form_values(
                label=_label(i),
                account=email,
                owner=ADMIN,
                purpose="trading",
                key_type=CREATE_IN_BINANCE,
                api_key="",
                secret="",
                service_ips=SERVICE_IP,
            ),
            user_id=ADMIN,
            team_id=TEAM,
            private_metadata=json.dumps({"channel": "C0BENCH"}),
        )
        slack.post(body)
    wait_for("the created keys", lambda: _created(engine) >= len(subs), SETUP_TIMEOUT)


def _label(i: int) -> str:
    return f"bot-{i:03d}"


def _governed(engine: Engine) -> int:
    with Session(engine) as session:
        rows = session.exec(
            select(BinanceAccount).where(col(BinanceAccount.sub_account_email).is_not(None))
        ).all()
    return len(rows)


def _created(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(ApiKey).where(ApiKey.created_via == "governor")).all())


def _incident(engine: Engine, label: str) -> Incident | None:
    with Session(engine) as session:
        return session.exec(select(Incident).where(Incident.label == label)).first()


def _contained(engine: Engine, label: str) -> Incident | None:
    incident = _incident(engine, label)
    if incident is None or incident.contained_at is None:
        return None
    return incident


@dataclass(frozen=True)
class Timing:
    label: str
    report_s: float  # Incident.raised_at -> Incident.contained_at
    request_s: float  # the signed request sent -> Incident.contained_at
    how: str


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Pace:
    """Spaces ``count`` management calls so none waits for Binance's UID limit: one every
    60 / ``CALLS_PER_MINUTE`` seconds, when there are more than ``CALLS_PER_MINUTE``."""

    def __init__(self, count: int) -> None:
        self.gap = 60 / CALLS_PER_MINUTE if count > CALLS_PER_MINUTE else 0.0
        self.last: float | None = None

    def wait(self) -> None:
        if self.last is not None:
            time.sleep(max(0.0, self.last + self.gap - time.monotonic()))
        self.last = time.monotonic()


def report_all(slack: SlackSide, engine: Engine, count: int, *, burst: bool) -> list[Timing]:
    """`/apikey compromised bot-NNN` for each key; one at a time (paced, each waiting for its
    containment), or all at once."""
    sent: dict[str, datetime] = {}
    pace = Pace(0 if burst else count)
    for i in range(count):
        pace.wait()
        label = _label(i)
        sent[label] = datetime.now(UTC)
        slack.command(f"compromised {label}")
        if not burst:
            wait_for(
                f"{label} to be contained", partial(_contained, engine, label), CONTAIN_TIMEOUT
            )
    timings = []
    for label, at in sent.items():
        incident = wait_for(
            f"{label} to be contained", partial(_contained, engine, label), CONTAIN_TIMEOUT
        )
        contained = _utc(incident.contained_at)
        timings.append(
            Timing(
                label=label,
                report_s=(contained - _utc(incident.raised_at)).total_seconds(),
                request_s=(contained - at).total_seconds(),
                how=str(incident.containment),
            )
        )
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--burst", action="store_true", help="report every key at once")
    args = parser.parse_args()
    if args.incidents < 1:
        parser.error("--incidents must be at least 1")
    subs = [f"bot-{i:03d}@example.com" for i in range(args.incidents)]
    by_master = {
        f"desk-{n // SUBS_PER_MASTER + 1}": subs[n : n + SUBS_PER_MASTER]
        for n in range(0, len(subs), SUBS_PER_MASTER)
    }
    remote = GovernedRemote(subs=by_master)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        bot = start_bot(
            Path(tmp),
            remote=remote,  # type: ignore[arg-type]  # the same two URLs as RemoteServices
            database_url=database_url,
            master=generate_master_key("k1").encoded(),
            admin_user_ids=ADMIN,
            bot_egress_ips="127.0.0.1",
            alert_channel="C0ALERTS",
        )
        engine = make_engine(database_url)
        try:
            slack = SlackSide(bot.url, remote)
            started = time.monotonic()
            known = 0
            for master, emails in by_master.items():
                known += len(emails)
                register_governor(slack, engine, master, known)
            create_keys(slack, engine, subs)
            setup_s = time.monotonic() - started
            remote.set_latency(args.latency_ms / 1000)
            timings = report_all(slack, engine, args.incidents, burst=args.burst)
            deleted = remote.deleted_keys()
        finally:
            engine.dispose()
            bot.stop()
            remote.stop()
    report = [t.report_s for t in timings]
    request = [t.request_s for t in timings]
    mode = "all at once" if args.burst else "one at a time"
    print(
        f"Containment of {len(timings)} governed keys reported compromised ({mode}), "
        f"Binance latency {args.latency_ms} ms (setup: {len(by_master)} governor(s) and "
        f"{len(subs)} keys created through the bot in {setup_s:.1f} s)"
    )
    print(f"{'measured from':>32} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for name, values in (("report (raised_at)", report), ("request sent", request)):
        print(
            f"{name:>32} {statistics.median(values):>7.2f} {percentile(values, 95):>7.2f} "
            f"{max(values):>7.2f}"
        )
    print(f"{'manual path (the checklist)':>32}   minutes: a person deletes it in Binance's UI")
    hows = sorted({t.how for t in timings})
    print(f"contained as: {', '.join(hows)}; keys Binance deleted: {deleted} of {len(subs)}")
    print("target: p95 <= 3 s from the report")
    print(
        json.dumps(
            {
                "bench": "contain",
                "incidents": len(timings),
                "latency_ms": args.latency_ms,
                "burst": args.burst,
                "p50_s": round(statistics.median(report), 3),
                "p95_s": round(percentile(report, 95), 3),
                "max_s": round(max(report), 3),
                "request_p95_s": round(percentile(request, 95), 3),
                "deleted": deleted,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
