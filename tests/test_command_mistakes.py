"""Mistakes in `/apikey` as Slack sends them (signed requests to the running bot): each gets
one clear answer and changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.commands import REVIEW_WINDOW_DAYS
from storage.models import ApiKey
from tests.e2e import ALICE, all_text, register_directly
from tests.slack_requests import slash_command


def _answer(stack, client, text: str) -> str:
    reply = client.post(slash_command(text, user_id=ALICE, response_url=stack.slack.response_url()))
    assert reply.status_code == 200
    return all_text(reply.json())


def _incidents(stack) -> int:
    with stack.services.engine.connect() as connection:
        return connection.execute(sa.text("SELECT COUNT(*) FROM incidents")).scalar_one()


def test_since_older_than_the_review_window_is_refused_and_nothing_is_marked(stack, client):
    register_directly(stack, "bot", owner=ALICE)
    answer = _answer(stack, client, "compromised bot since 2020-01-01")
    assert f"at most {REVIEW_WINDOW_DAYS} days back" in answer and "Nothing was marked" in answer
    assert _incidents(stack) == 0
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).one().status == "active"


def test_a_typo_in_a_subcommand_gets_did_you_mean(stack, client):
    answer = _answer(stack, client, "stauts mine")
    assert "Did you mean `/apikey status mine`?" in answer
    assert "/apikey register" not in answer  # not the whole help


def test_a_period_without_its_unit_changes_nothing(stack, client):
    register_directly(stack, "bot", owner=ALICE)
    with Session(stack.services.engine) as session:
        before = session.exec(select(ApiKey)).one().rotation_period_days
    answer = _answer(stack, client, "rotate bot every 30")
    assert "from 1 to 3650, with its unit `d`" in answer
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).one().rotation_period_days == before


def test_a_mistyped_label_gets_did_you_mean_and_changes_nothing(stack, client):
    register_directly(stack, "trading-bot", owner=ALICE)
    client.post(
        slash_command(
            "compromised trading-bto", user_id=ALICE, response_url=stack.slack.response_url()
        )
    )
    stack.wait_idle()
    said = all_text([c.params for c in stack.slack.calls])
    assert "Did you mean “trading-bot”?" in said
    assert _incidents(stack) == 0
    answer = _answer(stack, client, "rotate trading-bto every 30d")
    assert "Did you mean “trading-bot”?" in answer
    unrelated = _answer(stack, client, "rotate zzzzzz every 30d")
    assert "Did you mean" not in unrelated and "/apikey list" in unrelated
