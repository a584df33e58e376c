"""Rendering (bot/blocks): golden to_dict() snapshots, and Slack's limits for any data.

Golden files live in tests/golden/. After an intended change, regenerate them with
``UPDATE_GOLDEN=1 pytest tests/test_blocks.py`` and read the diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.views import View

from bot.binance import KeyPermissions, Tier
from bot.blocks.approvals import (
    approval_outcome_message,
    approval_request_message,
    approval_waiting_message,
    approvals_list,
    held_view,
)
from bot.blocks.audit import chain_report, checkpoint_message
from bot.blocks.custody.key_edit import key_edited_message, new_owner_note
from bot.blocks.custody.key_list import key_list
from bot.blocks.custody.key_menu import report_confirmation
from bot.blocks.custody.register import (
    checking_view,
    register_modal,
    registered_view,
    registration_failed_view,
    registration_summary,
)
from bot.blocks.custody.remove import remove_cancelled, remove_confirmation, removed_message
from bot.blocks.help import help_message
from bot.blocks.home import home_view
from bot.blocks.message import Message
from bot.blocks.notices import error_message, secret_in_text_warning, working_message
from bot.blocks.oversight.drift import drift_digest
from bot.blocks.oversight.status_report import page_count, status_page
from bot.blocks.text import (
    age,
    escape,
    mention,
    pack_lines,
    safe_mrkdwn,
    tier_name,
    truncate,
)
from bot.commands import EditField
from bot.ids import Action, Block, Callback
from bot.listeners.views import form_from_view
from bot.model.approvals import ApprovalKind, ApprovalState, ApprovalView
from bot.model.audit import ChainReport, Checkpoint, Witness, WitnessState
from bot.model.drift import Change, Digest
from bot.model.findings import PERMISSION_NAMES, Finding, FindingKind, Severity
from bot.model.home import UNKNOWN_TIER, HomeKey, HomePicture, OpenIncident, TeamPicture
from bot.model.key_edit import KeyEdited
from bot.model.keys import KeySummary, RegisteredKey
from bot.model.rotation import RotationRow, RotationState
from bot.model.status import KeyReport, StatusReport
from bot.secret_shapes import SecretKind, find_secret_shape
from bot.services.oversight.findings import assess
from bot.services.oversight.status import redact
from bot.slack.access import Requester
from storage.models import KeyPurpose, KeyStatus, KeyType
from tests.factories import READ_ONLY, TRADE, WITHDRAW
from tests.incident_screens import INCIDENT_SCREENS
from tests.payloads import key_menus, menu_choices, styles
from tests.test_audit_trail_wording import incident_trail

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CREATED_MS = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)

READ_ONLY_KEY = {**READ_ONLY, "createTime": CREATED_MS}
TRADE_NO_WHITELIST = {
    **READ_ONLY_KEY,
    **TRADE,
    "ipRestrict": False,
    "tradingAuthorityExpirationTime": int((NOW + timedelta(days=5)).timestamp() * 1000),
}
WITHDRAW_KEY = {**READ_ONLY_KEY, **WITHDRAW}

HOSTILE_LABELS = [
    "<!channel>",
    "*bold* _it_ ~s~ `code`",
    "L" * 80,
    "invoice\u202egpj.exe",
    "<@U0ADMIN> & <https://evil.example|click me> <!here> <!subteam^S123>",
    "&lt;already&gt;" * 5,
]
SAMPLE_API_KEY = "A1b2C3d4" * 8  # 64 characters: what a pasted key or secret looks like


# --- helpers -----------------------------------------------------------------------------


def assert_golden(name: str, payload: dict) -> None:
    """Compare ``payload`` with tests/golden/<name>.json (rewrite it when UPDATE_GOLDEN=1)."""
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(rendered), (
        f"{name} changed: if intended, rerun with UPDATE_GOLDEN=1 and review the diff"
    )


def as_payload(rendered: Message | View) -> dict:
    if isinstance(rendered, Message):
        return json.loads(json.dumps(rendered.as_kwargs()))
    return json.loads(json.dumps(rendered.to_dict()))


def strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def block_text_size(node: object) -> int:
    """Every text in the blocks, added up (a section's ``text`` object included)."""
    if isinstance(node, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else block_text_size(v)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return sum(block_text_size(v) for v in node)
    return 0


def check_element(node: dict) -> None:
    kind = node.get("type")
    if kind == "section":
        if "text" in node:
            assert len(node["text"]["text"]) <= 3000
        assert len(node.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in node.get("fields", []))
    if kind == "header":
        assert len(node["text"]["text"]) <= 150
    if kind == "context":
        assert len(node["elements"]) <= 10
    if kind == "button":
        assert len(node["text"]["text"]) <= 75
        assert len(node.get("value", "")) <= 2000
        if "confirm" in node:
            assert len(node["confirm"]["text"]["text"]) <= 300
    if kind == "overflow":  # Slack: 2 to 5 options, text up to 75, value up to 150 characters
        assert 2 <= len(node["options"]) <= 5
        assert all(len(o["text"]["text"]) <= 75 for o in node["options"])
        assert all(len(o["value"]) <= 150 for o in node["options"])
    if kind in ("radio_buttons", "checkboxes", "static_select"):
        # Option object: text and description up to 75 characters each
        # (https://docs.slack.dev/reference/block-kit/composition-objects/option-object)
        for option in node.get("options", []):
            assert len(option["text"]["text"]) <= 75, option["text"]["text"]
            assert len(option.get("description", {}).get("text", "")) <= 75, option
    if kind == "actions":
        ids = [el.get("action_id") for el in node["elements"]]
        assert len(ids) == len(set(ids)), "action ids must be unique within a block"
    if kind == "plain_text_input" and "max_length" in node:
        assert node["max_length"] <= 3000
    for value in node.values():
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, dict):
                check_element(child)


# Links the bot writes itself: Binance's API Management page and a checklist's permalink (from
# chat.getPermalink). Any other link in a screen could only come from user-provided text.
BOT_MADE_LINK = re.compile(
    r"<https://(www\.binance\.com/en/my/settings/api-management|"
    r"[a-z0-9-]+\.slack\.com/archives/[A-Z0-9]+/p\d+)\|[^<>]*>"
)


def check_limits(payload: dict, *, max_blocks: int = 50) -> None:
    """Slack's limits, and no live mention / link / bidi override from user-provided text."""
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= max_blocks
    for block in blocks:
        check_element(block)
    if "text" in payload:  # a message, not a view
        assert len(payload["text"]) <= 3000
        assert block_text_size(blocks) <= 12_000
    for text in strings(payload):
        assert "<!" not in text  # <!channel>, <!here>, <!subteam^…>
        assert "<http" not in BOT_MADE_LINK.sub("", text)
        assert "\u202e" not in text
        assert "<@U0ADMIN>" not in text  # only mentions the bot itself wrote survive


def all_text(payload: dict) -> str:
    return "\n".join(strings(payload))


def perms(data: dict) -> KeyPermissions:
    return KeyPermissions.from_dict(data)


def registered(
    data: dict, *, purpose: KeyPurpose = KeyPurpose.TRADING, label: str = "trading-bot"
) -> RegisteredKey:
    permissions = perms(data)
    return RegisteredKey(
        key_id="k" * 32,
        label=label,
        masked="vmPU…A31m",
        account_alias="main",
        owner_user_id="U0ALICE",
        purpose=purpose,
        key_type=KeyType.ED25519,
        permissions=permissions,
        findings=assess(purpose=purpose, now=NOW, permissions=permissions),
    )


def key_report(
    i: int,
    *,
    label: str | None = None,
    data: dict | None = None,
    purpose: KeyPurpose = KeyPurpose.READ_ONLY,
    findings: list[Finding] | None = None,
) -> KeyReport:
    checked = data is not None
    if findings is None:
        permissions = perms(data) if data is not None else None
        findings = assess(purpose=purpose, now=NOW, permissions=permissions)
    return KeyReport(
        key_id=f"key{i:04d}",
        label=label or f"key-{i:02d}",
        account_alias="main",
        owner_user_id="U0ALICE" if i % 2 else "U0BOB",
        purpose=purpose,
        key_type="HMAC",
        masked=f"m{i:04d}…x{i:04d}",
        created_at=NOW - timedelta(days=3 * i),
        checked=checked,
        permissions=data,
        findings=findings,
    )


def summary(
    i: int,
    *,
    label: str | None = None,
    tier: Tier | None = Tier.READ,
    status: KeyStatus = KeyStatus.ACTIVE,
    checked: bool = True,
    alias: str = "main",
) -> KeySummary:
    return KeySummary(
        key_id=f"key{i:04d}",
        label=label or f"key-{i:02d}",
        owner_user_id="U0ALICE" if i % 2 else None,
        purpose=list(KeyPurpose)[i % 3],
        key_type=KeyType.HMAC,
        status=status,
        masked=f"m{i:04d}…x{i:04d}",
        account_alias=alias,
        created_at=NOW - timedelta(days=40 * i),
        last_tier=tier if checked else None,
        checked_at=NOW - timedelta(hours=1) if checked else None,
    )


def home_key(
    i: int,
    *,
    label: str,
    findings: list[Finding],
    rotation: RotationState,
    incident: str | None = None,
    tier: Tier | None = Tier.READ,
) -> HomeKey:
    s = summary(i, label=label, tier=tier)
    due = {RotationState.OVERDUE: -3, RotationState.DUE_SOON: 5}.get(rotation, 60)
    return HomeKey(
        summary=s,
        findings=findings,
        rotation=RotationRow(
            key_id=s.key_id,
            label=s.label,
            owner_user_id=s.owner_user_id,
            period_days=90,
            last_rotated_at=NOW - timedelta(days=90 - due),
            due_at=NOW + timedelta(days=due),
            state=rotation,
            snoozed_until=None,
        ),
        open_incident_id=incident,
    )


def home_picture_for(user_id: str, *, admin: bool) -> HomePicture:
    withdraw = Finding(
        FindingKind.WITHDRAWALS_ENABLED, Severity.CRITICAL, "Withdrawals are enabled."
    )
    no_ip = Finding(FindingKind.NO_IP_WHITELIST, Severity.WARNING, "No IP whitelist.")
    keys = [
        home_key(
            1,
            label="payout <!here>",
            findings=[withdraw, no_ip],
            rotation=RotationState.OVERDUE,
            tier=Tier.WITHDRAW,
        ),
        home_key(3, label="trader", findings=[], rotation=RotationState.DUE_SOON, tier=Tier.TRADE),
        home_key(5, label="leaked", findings=[], rotation=RotationState.OK, incident="inc1"),
    ]
    incident = OpenIncident(
        "inc1", "leaked", "U0ALICE", NOW - timedelta(hours=2), False, 2, last_probe_result="alive"
    )
    team = TeamPicture(
        key_count=7,
        by_tier={"Withdraw": 1, "Trade": 3, "Read": 2, UNKNOWN_TIER: 1},
        critical=[(keys[0], [withdraw])],
        overdue=[keys[0].rotation],
        open_incidents=[incident],
    )
    own = keys if user_id == "U0ALICE" else []
    return HomePicture(
        user_id=user_id,
        is_admin=admin,
        own_keys=own,
        own_incidents=[incident] if own else [],
        team_key_count=7,
        team=team if admin else None,
    )


def long_findings(n: int) -> list[Finding]:
    severities = [Severity.CRITICAL, Severity.WARNING, Severity.UNKNOWN]
    return [
        Finding(
            FindingKind.BEYOND_PURPOSE,
            severities[j % 3],
            f"Finding {j}: <!channel> " + "a very long explanation " * 40,
        )
        for j in range(n)
    ]


def hostile_report(n: int, *, detailed: bool = False) -> StatusReport:
    keys = [
        key_report(
            i,
            label=f"{HOSTILE_LABELS[i % len(HOSTILE_LABELS)]}"[:76] + f"#{i:03d}",
            data=WITHDRAW_KEY if i % 3 else None,
            findings=long_findings(10),
        )
        for i in range(n)
    ]
    return StatusReport(
        report_id="r" * 32,
        scope="“<!channel>” of <@U0ALICE>",
        created_at=NOW,
        keys=keys,
        detailed=detailed,
    )


def report(
    keys: list[KeyReport],
    scope: str = "all keys",
    scope_user_id: str | None = None,
    *,
    detailed: bool = False,
) -> StatusReport:
    return StatusReport(
        report_id="rep0001",
        scope=scope,
        created_at=NOW,
        keys=keys,
        scope_user_id=scope_user_id,
        detailed=detailed,
    )


def nine_key_report() -> StatusReport:
    keys = [
        key_report(1, label="withdrawer", data=WITHDRAW_KEY, purpose=KeyPurpose.TRADING),
        key_report(2, label="trader", data=TRADE_NO_WHITELIST, purpose=KeyPurpose.TRADING),
        key_report(
            3,
            label="gone",
            findings=[
                Finding(
                    FindingKind.KEY_REJECTED,
                    Severity.CRITICAL,
                    "Binance rejected this key: deleted, IP not whitelisted, or no permission.",
                )
            ],
        ),
        key_report(4, label="unchecked"),
    ] + [key_report(i, label=f"reader-{i}", data=READ_ONLY_KEY) for i in range(5, 10)]
    return report(keys)


def member_view_report() -> StatusReport:
    """The nine keys as Bob sees them: his own in full, Alice's as summaries."""
    keys = [k if k.owner_user_id == "U0BOB" else redact(k) for k in nine_key_report().keys]
    return report(keys)


# --- golden snapshots --------------------------------------------------------------------


AUDIT_CHECKPOINT = Checkpoint(
    events=1234, head="ab" * 32, at=datetime(2026, 12, 4, 9, 30, tzinfo=UTC), head_id=1301
)


def key_edit(field: EditField, before: str, after: str, **kw) -> KeyEdited:
    return KeyEdited(
        label="trading-bot",
        field=field,
        before=before,
        after=after,
        owner_user_id=after if field == EditField.OWNER else "U0ALICE",
        rotation_due_at=NOW + timedelta(days=40),
        checked_at=NOW - timedelta(hours=2) if field == EditField.PURPOSE else None,
        **kw,
    )


def _approval(**changes) -> ApprovalView:
    view = ApprovalView(
        request_id="f" * 32,
        change="register",
        kinds=(ApprovalKind.MOVES_FUNDS, ApprovalKind.BEYOND_PURPOSE),
        at_stake=(
            "Binance says the key has the Withdraw tier: Reading, Withdrawals",
            "IP whitelist: yes",
            "It can move funds: Withdrawals",
            "Beyond its purpose: <!here> withdrawals exceed the declared purpose",
        ),
        label="payout <@U0EVE>",
        account_alias="main",
        masked="A1b2…C3d4",
        owner_user_id="U0ALICE",
        requested_by="U0ALICE",
        created_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        expires_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        state=ApprovalState.OPEN,
        approved_by=(),
        quorum=1,
        approvers=("U0CAROL",),
    )
    return replace(view, **changes)


GOLDEN_CASES = {
    "approval_request": lambda: approval_request_message(_approval()),
    "approval_request_too_few": lambda: approval_request_message(_approval(approvers=("U0ALICE",))),
    "approval_waiting": lambda: approval_waiting_message(_approval()),
    "approval_denied": lambda: approval_outcome_message(_approval(state=ApprovalState.DENIED)),
    "approval_changed": lambda: approval_outcome_message(
        _approval(state=ApprovalState.CHANGED, outcome="Binance's answer about the key changed")
    ),
    "approvals_list": lambda: approvals_list([_approval()], datetime(2026, 12, 1, tzinfo=UTC)),
    "approval_held_view": lambda: held_view(_approval()),
    "help": lambda: help_message(),
    "help_with_reason": lambda: help_message("I don't know the subcommand “frobnicate”."),
    "register_modal_no_accounts": lambda: register_modal(
        owner_user_id="U0ALICE", known_accounts=[], private_metadata='{"channel": "C0GENERAL"}'
    ),
    "register_modal_one_account": lambda: register_modal(
        owner_user_id="U0ALICE", known_accounts=["main"], private_metadata="{}"
    ),
    "register_modal_accounts": lambda: register_modal(
        owner_user_id="U0BOB", known_accounts=["main", "sub-1", "treasury"], private_metadata=""
    ),
    "checking_view": checking_view,
    "registration_failed_view": lambda: registration_failed_view(
        "Binance says the signature is wrong: this secret does not belong to this API key."
    ),
    "registered_view": lambda: registered_view(registered(TRADE_NO_WHITELIST)),
    "registration_summary_findings": lambda: registration_summary(
        registered(TRADE_NO_WHITELIST), NOW
    ),
    "registration_summary_clean": lambda: registration_summary(
        registered(READ_ONLY_KEY, purpose=KeyPurpose.READ_ONLY, label="dashboard"), NOW
    ),
    "status_team": lambda: status_page(nine_key_report(), 0, now=NOW),
    "status_member_view": lambda: status_page(member_view_report(), 0, now=NOW),
    "status_page_1_of_2": lambda: status_page(nine_key_report(), 0, page_size=5, now=NOW),
    "status_page_2_of_2": lambda: status_page(nine_key_report(), 1, page_size=5, now=NOW),
    "status_detail": lambda: status_page(
        report(nine_key_report().keys[:1], scope="“withdrawer”", detailed=True), now=NOW
    ),
    "status_single_unchecked": lambda: status_page(
        report([key_report(4, label="unchecked")], scope="“unchecked”", detailed=True), now=NOW
    ),
    "report_compromised_confirmation": lambda: report_confirmation(
        "key0001", "hot-wallet <!here>", "U0ALICE"
    ),
    "status_empty": lambda: status_page(
        report([], scope="keys of <@U0BOB>", scope_user_id="U0BOB"), now=NOW
    ),
    "key_list": lambda: key_list(
        [
            summary(1, label="dashboard"),
            summary(2, label="trader", tier=Tier.TRADE, status=KeyStatus.ROTATING),
            summary(3, label="leaked", tier=Tier.WITHDRAW, status=KeyStatus.COMPROMISED),
            summary(4, label="new", checked=False),
        ],
        NOW,
    ),
    "key_list_empty": lambda: key_list([], NOW),
    "remove_confirmation": lambda: remove_confirmation(summary(1, label="old-dashboard")),
    "removed_message": lambda: removed_message(summary(1, label="old-dashboard"), "U0BOB"),
    "remove_cancelled": lambda: remove_cancelled("old-dashboard"),
    "key_edited_owner": lambda: key_edited_message(
        key_edit(EditField.OWNER, "U0ALICE", "U0BOB"), NOW
    ),
    "key_edited_purpose": lambda: key_edited_message(
        key_edit(
            EditField.PURPOSE,
            "trading",
            "read_only",
            findings=(
                Finding(
                    FindingKind.BEYOND_PURPOSE,
                    Severity.WARNING,
                    "It has the Trade tier, beyond its declared purpose (read-only analysis).",
                ),
            ),
        ),
        NOW,
    ),
    "key_edited_account_new": lambda: key_edited_message(
        key_edit(EditField.ACCOUNT, "main", "sub-1", new_account=True), NOW
    ),
    "new_owner_note": lambda: new_owner_note(
        key_edit(EditField.OWNER, "U0ALICE", "U0BOB"), "U0BOSS"
    ),
    "secret_warning_matched": lambda: secret_in_text_warning(SecretKind.KEY_OR_SECRET, "bot"),
    "secret_warning_private_key": lambda: secret_in_text_warning(SecretKind.PRIVATE_KEY, None),
    "error_message": lambda: error_message("No registered key is labelled “ghost”."),
    "working_message": lambda: working_message("Asking Binance about 12 keys…"),
    "home_owner": lambda: home_view(home_picture_for("U0ALICE", admin=False), now=NOW),
    "home_admin": lambda: home_view(home_picture_for("U0BOSS", admin=True), now=NOW),
    "home_empty": lambda: home_view(
        HomePicture("U0BOB", False, [], [], team_key_count=0, team=None), now=NOW
    ),
    "drift_digest": lambda: drift_digest(
        Digest(
            team_id="T0TEST",
            checked=12,
            changes=[
                Change(
                    "payout <!channel>",
                    "U0ALICE",
                    Severity.CRITICAL,
                    "Withdrawals permission was turned on.",
                ),
                Change("trader", None, Severity.WARNING, "The IP whitelist was removed."),
            ],
            could_not_check=[("dashboard", "Binance did not answer in time.")],
        )
    ),
    "audit_checkpoint": lambda: checkpoint_message(AUDIT_CHECKPOINT),
    "audit_trail_incident": lambda: incident_trail(),
    "audit_verdict_intact": lambda: chain_report(
        ChainReport(events=1240, broken_at=None, reason=None, checkpoints_checked=1, verified=1240),
        Witness(WitnessState.READ, "C0ALERTS", (AUDIT_CHECKPOINT,)),
    ),
    **INCIDENT_SCREENS,
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name):
    rendered = GOLDEN_CASES[name]()
    payload = as_payload(rendered)
    check_limits(payload, max_blocks=50 if isinstance(rendered, Message) else 100)
    assert_golden(name, payload)


def test_no_stale_golden_files():
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(GOLDEN_CASES)


# --- text helpers ------------------------------------------------------------------------


def test_escape_makes_user_text_inert():
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape("a\u202eb\nc") == "a\ufffdb\ufffdc"
    assert escape("plain-label_1") == "plain-label_1"


def test_safe_mrkdwn_keeps_only_plain_mentions():
    text = safe_mrkdwn("keys of <@U0ALICE> in <#C0GEN>: <!here> <https://x.y|z> & more\nok")
    assert text == (
        "keys of <@U0ALICE> in <#C0GEN>: &lt;!here&gt; &lt;https://x.y|z&gt; &amp; more\nok"
    )
    assert safe_mrkdwn("<@U0ALICE|alice>") == "&lt;@U0ALICE|alice&gt;"


def test_mention():
    assert mention("U0ALICE") == "<@U0ALICE>"
    assert mention(None) == "_nobody_"
    assert mention("<!channel>") == "&lt;!channel&gt;"


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, "today"),
        (1, "1 day"),
        (3, "3 days"),
        (59, "59 days"),
        (150, "5 months"),
        (800, "2 years"),
    ],
)
def test_age(days, expected):
    assert age(NOW - timedelta(days=days, hours=1), NOW) == expected


def test_age_of_the_future_is_today():
    assert age(NOW + timedelta(days=2), NOW) == "today"


def test_tier_name():
    assert [tier_name(t) for t in (Tier.READ, Tier.TRADE, Tier.WITHDRAW, None)] == [
        "Read",
        "Trade",
        "Withdraw",
        "unknown",
    ]


def test_truncate_never_cuts_an_entity_or_a_mention():
    assert truncate("short", 10) == "short"
    assert truncate("abcdefghij", 5) == "abcd…"
    assert truncate("ab &lt; cd", 6) == "ab…"
    assert truncate("hi <@U0ALICE> there", 10) == "hi…"


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_escaped_and_truncated_text_is_bounded_and_inert(text, limit):
    out = truncate(escape(text), limit)
    assert len(out) <= limit
    assert "<" not in out and ">" not in out and "\u202e" not in out


def test_pack_lines_respects_the_limit():
    chunks = pack_lines(["x" * 1000] * 7 + ["y" * 5000], limit=3000)
    assert all(len(c) <= 3000 for c in chunks)
    assert sum(c.count("x") for c in chunks) == 7000


# --- register ----------------------------------------------------------------------------


def modal_inputs(view) -> dict[str, dict]:
    return {b["block_id"]: b for b in view.to_dict()["blocks"] if b["type"] == "input"}


def test_register_modal_uses_the_shared_ids_and_limits():
    view = register_modal(owner_user_id="U0ALICE", known_accounts=[], private_metadata="{}")
    payload = view.to_dict()
    assert payload["callback_id"] == Callback.REGISTER
    assert payload["submit"]["text"] == "Check & save" and payload["close"]["text"] == "Cancel"
    inputs = modal_inputs(view)
    assert list(inputs) == [
        Block.LABEL,
        Block.ACCOUNT,
        Block.OWNER,
        Block.PURPOSE,
        Block.KEY_TYPE,
        Block.API_KEY,
        Block.SECRET,
        Block.REGISTER_CONFIRM,
    ]
    assert [b["element"]["action_id"] for b in inputs.values()] == [
        Action.LABEL,
        Action.ACCOUNT,
        Action.OWNER,
        Action.PURPOSE,
        Action.KEY_TYPE,
        Action.API_KEY,
        Action.SECRET,
        Action.REGISTER_CONFIRM,
    ]
    assert inputs[Block.REGISTER_CONFIRM]["optional"] is True
    assert inputs[Block.LABEL]["element"]["max_length"] == 80
    assert inputs[Block.ACCOUNT]["element"]["max_length"] == 80
    assert "initial_value" not in inputs[Block.ACCOUNT]["element"]
    assert inputs[Block.OWNER]["element"]["initial_user"] == "U0ALICE"
    purposes = inputs[Block.PURPOSE]["element"]["options"]
    # a governor is registered by `/apikey governor`, never by this form
    assert [o["value"] for o in purposes] == [
        p.value for p in KeyPurpose if p != KeyPurpose.GOVERNOR
    ]
    key_type = inputs[Block.KEY_TYPE]["element"]
    assert [o["value"] for o in key_type["options"]] == [
        "generate_ed25519",
        "generate_rsa_2048",
        "generate_rsa_4096",
        "HMAC",
        "ED25519",
        "RSA",
    ]
    assert key_type["initial_option"]["value"] == "generate_ed25519"  # generated by default
    assert inputs[Block.API_KEY]["optional"] is True and inputs[Block.SECRET]["optional"] is True
    assert "Ed25519" in inputs[Block.KEY_TYPE]["hint"]["text"]
    secret = inputs[Block.SECRET]["element"]
    assert secret["multiline"] is True and secret["max_length"] == 3000
    assert "never shown again" in inputs[Block.SECRET]["hint"]["text"]
    assert "nothing is stored" in all_text(payload)


def test_register_modal_prefills_the_only_known_account_and_lists_several():
    one = modal_inputs(
        register_modal(owner_user_id="U1", known_accounts=["main"], private_metadata="")
    )
    assert one[Block.ACCOUNT]["element"]["initial_value"] == "main"
    many = modal_inputs(
        register_modal(owner_user_id="U1", known_accounts=["a", "b"], private_metadata="")
    )
    assert "initial_value" not in many[Block.ACCOUNT]["element"]
    assert "a, b" in many[Block.ACCOUNT]["hint"]["text"]
    lots = register_modal(owner_user_id="U1", known_accounts=["x" * 80] * 500, private_metadata="")
    check_limits(as_payload(lots), max_blocks=100)


def test_register_modal_state_reads_back_through_the_listener():
    """The ids the modal uses are the ids the submission handler reads."""
    inputs = modal_inputs(
        register_modal(owner_user_id="U0ALICE", known_accounts=[], private_metadata="{}")
    )
    answers = {
        Block.LABEL: {"value": "bot"},
        Block.ACCOUNT: {"value": "main"},
        Block.OWNER: {"selected_user": "U0BOB"},
        Block.PURPOSE: {"selected_option": {"value": "trading"}},
        Block.KEY_TYPE: {"selected_option": {"value": "ED25519"}},
        Block.API_KEY: {"value": "k" * 64},
        Block.SECRET: {"value": "s" * 64},
        Block.REGISTER_CONFIRM: {"selected_options": [{"value": "confirm"}]},
    }
    values = {
        block_id: {block["element"]["action_id"]: answers[block_id]}
        for block_id, block in inputs.items()
    }
    form = form_from_view(
        {"state": {"values": values}}, Requester(user_id="U0ALICE", team_id="T1", channel=None)
    )
    assert (form.label, form.account_alias, form.owner_user_id) == ("bot", "main", "U0BOB")
    assert (form.purpose, form.key_type) == (KeyPurpose.TRADING, KeyType.ED25519)
    assert form.confirm_beyond_purpose


def test_registration_summary_lists_every_finding_and_never_a_secret():
    key = registered(
        {**WITHDRAW_KEY, "ipRestrict": False, "enableInternalTransfer": True},
        purpose=KeyPurpose.READ_ONLY,
    )
    assert len(key.findings) >= 4
    payload = as_payload(registration_summary(key, NOW))
    check_limits(payload)
    text = all_text(payload)
    for finding in key.findings:
        assert escape(finding.text) in text
    worst_first = [text.index(escape(f.text)) for f in key.findings]
    assert worst_first == sorted(worst_first)
    # the permissions it has, not the ones it lacks (issue 16: ten ❌ on a read-only key)
    permissions = key.permissions.to_dict()
    for flag, permission in PERMISSION_NAMES.items():
        granted = permissions.get(flag) is True
        assert (f" {permission}" in text) == granted or permission == "Read", permission
    assert "❌" not in text
    assert "vmPU…A31m" in text
    assert find_secret_shape(text) is None


def test_registration_summary_without_findings_says_so():
    key = registered(READ_ONLY_KEY, purpose=KeyPurpose.READ_ONLY)
    assert key.findings == []
    assert "No least-privilege findings" in all_text(as_payload(registration_summary(key, NOW)))


def test_registration_outcome_views_fit_and_escape():
    hostile = registered(WITHDRAW_KEY, label=HOSTILE_LABELS[4])
    for view in (
        registered_view(hostile),
        registration_failed_view("<!channel> " + "x" * 5000),
        checking_view(),
    ):
        payload = as_payload(view)
        check_limits(payload, max_blocks=100)
        assert "submit" not in payload


# --- status ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 30, 40, 41, 60, 500])
def test_every_status_page_fits_slack_and_pages_cover_every_key_once(n):
    """One line a key: 40 keys a page (before: 8), however hostile their labels."""
    hostile = hostile_report(n)
    pages = page_count(hostile)
    assert pages == -(-n // 40)
    seen: list[str] = []
    for page in range(pages):
        payload = as_payload(status_page(hostile, page, now=NOW))
        check_limits(payload)
        text = all_text(payload)
        rows = [b for b in payload["blocks"] if "accessory" in b]
        seen += [b["accessory"]["options"][0]["value"].partition(":")[2] for b in rows]
        assert all(len(b["text"]["text"]) <= 240 and "\n" not in b["text"]["text"] for b in rows)
        nav = [
            el
            for block in payload["blocks"]
            if block["type"] == "actions"
            for el in block["elements"]
        ]
        assert {el["action_id"] for el in nav} <= {Action.STATUS_PAGE}
        assert (pages > 1) == bool(nav)
        if pages > 1:
            assert f"Page {page + 1} of {pages}" in text
        assert "danger" not in styles(payload)
    assert seen == [k.key_id for k in hostile.keys]


@pytest.mark.parametrize("n", [1, 8, 9, 60])
def test_every_detailed_page_fits_slack_and_pages_cover_every_key_once(n):
    hostile = hostile_report(n, detailed=True)
    pages = page_count(hostile)
    assert pages == -(-n // 8)
    seen: list[str] = []
    for page in range(pages):
        payload = as_payload(status_page(hostile, page, now=NOW))
        check_limits(payload)
        text = all_text(payload)
        seen += [k.masked for k in hostile.keys if k.masked in text]
        on_page = sum(k.masked in text for k in hostile.keys)
        if on_page == 8:  # ten long findings for each of 8 keys cannot all fit: it says so
            assert "more finding" in text
        elif on_page == 1:  # a key alone has room for all of them
            assert "Finding 9:" in text and "more finding" not in text
        assert "danger" not in styles(payload)
    assert seen == [k.masked for k in hostile.keys]


def test_thirty_keys_fit_one_page_one_line_each_with_the_worst_finding_in_words():
    keys = [
        key_report(i, label=f"bot-{i:02d}", data=WITHDRAW_KEY, purpose=KeyPurpose.TRADING)
        for i in range(30)
    ]
    payload = as_payload(status_page(report(keys), now=NOW))
    check_limits(payload)
    rows = [b for b in payload["blocks"] if "accessory" in b]
    assert len(rows) == 30 and "Page" not in all_text(payload)
    line = rows[0]["text"]["text"]
    assert "\n" not in line
    assert line.startswith("🔴 *bot-00* · owner <@U0BOB> · Withdraw tier · _critical_: ")
    assert "Withdrawals are enabled" in line and "+1 more" in line
    assert "danger" not in styles(payload)
    lengths = [len(r["text"]["text"]) for r in rows]
    assert max(lengths) < 120, lengths


def test_status_page_lists_keys_worst_first_and_unchecked_keys_as_unknown():
    payload = as_payload(status_page(nine_key_report(), 0, now=NOW))
    text = all_text(payload)
    assert "9 keys: 2 critical, 1 warning, 1 unknown" in text
    assert text.index("withdrawer") < text.index("trader") < text.index("gone")
    unchecked = next(
        b["text"]["text"]
        for b in payload["blocks"]
        if b["type"] == "section" and "*unchecked*" in b["text"]["text"]
    )
    assert "✅" not in unchecked and "❌" not in unchecked
    assert "unknown tier" in unchecked and "_unknown_: Not checked yet" in unchecked


def test_status_of_one_key_shows_it_in_full_with_every_finding_in_order():
    withdrawer = nine_key_report().keys[0]
    payload = as_payload(status_page(report([withdrawer], "“withdrawer”", detailed=True), now=NOW))
    text = all_text(payload)
    assert withdrawer.masked in text and "IP whitelist" in text and "Withdrawals" in text
    positions = [text.index(escape(f.text)) for f in withdrawer.findings]
    assert positions == sorted(positions) and len(positions) > 1
    # its menu, without "Details" (this is them)
    assert menu_choices(payload) == {withdrawer.key_id: ["rotate", "report", "remove"]}


def test_key_menus_offer_only_what_the_viewer_may_do():
    owner_view = menu_choices(as_payload(status_page(nine_key_report(), now=NOW)))
    assert set(owner_view["key0001"]) == {"details", "rotate", "report", "remove"}
    member_view = menu_choices(as_payload(status_page(member_view_report(), now=NOW)))
    assert member_view["key0001"] == ["details", "report"]  # Alice's key, seen by Bob
    assert member_view["key0002"] == ["details", "rotate", "report", "remove"]  # Bob's own
    from dataclasses import replace

    leaked = replace(nine_key_report().keys[0], status="compromised")
    assert menu_choices(as_payload(status_page(report([leaked]), now=NOW))) == {
        "key0001": ["details", "remove"]
    }
    redacted_leaked = redact(leaked)
    payload = as_payload(status_page(report([redacted_leaked]), now=NOW))
    assert menu_choices(payload) == {"key0001": ["details"]}
    # one choice: a plain button, not an overflow menu (Slack's menu wants two or more)
    (only,) = key_menus(payload)
    assert only["type"] == "button" and only["text"]["text"] == "Details"
    rotating = replace(nine_key_report().keys[0], status="rotating")
    assert (
        "rotate"
        not in menu_choices(as_payload(status_page(report([rotating]), now=NOW)))["key0001"]
    )


def test_a_member_sees_others_keys_as_a_summary_without_their_findings():
    payload = as_payload(status_page(member_view_report(), now=NOW))
    text = all_text(payload)
    assert "Withdrawals are enabled" not in text  # Alice's withdrawer: her details
    assert "_critical_: 2 findings" in text
    assert "details only for their owner and admins" in text
    assert text.count("details only for their owner") == 1


def test_report_compromised_asks_once_with_the_one_red_button():
    payload = as_payload(report_confirmation("key0001", "hot-wallet <!here>", "U0ALICE"))
    check_limits(payload)
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    (button,) = actions["elements"]
    assert (button["action_id"], button["value"], button["style"]) == (
        Action.INCIDENT_RAISE,
        "key0001",
        "danger",
    )
    # The message is the question: no second dialog between a leak and its playbook.
    assert "confirm" not in button and "marked compromised" in all_text(payload)


def test_status_navigation_values_and_out_of_range_pages():
    nine = nine_key_report()
    first = as_payload(status_page(nine, 0, page_size=5, now=NOW))
    values = [
        el["value"] for b in first["blocks"] if b["type"] == "actions" for el in b["elements"]
    ]
    assert values == ["rep0001:1"]
    last = as_payload(status_page(nine, 7, page_size=5, now=NOW))  # a stale button: the last
    assert "Page 2 of 2" in all_text(last)
    values = [el["value"] for b in last["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert values == ["rep0001:0"]
    assert as_payload(status_page(nine, -3, page_size=5, now=NOW)) == first


def test_status_page_size_is_clamped_consistently():
    many = hostile_report(130)
    assert page_count(many, 50) == 4  # at most 40 keys a page
    for page in range(4):
        payload = as_payload(status_page(many, page, page_size=50, now=NOW))
        check_limits(payload)
        assert f"Page {page + 1} of 4" in all_text(payload)
    assert page_count(many, 0) == 4  # no size: the default
    detailed = hostile_report(60, detailed=True)
    assert page_count(detailed, 50) == 6  # at most 10 keys a page in full
    assert page_count(detailed, 1) == 60


def test_empty_status_points_to_register():
    assert "/apikey register" in all_text(as_payload(status_page(report([]), now=NOW)))


# --- list, home --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 60, 500])
def test_key_list_fits_slack_and_counts_what_it_leaves_out(n):
    keys = [
        summary(i, label=HOSTILE_LABELS[i % len(HOSTILE_LABELS)][:76] + f"#{i:03d}", alias="a" * 80)
        for i in range(n)
    ]
    payload = as_payload(key_list(keys, NOW))
    check_limits(payload)
    text = all_text(payload)
    shown = sum(
        block["text"]["text"].count("\n• ") + 1
        for block in payload["blocks"][1:-1]
        if block["type"] == "section"
    )
    more = re.search(r"…and (\d+) more", text)
    assert shown + (int(more.group(1)) if more else 0) == n
    if n == 1:
        assert more is None
    if n == 500:
        assert more is not None


def test_key_list_of_sixty_ordinary_keys_shows_them_all():
    keys = [summary(i, label=f"trading-bot-{i:02d}") for i in range(60)]
    text = all_text(as_payload(key_list(keys, NOW)))
    assert all(f"trading-bot-{i:02d}" in text for i in range(60))
    assert "more" not in text


def test_key_list_shows_status_and_never_checked():
    text = all_text(as_payload(GOLDEN_CASES["key_list"]()))
    assert "rotating" in text and "compromised" in text and "not checked yet" in text
    assert "active" not in text


def test_home_view_fits_with_many_keys():
    keys = [
        home_key(
            i,
            label=HOSTILE_LABELS[i % 6][:76] + f"#{i:03d}",
            findings=long_findings(5),
            rotation=RotationState.OVERDUE,
        )
        for i in range(500)
    ]
    team = TeamPicture(
        key_count=900,
        by_tier={"Read": 900},
        critical=[(k, k.findings[:2]) for k in keys],
        overdue=[k.rotation for k in keys],
        open_incidents=[
            OpenIncident(f"i{i}", k.summary.label, None, NOW, False, 1) for i, k in enumerate(keys)
        ],
    )
    picture = HomePicture("U0ALICE", True, keys, [], team_key_count=900, team=team)
    payload = as_payload(home_view(picture, now=NOW))
    assert payload["type"] == "home"
    check_limits(payload, max_blocks=100)
    text = all_text(payload)
    assert "…and" in text and "The team" in text and "How it works" in text
    assert "<!channel>" not in text and "<!here>" not in text


def test_home_has_one_line_and_one_menu_per_key_and_no_red_button():
    payload = as_payload(home_view(home_picture_for("U0ALICE", admin=False), now=NOW))
    buttons = [el for b in payload["blocks"] if b["type"] == "actions" for el in b["elements"]]
    pairs = [(b["action_id"], b.get("value")) for b in buttons]
    assert pairs == [(Action.REGISTER_OPEN, None), (Action.HOME_CHECK, None)]
    assert "danger" not in styles(payload)
    menus = menu_choices(payload)
    assert menus["key0001"] == ["details", "rotate", "report", "remove"]
    # the key with an open incident offers the incident, not a rotation or a second report
    assert menus["key0005"] == ["details", "incident", "remove"]
    rows = [b["text"]["text"] for b in payload["blocks"] if "accessory" in b]
    assert len(rows) == 3 and all("\n" not in row for row in rows)
    assert "_critical_: Withdrawals are enabled · +1 more" in rows[0]
    assert "admin view" not in all_text(payload)


def test_home_admin_view_gives_critical_keys_one_line_and_a_menu():
    payload = as_payload(home_view(home_picture_for("U0BOSS", admin=True), now=NOW))
    assert "danger" not in styles(payload)
    assert menu_choices(payload) == {"key0001": ["details", "rotate", "report", "remove"]}
    assert (Action.HOME_CHECK_ALL, None) in [
        (el["action_id"], el.get("value"))
        for b in payload["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
    ]


# --- remove, notices ---------------------------------------------------------------------


def test_remove_confirmation_buttons_and_honesty_about_binance():
    payload = as_payload(remove_confirmation(summary(1, label=HOSTILE_LABELS[2])))
    check_limits(payload)
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    remove, cancel = actions["elements"]
    assert (remove["action_id"], remove["value"], remove["style"]) == (
        Action.REMOVE_CONFIRM,
        "key0001",
        "danger",
    )
    assert "confirm" in remove
    assert (cancel["action_id"], cancel["value"]) == (Action.REMOVE_CANCEL, "key0001")
    text = all_text(payload)
    assert "does *not* delete the key in Binance" in text and "API Management" in text


def test_removed_and_cancelled_messages_escape_labels():
    for message in (
        removed_message(summary(1, label="<!channel>"), "U0BOB"),
        remove_cancelled("<!channel>"),
    ):
        payload = as_payload(message)
        check_limits(payload)
        assert "&lt;!channel&gt;" in all_text(payload)


def test_secret_warning_names_the_matched_key_and_the_way_out():
    matched = all_text(as_payload(secret_in_text_warning(SecretKind.KEY_OR_SECRET, "bot")))
    assert "leaked" in matched and "rotate" in matched
    assert "`/apikey compromised bot`" in matched and "/apikey register" in matched
    unmatched = all_text(as_payload(secret_in_text_warning(SecretKind.PRIVATE_KEY, None)))
    assert "compromised" not in unmatched and "a private key" in unmatched
    hostile = as_payload(secret_in_text_warning(SecretKind.KEY_OR_SECRET, "<!channel>"))
    check_limits(hostile)


def test_error_and_working_messages_are_escaped_and_bounded():
    for message in (
        error_message("No key “<!channel>” " + "x" * 5000),
        working_message("Asking Binance about <!here> keys…"),
    ):
        payload = as_payload(message)
        check_limits(payload)
    assert all_text(as_payload(error_message("oops"))).startswith(":warning:")


def test_message_fallback_text_is_bounded():
    assert len(Message(text="x" * 5000, blocks=[]).as_kwargs()["text"]) <= 3000


@pytest.mark.parametrize(
    ("rejected", "probe", "shown"),
    [
        (False, None, "key not checked with Binance yet"),
        (False, "alive", "key still accepted by Binance"),
        (False, "unknown", "key state unknown (Binance could not be asked)"),
        (True, "rejected", "key rejected by Binance (deleted, or its IP whitelist no longer"),
    ],
)
def test_home_says_what_binance_said_about_an_incidents_key(rejected, probe, shown):
    from dataclasses import replace

    picture = home_picture_for("U0BOSS", admin=True)
    (incident,) = picture.team.open_incidents
    incident = replace(incident, key_rejected=rejected, last_probe_result=probe)
    team = replace(picture.team, open_incidents=[incident])
    text = all_text(as_payload(home_view(replace(picture, team=team), now=NOW)))
    assert shown in text


def test_a_mistake_in_a_known_subcommand_gets_its_reason_not_the_whole_help():
    from bot.commands import parse_command

    typo = parse_command("rotate bot every 1w")
    unknown = parse_command("frobnicate")
    assert not typo.show_all and unknown.show_all
    short = all_text(as_payload(help_message(typo.reason, show_all=typo.show_all)))
    assert "period in days" in short and "/apikey help" in short and "incidents" not in short
    full = all_text(as_payload(help_message(unknown.reason, show_all=unknown.show_all)))
    assert "frobnicate" in full and "incidents" in full and "audit" in full


# --- the audit chain's verdict and checkpoints ---------------------------------------------------


def test_audit_verdicts_name_what_is_wrong():
    read = Witness(WitnessState.READ, "C0ALERTS", (AUDIT_CHECKPOINT,))
    intact = ChainReport(events=1240, broken_at=None, reason=None, verified=1240)
    tampered = ChainReport(
        events=1200,
        broken_at=17,
        reason="its content was altered, or it was forged: its MAC does not fit",
        checkpoints_checked=1,
        witness_problems=(
            "the checkpoint of 2026-12-04 09:30 UTC witnessed 1234 events but the table holds "
            "1200: events were deleted (the newest ones, or the database was restored from an "
            "older copy)",
        ),
        verified=16,
    )
    text = all_text_of(chain_report(tampered, read))
    assert (
        "TAMPERED" in text and "#17" in text and "1,200" in text and "events were deleted" in text
    )
    many = ChainReport(events=0, broken_at=None, reason=None, witness_problems=("gone",) * 5)
    assert "2 more checkpoints disagree" in all_text_of(chain_report(many, read))
    nothing = chain_report(intact, Witness(WitnessState.NONE))
    assert "nothing outside the database witnesses the chain" in all_text_of(nothing)
    unread = chain_report(intact, Witness(WitnessState.UNREADABLE, "C0ALERTS", problem="<b>"))
    assert "&lt;b&gt;" in all_text_of(unread)  # Slack's error is shown escaped


def all_text_of(message: Message) -> str:
    return json.dumps(message.as_kwargs(), ensure_ascii=False)


def test_audit_entries_read_in_words_with_short_ids():
    from bot.blocks.audit import ACTION_WORDS, audit_trail
    from bot.model.audit import AuditEntry

    incident = "0123456789abcdef0123456789abcdef"
    entry = AuditEntry(
        id=7,
        at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        actor="U0ALICE",
        action="incident.raise",
        target="trading-bot",
        detail={"incident_id": incident},
    )
    text = json.dumps(audit_trail([entry], label=None, days=7).as_kwargs())
    assert "reported the key compromised" in text and "incident.raise" not in text
    assert "incident id: 01234567" in text and incident not in text
    assert all(words and "." not in words for words in ACTION_WORDS.values())


def test_the_rotate_form_names_the_key_by_label_never_by_internal_id():
    from bot.blocks.rotation.rotation import rotate_modal

    metadata = json.dumps({"key_id": "0123456789abcdef0123456789abcdef"})
    view = rotate_modal(label="trading-bot", key_type="ED25519", private_metadata=metadata)
    blocks = json.dumps(view.to_dict()["blocks"])
    assert "trading-bot" in blocks and "Ed25519" in blocks
    assert "01234567" not in blocks and "Key id" not in blocks


_WORDING_MISTAKES = {
    "a key type in capitals (Binance writes Ed25519)": re.compile(r"\bED25519\b"),
    "a singular with a plural noun": re.compile(
        r"(?<![\d.,])\b1 (days|keys|events|findings|steps|rows|accounts|withdrawals|hours|"
        r"minutes|seconds|versions|incidents|permissions)\b"
    ),
    "a plural permission name with 'was'": re.compile(
        r"\b(Withdrawals|Futures|Options|Internal transfers?) was\b"
    ),
}


def _shown_texts(node) -> list[str]:
    """Every text a person sees in a rendered screen (not option values or ids)."""
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for key, v in node.items() if key != "value" for t in _shown_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _shown_texts(v)]
    return []


def test_every_golden_screen_is_worded_consistently():
    """Issue 16: "every 1 days", "Withdrawals was enabled", ED25519 beside Ed25519. Every
    screen kept as a golden file is read as a person would, and checked for those."""
    problems = []
    for path in sorted(GOLDEN.glob("*.json")):
        for text in _shown_texts(json.loads(path.read_text())):
            for what, pattern in _WORDING_MISTAKES.items():
                if pattern.search(text):
                    problems.append(f"{path.name}: {what}: {text[:80]!r}")
    assert problems == []
