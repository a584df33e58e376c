"""Near misses of a pasted key (60 to 70 characters) and PEM fragments in `/apikey` text are
refused like a whole key: never echoed, audited, and traced to the registered key they came
from when they can be; ordinary labels are not flagged."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session, select

from bot.commands import SecretInText, label_problem, parse_command
from bot.secret_shapes import SecretKind, find_secret_shape
from storage.models import AuditEvent
from tests.e2e import all_text, register_sim_key

# A made-up Binance-shaped key (64 characters: upper, lower, digits), not a real one.
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
PEM_BODY_LINE = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8c+j/Z"

ORDINARY_LABELS = [
    "trading-bot",
    "prod-eu-1",
    "market dashboard",
    "Market dashboard (prod)",
    "binance-spot-market-maker-for-the-eu1",  # 37 characters
    "a" * 40,
    "MarketDashboardProdEuWest1ReadOnlyKey202",  # 40 characters, mixed, one word
    "x" * 80,
    "a" * 63,
    "market-dashboard-for-the-eu-prod-cluster-and-the-us-backup-one-2026",
    "private key backup",  # the words, lower case: a plain name
    "Q3 2026 trading bot",
]

NEAR_MISSES = [
    ("65 characters", KEY + "Q", SecretKind.KEY_OR_SECRET),
    ("63 characters", KEY[:-1], SecretKind.KEY_OR_SECRET),
    ("60 characters", KEY[:60], SecretKind.KEY_OR_SECRET),
    ("70 characters", KEY + "abc123", SecretKind.KEY_OR_SECRET),
    ("PEM opening", "-----BEGIN", SecretKind.PRIVATE_KEY),
    ("PEM opening, few dashes", "---BEGIN RSA", SecretKind.PRIVATE_KEY),
    ("PEM closing", "-----END PRIVATE KEY", SecretKind.PRIVATE_KEY),
    ("armour words", "PRIVATE KEY", SecretKind.PRIVATE_KEY),
    ("RSA armour words", "RSA PRIVATE KEY", SecretKind.PRIVATE_KEY),
    ("one PEM body line", PEM_BODY_LINE, SecretKind.PRIVATE_KEY),
    ("long base64 run", "MC4CAQAwBQYDK2VwBCIEI" * 6, SecretKind.PRIVATE_KEY),
]


@pytest.mark.parametrize("label", ORDINARY_LABELS)
def test_ordinary_labels_are_not_taken_for_secrets(label):
    assert find_secret_shape(label) is None
    assert label_problem(label) is None
    assert not isinstance(parse_command(f"status {label}"), SecretInText)
    assert not isinstance(parse_command(f"remove {label}"), SecretInText)


@pytest.mark.parametrize(("what", "text", "kind"), NEAR_MISSES, ids=[n[0] for n in NEAR_MISSES])
def test_near_misses_are_recognised_in_any_subcommand(what, text, kind):
    for command in (text, f"status {text}", f"remove {text}", f"compromised {text}"):
        assert parse_command(command) == SecretInText(kind), (what, command)
    assert label_problem(text) is not None


def test_a_long_hex_digest_that_is_not_64_characters_is_not_a_key():
    # Only lower case and digits: a digest or a commit id, not a Binance-shaped key.
    digest = ("3f2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c" * 3)[:65]
    assert find_secret_shape(f"deploy {digest}") is None
    assert find_secret_shape(f"deploy {digest[:64]}") is not None  # 64: a key's length


@pytest.mark.parametrize(
    "message",
    [
        "<https://docs.google.com/spreadsheets/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit"
        "|the sheet>",
        "https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl",
    ],
)
def test_links_with_long_ids_are_not_taken_for_secrets(message):
    assert find_secret_shape(message) is None


def _refusals(stack) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.action == "command.secret_refused"))
        )


@pytest.mark.parametrize("extra", ["Q", "x9", "\u00a0"], ids=["one more", "two more", "nbsp"])
def test_a_65_character_paste_of_a_registered_key_is_refused_and_traced(
    stack, client, caplog, extra
):
    caplog.set_level(logging.DEBUG)
    sim_key = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, sim_key, label="bot")
    stack.wait_idle()  # on a loaded machine the registration may finish after its answer
    pasted = sim_key.api_key + extra
    response = client.command(f"status {pasted}")
    assert response.status_code == 200
    text = all_text(response.json())
    assert "did not run that command" in text and "leaked" in text
    assert "compromised bot" in text  # traced to the key it came from, as for a whole key
    assert "No registered key" not in text
    assert sim_key.api_key not in text and sim_key.api_key[:40] not in text
    assert sim_key.api_key not in caplog.text
    (event,) = _refusals(stack)
    assert event.target == "bot" and event.target_key_id is not None
    assert sim_key.api_key not in repr(event.model_dump())


@pytest.mark.parametrize(("what", "text", "kind"), NEAR_MISSES, ids=[n[0] for n in NEAR_MISSES])
def test_a_near_miss_is_never_echoed_and_is_audited(stack, client, what, text, kind):
    response = client.command(f"remove {text}")
    answer = all_text(response.json())
    assert "did not run that command" in answer
    assert kind.value in answer
    assert text not in answer
    assert "No registered key" not in answer
    (event,) = _refusals(stack)
    assert event.target is None  # matches no registered key
    assert text not in repr(event.model_dump())


def test_an_unknown_ordinary_label_is_still_answered_by_name(stack, client):
    response = client.command("remove market dashboard")
    assert "No registered key is labelled “market dashboard”" in all_text(response.json())
    assert _refusals(stack) == []
