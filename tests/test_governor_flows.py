"""The governor end to end, through signed Slack requests and the Binance simulator: a key
created in a sub-account without anyone seeing a secret, and a governed key reported
compromised deleted (or quarantined) in seconds, proven by probing, audited and announced."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.job_queue.scheduler import FixedClock
from bot.model.governor import CREATE_IN_BINANCE
from storage.models import (
    ApiKey,
    AuditEvent,
    BinanceAccount,
    GovernorMint,
    Incident,
    IncidentStep,
    KeyStatus,
    MintState,
    utcnow,
)
from tests.e2e import ALICE, all_text, submit_registration, wait_until
from tests.test_governor_registration import ADMIN, _ask, _make_in_binance, _steps
from tests.test_key_pairs import _button_value, _enter_key, _key
from tests.test_secret_leak_scan import Canary, find_leaks

SUB = "bot1@example.com"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, bot_egress_ips="127.0.0.1", alert_channel=ALERTS)


def govern(stack, client, *, subs=(SUB,)) -> ApiKey:
    """A master account "master" with sub-accounts, and its governor registered by an admin."""
    for email in subs:
        stack.simulator.add_sub_account(master="master", email=email)
    _ask(client, stack, "governor master")
    message = _steps(stack, "governor-master")
    sim_key = _make_in_binance(stack, "governor-master")
    _enter_key(stack, client, _button_value(message), sim_key.api_key, user=ADMIN)
    wait_until(lambda: _key(stack, "governor-master") is not None, timeout=15)
    wait_until(lambda: _governed(stack, subs[0]) is not None, timeout=15)
    governor = _key(stack, "governor-master")
    assert governor is not None
    return governor


def _governed(stack, email: str) -> BinanceAccount | None:
    with Session(stack.services.engine) as session:
        return session.exec(
            select(BinanceAccount).where(BinanceAccount.sub_account_email == email)
        ).first()


def create(client, *, label="maker", account=SUB, ips="203.0.113.7", extras=(), **kw):
    return submit_registration(
        client,
        label=label,
        api_key="",
        secret="",
        account=account,
        key_type=CREATE_IN_BINANCE,
        purpose=kw.pop("purpose", "trading"),
        service_ips=ips,
        extras=extras,
        **kw,
    )


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_key_is_created_in_binance_with_exactly_what_its_purpose_needs(stack, client, caplog):
    caplog.set_level(logging.DEBUG)
    govern(stack, client)
    answer = create(client, extras=("futures",))
    assert answer.status_code == 200
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    key = _key(stack, "maker")
    assert key.created_via == "governor" and key.status == KeyStatus.ACTIVE.value
    assert key.ip_addresses == ["203.0.113.7", "127.0.0.1"]
    (sim_key,) = stack.simulator.keys_of(SUB)
    assert sim_key.key_type == "ED25519" and sim_key.ip_list == ["203.0.113.7", "127.0.0.1"]
    flags = sim_key.permissions
    assert flags["enableSpotAndMarginTrading"] and flags["enableFutures"]
    assert not flags["enableMargin"] and not flags["enableVanillaOptions"]
    assert not flags["permitsUniversalTransfer"] and not flags["enableWithdrawals"]
    # The key was verified by Binance, asked with the new key itself.
    assert any(r.api_key == sim_key.api_key for r in stack.simulator.request_log)
    with Session(stack.services.engine) as session:
        (mint,) = session.exec(select(GovernorMint)).all()
    assert mint.state == MintState.CREATED.value and mint.private_key_sealed is None
    assert mint.created_key_id == key.id
    (made,) = _events(stack, "key.create")
    assert made.detail["sub_account"] == SUB
    calls = [e.detail for e in _events(stack, "governor.call")]
    assert any(c["method"] == "POST" and c["outcome"] == "ok" for c in calls)
    # Announced in the alert channel (by the job the call scheduled).
    stack.wait_idle()
    stack.tick(FixedClock(utcnow()), times=2)
    stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            c.params.get("channel") == ALERTS and "created the key" in all_text(c.params)
        ),
        timeout=30,
    )
    # A read that worked (the sub-account list) is audited, not announced.
    assert any(c["endpoint"] == "/sapi/v1/sub-account/list" for c in calls)
    assert not any("listed the sub-accounts" in all_text(c.params) for c in stack.slack.calls)
    # The private key lives only in its sealed column: not in Slack, the logs, Binance's
    # requests or any other column.
    private_pem = stack.services.ring.open_text(key.secret_sealed, context=key.secret_context())
    stack.wait_idle()
    slack = {f"slack {i}": json.dumps(c.params) for i, c in enumerate(stack.slack.calls)}
    with stack.services.engine.connect() as connection:
        dump = {
            t: repr(connection.execute(sa.text(f'SELECT * FROM "{t}"')).all())
            for t in sa.inspect(stack.services.engine).get_table_names()
        }
    found = find_leaks(
        [Canary("minted private key", private_pem)],
        {**slack, **dump, "binance": repr(stack.simulator.request_log), "log": caplog.text},
    )
    assert found == []


def test_creating_in_an_account_without_a_governor_is_refused(stack, client):
    answer = create(client, account="main")
    body = answer.json()
    assert body.get("response_action") in ("errors", "update")
    wait_until(
        lambda: (
            "not a sub-account of a master account with a governor"
            in json.dumps([c.params for c in stack.slack.calls])
            or "not a sub-account" in json.dumps(body)
        ),
        timeout=10,
    )
    assert _key(stack, "maker") is None
    assert stack.simulator.keys_of("main") == []


def test_a_refused_creation_keeps_nothing(stack, client):
    govern(stack, client)
    stack.simulator.fail_kyc_ip_check = True
    create(client)
    wait_until(lambda: _mints(stack, MintState.REFUSED), timeout=20)
    assert _key(stack, "maker") is None
    assert stack.simulator.keys_of(SUB) == []
    (mint,) = _mints(stack, MintState.REFUSED)
    assert mint.private_key_sealed is None


def _mints(stack, state: MintState) -> list[GovernorMint]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(select(GovernorMint).where(GovernorMint.state == state.value)).all()
        )


def _incident(stack, label: str) -> Incident | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident).where(Incident.label == label)).first()


def test_a_governed_key_reported_compromised_is_deleted_and_proven(stack, client):
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "deleted",
        timeout=20,
    )
    assert sim_key.deleted
    incident = _incident(stack, "maker")
    assert incident.contained_at >= incident.raised_at and incident.key_dead_at is not None
    with Session(stack.services.engine) as session:
        step = session.get(IncidentStep, (incident.id, 1))
    assert step.ticked_by == "bot" and step.automatic
    (contained,) = _events(stack, "incident.contained")
    assert contained.detail["how"] == "deleted" and contained.detail["seconds_from_report"] >= 0
    deletes = [e.detail for e in _events(stack, "governor.call") if e.detail["method"] == "DELETE"]
    assert deletes and deletes[0]["why"] == "contain" and deletes[0]["outcome"] == "ok"
    stack.slack.wait_for(
        "chat.update",
        predicate=lambda c: "Deleted by the bot through Binance's API" in all_text(c.params),
        timeout=30,
    )
    listing = client.command("incidents", user_id=ALICE, response_url=stack.slack.response_url())
    assert "contained by the bot in" in all_text(listing.json())


def test_a_key_of_an_ungoverned_account_is_left_to_people(stack, client):
    sim_key = stack.simulator.add_key(account="main", permissions={"enableReading": True})
    from tests.e2e import register_sim_key

    register_sim_key(stack, client, sim_key, label="manual")
    wait_until(lambda: _key(stack, "manual") is not None, timeout=15)
    client.command("compromised manual", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(lambda: _incident(stack, "manual") is not None, timeout=15)
    stack.wait_idle()
    assert _incident(stack, "manual").containment is None
    assert not sim_key.deleted
    assert _events(stack, "governor.call") == []


def test_when_binance_refuses_the_deletion_the_checklist_says_so_and_nothing_is_lost(stack, client):
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    stack.simulator.inject_fault("503", count=50, path="/sapi/v1/sub-account/subAccountApi")
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "failed",
        timeout=20,
    )
    assert not sim_key.deleted
    incident = _incident(stack, "maker")
    assert "could not contain it" in incident.containment_note
    assert _events(stack, "incident.containment_failed")
    with Session(stack.services.engine) as session:
        key = session.get(ApiKey, incident.key_id)
    assert key.secret_sealed is not None  # still probed: nothing was lost


@pytest.fixture
def quarantine_settings() -> dict[str, object]:
    return dict(
        admin_user_ids=ADMIN,
        bot_egress_ips="127.0.0.1",
        alert_channel=ALERTS,
        contain_on_report="quarantine",
    )


def test_quarantine_cuts_the_ip_list_to_the_bots_own(make_stack, quarantine_settings):
    from tests.e2e import bot_client

    stack = make_stack(**quarantine_settings)
    client = bot_client(stack)
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "quarantined",
        timeout=20,
    )
    assert sim_key.ip_list == ["127.0.0.1"] and not sim_key.deleted
    assert _incident(stack, "maker").quarantined_from == ["203.0.113.7", "127.0.0.1"]
    # A thief elsewhere is refused; the bot, on its own address, still reaches the key.
    port = int(stack.simulator.url.rsplit(":", 1)[1])
    thief = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0)
    )
    thief.request(
        "GET",
        "/sapi/v1/account/apiRestrictions?timestamp=1&signature=x",
        headers={"X-MBX-APIKEY": sim_key.api_key},
    )
    assert json.loads(thief.getresponse().read())["code"] == -2015
    thief.close()


def test_a_false_alarm_gives_a_quarantined_key_its_ip_list_back(make_stack, quarantine_settings):
    from tests.e2e import bot_client
    from tests.test_incident_lifecycle import FALSE_ALARM, _close

    stack = make_stack(**quarantine_settings)
    client = bot_client(stack)
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "quarantined",
        timeout=20,
    )
    stack.wait_idle()
    answer = _close(stack, _incident(stack, "maker").id, outcome=FALSE_ALARM, note="a test")
    assert answer.json()["response_action"] == "update", answer.json()
    assert set(sim_key.ip_list) == {"203.0.113.7", "127.0.0.1"}
    incident = _incident(stack, "maker")
    assert incident.outcome == FALSE_ALARM and "IP list given back" in incident.containment_note
    assert _key(stack, "maker").status == KeyStatus.ACTIVE.value
    restores = [e.detail for e in _events(stack, "governor.call") if e.detail["why"] == "restore"]
    assert restores and all(r["outcome"] == "ok" for r in restores)


def _press_successor(stack, client, incident_id: str, user: str):
    return client.action(
        "apikey_incident_successor", incident_id, user_id=user, trigger_id="1.2.successor"
    )


def test_one_click_makes_a_successor_with_the_same_permissions_and_ips(stack, client):
    govern(stack, client)
    create(client, extras=("futures",))
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (old_sim,) = stack.simulator.keys_of(SUB)
    old_id = _key(stack, "maker").id
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "deleted",
        timeout=20,
    )
    stack.wait_idle()
    stack.slack.wait_for(
        "chat.update",
        predicate=lambda c: "Create a successor" in json.dumps(c.params),
        timeout=20,
    )
    incident = _incident(stack, "maker")
    pressed = _press_successor(stack, client, incident.id, ALICE)
    assert pressed.status_code == 200
    wait_until(lambda: _incident(stack, "maker").successor_key_id is not None, timeout=20)
    stack.wait_idle()
    with Session(stack.services.engine) as session:
        old = session.get(ApiKey, old_id)
        new = session.get(ApiKey, _incident(stack, "maker").successor_key_id)
    assert new is not None and new.label == "maker"
    assert new.id != old_id and new.status == KeyStatus.ACTIVE.value
    assert old.status == KeyStatus.REVOKED.value and old.secret_sealed is None
    assert new.ip_addresses == ["203.0.113.7", "127.0.0.1"] and new.created_via == "governor"
    live = [k for k in stack.simulator.keys_of(SUB) if not k.deleted]
    assert len(live) == 1 and live[0].api_key != old_sim.api_key
    assert (
        live[0].permissions["enableFutures"] and live[0].permissions["enableSpotAndMarginTrading"]
    )
    assert live[0].ip_list == ["203.0.113.7", "127.0.0.1"]
    # Step 3 is read again, through the successor (the deleted key reads nothing now).
    stack.tick(FixedClock(utcnow()), times=2)
    stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: "Step 3: withdrawals and deposits" in all_text(c.params),
        timeout=20,
    )
    # A second press makes nothing more.
    again = _press_successor(stack, client, incident.id, ALICE)
    assert again.status_code == 200
    stack.wait_idle()
    assert len([k for k in stack.simulator.keys_of(SUB) if not k.deleted]) == 1


def test_someone_elses_successor_is_refused_and_audited(stack, client):
    from tests.e2e import BOB

    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    client.command("compromised maker", user_id=ALICE, response_url=stack.slack.response_url())
    wait_until(
        lambda: (i := _incident(stack, "maker")) is not None and i.containment == "deleted",
        timeout=20,
    )
    stack.wait_idle()
    _press_successor(stack, client, _incident(stack, "maker").id, BOB)
    stack.wait_idle()
    assert _incident(stack, "maker").successor_key_id is None
    denied = [e.detail["attempted"] for e in _events(stack, "access.denied")]
    assert "create a successor key" in denied


def test_sub_accounts_without_a_known_key_are_unmanaged_findings(stack, client):
    govern(stack, client, subs=(SUB, "idle@example.com"))
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    stack.simulator.add_sub_account(master="master", email="new@example.com")
    client.command("status all", user_id=ADMIN, response_url=stack.slack.response_url())
    (report,) = stack.slack.wait_for(
        "response_url",
        predicate=lambda c: "Unmanaged sub-accounts" in all_text(c.params),
        timeout=20,
    )
    text = all_text(report.params)
    assert "idle@example.com" in text and "new@example.com" in text
    assert SUB not in text.split("Unmanaged sub-accounts")[1].split(":")[0]
    # The daily digest says it too.
    from bot.services.oversight.drift import check_team

    digest = check_team(
        engine=stack.services.engine,
        ring=stack.services.ring,
        gateway=stack.services.gateway,
        team_id="T0TEST",
        now=utcnow(),
    )
    assert digest.unmanaged == ["idle@example.com", "new@example.com"]


# --- a key Binance made must never live unknown -------------------------------------------------


@contextlib.contextmanager
def failing_insert_of_keys(engine):
    """The database refuses to store any new api_keys row (as if the bot died at its commit)."""

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO API_KEYS"):
            raise RuntimeError("injected: the database went away")

    sa.event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", refuse)


def test_a_key_made_but_not_stored_is_deleted_again(stack, client):
    govern(stack, client)
    with failing_insert_of_keys(stack.services.engine):
        create(client)
        wait_until(lambda: _mints(stack, MintState.REFUSED), timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    assert sim_key.deleted  # Binance made it; the bot deleted it again
    assert _key(stack, "maker") is None
    (mint,) = _mints(stack, MintState.REFUSED)
    assert mint.outcome == "deleted again" and mint.private_key_sealed is None


def test_a_key_made_but_neither_stored_nor_deleted_is_named_to_the_admins(stack, client):
    govern(stack, client)
    stack.simulator.inject_fault("503", count=20, path="/sapi/v1/sub-account/subAccountApi")
    with failing_insert_of_keys(stack.services.engine):
        create(client)
        wait_until(lambda: stack.simulator.keys_of(SUB), timeout=20)
        stack.wait_idle()
    (sim_key,) = stack.simulator.keys_of(SUB)
    assert not sim_key.deleted
    (mint,) = _mints(stack, MintState.ASKING)
    assert mint.api_key_masked is not None
    stack.tick(FixedClock(utcnow() + timedelta(minutes=6)), times=2)
    (told,) = stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: mint.api_name in all_text(c.params),
        timeout=20,
    )
    assert told.params["channel"] == ALERTS and mint.api_key_masked in all_text(told.params)
    (settled,) = _mints(stack, MintState.UNKNOWN)
    assert settled.private_key_sealed is None
    assert _events(stack, "governor.mint_unknown")


def test_a_lost_answer_is_named_to_the_admins(make_stack):
    from tests.e2e import bot_client

    stack = make_stack(
        admin_user_ids=ADMIN,
        bot_egress_ips="127.0.0.1",
        alert_channel=ALERTS,
        binance_timeout_seconds=1.0,
    )
    client = bot_client(stack)
    govern(stack, client)
    stack.simulator.latency = 2.5  # Binance makes the key, but answers after the bot gave up
    try:
        create(client)
        wait_until(lambda: stack.simulator.keys_of(SUB), timeout=20)
        stack.wait_idle(timeout=20)
    finally:
        stack.simulator.latency = 0
    (mint,) = _mints(stack, MintState.ASKING)
    assert _key(stack, "maker") is None
    stack.tick(FixedClock(utcnow() + timedelta(minutes=6)), times=2)
    stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            mint.api_name in all_text(c.params) and "never got the answer" in all_text(c.params)
        ),
        timeout=20,
    )


@pytest.mark.postgres
def test_two_replicas_contain_a_key_once(make_stack, pg_url, sim, tmp_path):
    """Two replicas on one PostgreSQL both try to contain the same report at once: Binance is
    asked to delete the key exactly once, and the containment is recorded once."""
    import threading

    from bot.services.governor.containment import contain_with
    from bot.services.response.incidents import raise_incident
    from storage.crypto import generate_master_key
    from tests.e2e import bot_client

    ring = generate_master_key("k1").encoded()
    shared = dict(
        database_url=pg_url,
        simulator=sim,
        master_keys=ring,
        admin_user_ids=ADMIN,
        bot_egress_ips="127.0.0.1",
        alert_channel=ALERTS,
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_stack(workdir=tmp_path / "a", **shared)
    second = make_stack(workdir=tmp_path / "b", **shared)
    client = bot_client(first)
    govern(first, client)
    create(client)
    wait_until(lambda: _key(first, "maker") is not None, timeout=20)
    raised = raise_incident(
        engine=first.services.engine,
        team_id="T0TEST",
        label="maker",
        actor=ALICE,
        channel=None,
        now=utcnow(),
    )
    start = threading.Barrier(2)
    results = []

    def contain(stack) -> None:
        start.wait()
        results.append(contain_with(stack.services, raised.incident_id, actor=ALICE))

    threads = [threading.Thread(target=contain, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    deletes = [
        r
        for r in sim.request_log
        if r.method == "DELETE" and r.path == "/sapi/v1/sub-account/subAccountApi"
    ]
    assert len(deletes) == 1
    assert sorted(r is None for r in results) == [False, True]  # one did it, one stood back
    assert _incident(first, "maker").containment == "deleted"
    assert len(_events(first, "incident.contained")) == 1


def test_a_member_cannot_have_a_key_created_for_someone_else(stack, client):
    from tests.e2e import BOB

    govern(stack, client)
    before = len(stack.simulator.request_log)
    answer = create(client, owner=BOB)  # Alice, not an admin, names Bob as the owner
    body = answer.json()
    assert body["response_action"] == "errors"
    assert "on someone else's behalf" in " ".join(body["errors"].values())
    stack.wait_idle()
    assert stack.simulator.keys_of(SUB) == []
    assert not any(r.method == "POST" for r in stack.simulator.request_log[before:])


def test_a_forged_universal_transfer_needs_the_owners_own_tick(stack, client):
    govern(stack, client)
    answer = create(client, extras=("transfer",))  # not ticked "I accept"
    stack.wait_idle()
    assert stack.simulator.keys_of(SUB) == []
    assert _key(stack, "maker") is None
    assert "Universal transfer" in all_text(answer.json()) or any(
        "Universal transfer" in all_text(c.params) for c in stack.slack.calls
    )


def test_binance_rate_limiting_a_creation_is_said_clearly_and_keeps_nothing(stack, client):
    govern(stack, client)
    stack.simulator.inject_fault("429", count=5, path="/sapi/v2/sub-account/subAccountApi")
    answer = create(client)
    wait_until(lambda: _mints(stack, MintState.REFUSED), timeout=20)
    stack.wait_idle()
    assert stack.simulator.keys_of(SUB) == [] and _key(stack, "maker") is None
    said = all_text(answer.json()) + json.dumps([c.params for c in stack.slack.calls])
    assert "Nothing was created" in said and "Traceback" not in said


def test_no_ip_restriction_is_the_owners_choice_only(stack, client):
    govern(stack, client)
    create(client, ips="", extras=("unrestricted",), owner="U0BOB", user_id=ADMIN)
    stack.wait_idle()
    assert stack.simulator.keys_of(SUB) == []
    create(client, label="open", ips="", extras=("unrestricted",))  # Alice, for herself
    wait_until(lambda: _key(stack, "open") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    assert sim_key.ip_list is None and not sim_key.ip_restrict


def _remove(stack, client, key_id: str, user: str):
    return client.action("apikey_remove_confirm", key_id, user_id=user)


def test_removing_a_governed_key_deletes_it_in_binance_first(stack, client):
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    asked = client.command("remove maker", user_id=ALICE, response_url=stack.slack.response_url())
    assert "deletes it in Binance first" in all_text(asked.json())
    _remove(stack, client, _key(stack, "maker").id, ALICE)
    stack.wait_idle()
    assert sim_key.deleted
    assert _key(stack, "maker").status == KeyStatus.REMOVED.value
    said = json.dumps([c.params for c in stack.slack.calls])
    assert "deleted in Binance too" in said


def test_a_governed_key_binance_will_not_delete_is_not_removed(stack, client):
    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    stack.simulator.inject_fault("503", count=5, path="/sapi/v1/sub-account/subAccountApi")
    _remove(stack, client, _key(stack, "maker").id, ALICE)
    stack.wait_idle()
    assert not sim_key.deleted
    key = _key(stack, "maker")
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None
    said = json.dumps([c.params for c in stack.slack.calls])
    assert "Nothing was removed" in said


def test_someone_elses_governed_key_is_not_deleted_by_a_member(stack, client):
    from tests.e2e import BOB

    govern(stack, client)
    create(client)
    wait_until(lambda: _key(stack, "maker") is not None, timeout=20)
    (sim_key,) = stack.simulator.keys_of(SUB)
    before = len(stack.simulator.request_log)
    _remove(stack, client, _key(stack, "maker").id, BOB)
    stack.wait_idle()
    assert not sim_key.deleted
    assert not any(r.method == "DELETE" for r in stack.simulator.request_log[before:])
    assert _key(stack, "maker").status == KeyStatus.ACTIVE.value
