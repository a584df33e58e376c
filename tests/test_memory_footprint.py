"""What the bot keeps in memory (bench/memory.py measures the whole; these pin the causes).

- A key whose check failed (rejected by Binance, refused by the weight budget) keeps nothing
  alive while its result waits to be judged: no traceback, so no frame holding the key's
  python-binance client (and the secret that client signs with). A team-wide status of
  10,000 keys would otherwise hold 10,000 clients at once.
- What Binance said about each key is read back from the database with one copy of each
  field name for all keys, not one per key.
- Start-up loads only what the settings need: without AWS settings (no KMS master key, no
  Secrets Manager sink) the AWS SDK is not imported.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from binance.client import Client as BinanceClient

from bot.binance import BinanceGateway, Credentials, KeyRejected, RateLimited, WeightBudget
from bot.binance.transport import WITHDRAW_ADDRESSES_PATH
from bot.sandbox.binance_simulator import BinanceSimulator
from storage.db import session_scope
from storage.models import ApiKey
from tests.e2e import ALICE, all_text, bot_client, running_bot, wait_until
from tests.factories import WITHDRAW, random_api_key, stored_key
from tests.slack_requests import BotClient, slash_command

REJECTED = 150  # more keys than the gateway keeps clients for (64 recently used)
CLIENT_CACHE = 64


def _clients_of(api_keys: set[str]) -> int:
    """How many python-binance clients for these keys are alive in this process."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, BinanceClient) and getattr(o, "API_KEY", None) in api_keys
    )


def test_a_team_wide_status_of_rejected_keys_keeps_no_binance_client_per_key(make_stack):
    stack = make_stack(admin_user_ids=ALICE)
    sim = stack.simulator
    withdrawing = sim.add_key(permissions=WITHDRAW, ip_restrict=True)
    gone = {random_api_key() for _ in range(REJECTED)}  # Binance knows none of them: -2015
    with session_scope(stack.services.engine) as session:
        stored_key(
            session,
            stack.services.ring,
            label="withdrawals",
            api_key=withdrawing.api_key,
            secret=withdrawing.secret,
        )
        for i, api_key in enumerate(sorted(gone)):
            stored_key(session, stack.services.ring, label=f"gone-{i:03d}", api_key=api_key)
    # The report is judged after every key was checked: hold the bot there (its read of the
    # account's withdrawal addresses hangs until the bot's Binance timeout) and look inside.
    sim.hang_seconds = 10
    sim.inject_fault("timeout", path=WITHDRAW_ADDRESSES_PATH)
    url = stack.slack.response_url(command=True)
    ack = bot_client(stack).command("status all", user_id=ALICE, response_url=url)
    assert ack.status_code == 200
    wait_until(lambda: any(r.path == WITHDRAW_ADDRESSES_PATH for r in sim.request_log), 60)
    alive = _clients_of(gone)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=60
    )
    text = all_text(reply.params)
    assert f"{REJECTED + 1} keys" in text and "Traceback" not in text
    assert alive <= CLIENT_CACHE, f"{alive} clients of rejected keys alive mid-report"


def test_checks_refused_by_the_budget_keep_no_client_per_key():
    with BinanceSimulator() as sim:
        keys = [sim.add_key() for _ in range(40)]
        creds = [Credentials(k.api_key, k.secret) for k in keys]
        budget = WeightBudget(limit=1, max_wait=0.0)  # one request goes, the rest are refused
        with BinanceGateway(
            sim.url, timeout=2.0, max_workers=4, budget=budget, client_cache_size=4
        ) as gateway:
            results = gateway.check_many(creds)
            refused = [r for r in results if isinstance(r.error, RateLimited)]
            assert len(refused) == 39
            alive = _clients_of({k.api_key for k in keys})
            assert alive <= 4, f"{alive} clients alive, the gateway keeps 4"
            assert all(r.error.__traceback__ is None for r in refused)


def test_checking_many_keys_holds_little_beyond_their_results():
    """The fan-out holds a few workers' requests at a time, not something for every key."""
    with BinanceSimulator() as sim:
        creds = [Credentials(k.api_key, k.secret) for k in (sim.add_key() for _ in range(2000))]
        with BinanceGateway(sim.url, timeout=5.0, max_workers=8, weight_limit=100_000) as gateway:
            gateway.check(creds[0])  # the first call's one-off costs (connections, clients)
            gc.collect()
            tracemalloc.start()
            try:
                results = gateway.check_many(creds)
                kept, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert all(r.ok for r in results)
    transient = peak - kept  # freed again before check_many returned
    assert transient < 600 * 1024, f"{transient / 1024:.0f} KB held while checking 2,000 keys"


def test_a_rejected_check_keeps_no_traceback():
    with BinanceSimulator() as sim, BinanceGateway(sim.url, timeout=2.0) as gateway:
        (result,) = gateway.check_many([Credentials(random_api_key(), random_api_key())])
        assert isinstance(result.error, KeyRejected)
        assert result.error.__traceback__ is None and result.error.__context__ is None


def test_stored_permissions_share_their_field_names_across_keys(engine, key_ring):
    observed = {"enableReading": True, "enableWithdrawals": False, "ipRestrict": True}
    with session_scope(engine) as session:
        ids = [stored_key(session, key_ring, label=f"key-{i}").id for i in range(2)]
        for key_id in ids:
            session.get(ApiKey, key_id).permissions_json = dict(observed)
    with session_scope(engine) as session:
        first, second = (session.get(ApiKey, key_id).permissions_json for key_id in ids)
    assert first == second == observed
    assert all(a is b for a, b in zip(first, second, strict=True))  # one string per name


# --- start-up -----------------------------------------------------------------------------


@pytest.mark.slow
def test_start_up_without_aws_settings_does_not_load_the_aws_sdk(tmp_path):
    """`python -X importtime -m bot` in HTTP mode, serving a command: boto3 never loaded."""
    with running_bot(tmp_path, python_options=("-X", "importtime")) as bot:
        reply = BotClient(bot.url).post(
            slash_command("help", response_url=bot.slack.response_url())
        )
        assert reply.status_code == 200
    printed = bot.output
    assert bot.proc.returncode == 0, printed[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in printed.splitlines() if "|" in line}
    assert not {"boto3", "botocore.client", "s3transfer"} & imported
