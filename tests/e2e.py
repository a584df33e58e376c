"""Helpers for end-to-end tests: a running local stack and register-modal submissions."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from bot.ids import Callback
from bot.sandbox.requests import FormValues, register_form_values
from bot.sandbox.stack import LocalStack
from bot.services.custody.keys import RegistrationForm, register_key
from storage.models import KeyPurpose, KeyType, utcnow
from tests.slack_requests import SIGNING_SECRET, BotClient, view_submission

TEAM = "T0TEST"
ALICE = "U0ALICE"
BOB = "U0BOB"


def register_values(
    *,
    label: str,
    api_key: str,
    secret: str,
    account: str = "main",
    key_type: str = "HMAC",
    purpose: str = "read_only",
    owner: str = ALICE,
    delivery: str | None = None,
    confirm: bool = False,
    service_ips: str | None = None,
    extras: tuple[str, ...] = (),
) -> FormValues:
    """The register modal's state, with the test workspace's defaults (account main, Alice)."""
    return register_form_values(
        service_ips=service_ips,
        extras=extras,
        label=label,
        account=account,
        owner=owner,
        purpose=purpose,
        key_type=key_type,
        api_key=api_key,
        secret=secret,
        delivery=delivery,
        confirm=confirm,
    )


def submit_registration(
    client: BotClient, *, user_id: str = ALICE, channel: str = "C0GENERAL", **values
):
    body = view_submission(
        Callback.REGISTER.value,
        register_values(**values),
        user_id=user_id,
        private_metadata=json.dumps({"channel": channel}),
    )
    return client.post(body)


def register_sim_key(stack: LocalStack, client: BotClient, sim_key, *, label: str, **kw):
    """Register a simulator key through the real modal path; returns the HTTP response."""
    return submit_registration(
        client,
        label=label,
        api_key=sim_key.api_key,
        secret=sim_key.secret,
        key_type=sim_key.key_type,
        **kw,
    )


def bot_client(stack: LocalStack) -> BotClient:
    """Signed requests to the stack's bot; ``command`` and ``action`` mint a ``response_url``
    on the stack's Slack stand-in when none is given (tests use the ``client`` fixture)."""
    return BotClient(stack.url, secret=SIGNING_SECRET, slack=stack.slack)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def all_text(payload) -> str:
    """Every string in a Slack payload, joined (to search rendered messages)."""
    return json.dumps(payload, ensure_ascii=False)


def register_directly(
    stack: LocalStack,
    label: str,
    *,
    owner: str = ALICE,
    now=None,
    permissions: dict | None = None,
    key_type: str = "HMAC",
    account: str = "main",
    purpose: KeyPurpose = KeyPurpose.TRADING,
    confirm: bool = True,
    ip_restrict: bool = True,
    extra_fields: dict | None = None,
):
    """Register a new simulator key through the service (Binance is asked, as in the modal).
    ``confirm``: the owner ticks "I accept the extra permissions" (registration refuses a key
    beyond its purpose without it; tests of that refusal pass False)."""
    sim_key = stack.simulator.add_key(
        account=account,
        key_type=key_type,
        permissions=permissions,
        ip_restrict=ip_restrict,
        extra_fields=extra_fields,
    )
    registered = register_key(
        engine=stack.services.engine,
        ring=stack.services.ring,
        gateway=stack.services.gateway,
        settings=stack.services.settings,
        form=RegistrationForm(
            team_id=TEAM,
            actor=owner,
            label=label,
            account_alias=account,
            owner_user_id=owner,
            purpose=purpose,
            key_type=KeyType(key_type),
            api_key=sim_key.api_key,
            secret=sim_key.secret,
            confirm_beyond_purpose=confirm,
        ),
        now=now or utcnow(),
    )
    return registered, sim_key


def audit_verdict(stack: LocalStack, user_id: str, *, timeout: float = 30.0) -> tuple[str, str]:
    """`/apikey audit verify` through the running bot: the ack's text, and the verdict that
    arrives afterwards at the command's response_url."""
    url = stack.slack.response_url()
    ack = BotClient(stack.url, secret=SIGNING_SECRET).command(
        "audit verify", user_id=user_id, response_url=url
    )
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=timeout
    )
    return all_text(ack.json()), all_text(reply.params)


def wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Wait until a bot started with ``python -m bot`` answers ``/healthz`` at ``base``; fail
    (with what it printed, if it prints to a pipe) when it exits or stays unhealthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            printed = proc.stdout.read() if proc.stdout is not None else ""
            pytest.fail(f"the bot exited during start-up: {printed}")
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail("the bot did not become healthy")
