"""The offline sandbox: Block Kit rendered as text (pure), and the console driven end to end as
a subprocess (`python -m bot.sandbox.console`) with a script on stdin, like a newcomer would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.sandbox.render import (
    find_buttons,
    mrkdwn_to_text,
    render_blocks,
    render_payload,
    render_view,
    wrap,
)

ROOT = Path(__file__).resolve().parent.parent

# --- render.py (pure) ------------------------------------------------------------------------


def test_mrkdwn_is_lightly_converted():
    text = "<@U123> and <@U9|bob> in <#C1|general>: see <https://x.io/a|the docs> or <https://y.io>"
    assert mrkdwn_to_text(text) == (
        "@U123 and @bob in #general: see the docs (https://x.io/a) or https://y.io"
    )
    assert mrkdwn_to_text("*bold* &lt;label&gt; &amp; <!here>") == "*bold* <label> & @here"
    assert mrkdwn_to_text("<!date^1700000000^{date}|Nov 14>") == "Nov 14"


def test_header_section_fields_context_divider():
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Key status"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*4 keys*: owner <@U0A>"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Tier*\nRead"},
                {"type": "mrkdwn", "text": "*IP whitelist*\nyes"},
            ],
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "checked &lt;now&gt;"}]},
    ]
    text = render_blocks(blocks)
    lines = text.split("\n")
    assert lines[0] == "Key status"
    assert set(lines[1]) == {"═"} and len(lines[1]) == len("Key status")
    assert "*4 keys*: owner @U0A" in text
    assert re.search(r"\*Tier\*\s+\*IP whitelist\*", text)
    assert re.search(r"Read\s+yes", text)
    assert "─" * 100 in text
    assert "  ┆ checked <now>" in text
    assert "\x1b[" not in text  # no terminal styling unless asked for
    assert "\x1b[" in render_blocks(blocks, style=True)


def test_buttons_are_numbered_in_document_order():
    blocks = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Remove *old-bot*?"},
            "accessory": {
                "type": "button",
                "action_id": "help",
                "text": {"type": "plain_text", "text": "Help"},
            },
        },
        {
            "type": "actions",
            "block_id": "b1",
            "elements": [
                {
                    "type": "button",
                    "action_id": "apikey_remove_confirm",
                    "value": "k1",
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Remove"},
                },
                {
                    "type": "button",
                    "action_id": "apikey_status_page",
                    "value": "r:1",
                    "text": {"type": "plain_text", "text": "Next ▶"},
                },
            ],
        },
    ]
    text = render_blocks(blocks, first_number=3)
    assert "[3] Help" in text and "[4] Remove" in text and "[5] Next ▶" in text
    buttons = find_buttons(blocks)
    assert [b.text for b in buttons] == ["Help", "Remove", "Next ▶"]
    assert (buttons[1].action_id, buttons[1].value, buttons[1].block_id) == (
        "apikey_remove_confirm",
        "k1",
        "b1",
    )


def test_view_shows_title_inputs_and_footer():
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Register a key"},
        "submit": {"type": "plain_text", "text": "Check & save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "register_label",
                "label": {"type": "plain_text", "text": "Label"},
                "hint": {"type": "plain_text", "text": "A short unique name."},
                "element": {"type": "plain_text_input", "action_id": "label"},
            },
            {
                "type": "input",
                "block_id": "register_key_type",
                "optional": True,
                "label": {"type": "plain_text", "text": "Key type"},
                "element": {
                    "type": "static_select",
                    "action_id": "key_type",
                    "options": [
                        {"text": {"type": "plain_text", "text": "HMAC"}, "value": "HMAC"},
                        {"text": {"type": "plain_text", "text": "Ed25519"}, "value": "ED25519"},
                    ],
                    "initial_option": {
                        "text": {"type": "plain_text", "text": "HMAC"},
                        "value": "HMAC",
                    },
                },
            },
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "Owner"},
                "element": {"type": "users_select", "action_id": "owner", "initial_user": "U1"},
            },
        ],
    }
    text = render_view(view)
    assert "│ Register a key │" in text
    assert "Label: [text]" in text and "┆ A short unique name." in text
    assert "Key type (optional): [choose one of] HMAC / Ed25519 (default: HMAC)" in text
    assert "Owner: [a person] (default: @U1)" in text
    assert text.rstrip().endswith("(Cancel)  (Check & save ▸)")
    assert render_payload({"view": view}) == text


def test_payload_with_json_string_blocks_text_fallback_and_attachments():
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "from JSON"}}]'
    assert render_payload({"blocks": blocks, "text": "fallback"}) == "from JSON"
    assert render_payload({"text": "just <@U1>"}) == "just @U1"
    with_attachment = render_payload(
        {
            "text": "top",
            "attachments": [
                {"blocks": [{"type": "section", "text": {"type": "plain_text", "text": "inner"}}]}
            ],
        }
    )
    assert with_attachment == "top\n▌ inner"


def test_long_lines_wrap_at_width_keeping_list_indent():
    line = "• " + " ".join(["word"] * 60)
    wrapped = wrap(line, 40).split("\n")
    assert len(wrapped) > 1
    assert all(len(row) <= 40 for row in wrapped)
    assert all(row.startswith("  ") for row in wrapped[1:])


def test_unknown_blocks_do_not_break_rendering():
    text = render_blocks(
        [
            {"type": "video", "title": {"type": "plain_text", "text": "x"}},
            {"type": "image", "alt_text": "chart"},
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "hi "},
                            {"type": "user", "user_id": "U1"},
                            {"type": "emoji", "name": "thumbsup", "unicode": "1f44d"},
                        ],
                    }
                ],
            },
        ]
    )
    assert "[video block]" in text and "[image: chart]" in text and "hi @U1👍" in text


# --- the console, as a newcomer runs it ------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MASTER_KEY"))}
    env.pop("DATABASE_URL", None)
    env.pop("BINANCE_API_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    # The console wraps at the terminal's width (at most 100): the same width wherever the tests
    # run, with a terminal or without one (pytest-xdist's workers have none: 80 columns).
    env["COLUMNS"] = "100"
    return env


def run_script(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.sandbox.console", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_env(),
    )


def _section(output: str, command: str) -> str:
    """The output between ``command`` (as echoed at the prompt) and the next prompt."""
    start = output.index("sandbox> " + command)
    end = output.find("sandbox> ", start + 1)
    return output[start : end if end != -1 else None]


SCRIPT = """\
/apikey status all
press 5
/apikey status deleted
/apikey list
/apikey help
demo-key hmac read
/apikey register
from-the-console
demo
{user}
1
HMAC
!demo
!demo

/apikey status from-the-console
/apikey remove healthy-reader
press Remove
/apikey status healthy-reader
binance delete withdrawer
/apikey status withdrawer
calls
home
binance keys
exit
"""


def test_scripted_session_tries_every_command():
    result = run_script(SCRIPT.format(user=""))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "Nothing leaves this machine" in out

    status = _section(out, "/apikey status all")
    for label in ("healthy-reader", "withdrawer", "no-whitelist", "deleted"):
        assert label in status
    assert "critical" in status and "_critical_: Binance rejected this key" in status
    assert "⋮ [5] Details" in status  # each key's menu: its options are chosen by number
    details = _section(out, "press 5")  # withdrawer's Details: the key in full
    assert "(pressed “Details”)" in details and "*withdrawer*" in details
    assert "beyond the declared purpose" in details and "Withdrawals are enabled" in details
    one = _section(out, "/apikey status deleted")
    assert "Either it was deleted" in one and "IP whitelist" in one  # the -2015 ambiguity

    listing = _section(out, "/apikey list")
    for label in ("healthy-reader", "withdrawer", "no-whitelist", "deleted"):
        assert label in listing
    assert "/apikey register" in _section(out, "/apikey help")

    made = _section(out, "demo-key hmac read")
    api_key = re.search(r"API key: ([A-Za-z0-9]{64})", made).group(1)
    register = _section(out, "/apikey register")
    assert "Register a key" in register
    assert "from-the-console" in register and "private message" in register
    assert api_key not in register  # the bot echoes no key material
    assert "1 key" in _section(out, "/apikey status from-the-console")

    assert "[1]" in _section(out, "/apikey remove healthy-reader")
    removed = _section(out, "press Remove")
    assert "healthy-reader" in removed and "removed" in removed.lower()
    assert "No registered key" in _section(out, "/apikey status healthy-reader")
    assert "deleted" in _section(out, "/apikey status withdrawer")
    assert '"method": "response_url"' in _section(out, "calls")
    home = _section(out, "home")
    assert "App Home" in home and "[1] Register a key" in home
    simulated = _section(out, "binance keys")
    assert re.search(r"withdrawer\s.*DELETED", simulated)
    assert re.search(r"demo-1 = from-the-console\s.*active", simulated)


def _register(label: str, key_type: str = "hmac", tier: str = "read") -> list[str]:
    """Script lines: make a fake key, then register it at the form's prompts with !demo."""
    return [f"demo-key {key_type} {tier}", "/apikey register", label, "", "", "1", key_type]


def test_form_errors_can_be_corrected_and_status_pages(tmp_path):
    """A wrong secret is refused in the form; the retry keeps earlier answers as defaults.
    With nine keys the status report fits one page, one line a key; choosing "Report
    compromised" from a key's menu asks first, and its one button reports the key."""
    script = [
        *_register("pasted-later", "ed25519", "trade")[:5],
        "trading",
        "ed25519",
        "!demo",
        "not-the-secret",
        "",  # the box for a key beyond its purpose: not ticked
        "y",  # correct the form: Enter keeps every earlier answer ...
        *[""] * 6,
        "!demo",  # ... but the secret
        "",
        "/apikey status pasted-later",
        "/apikey frobnicate",
        "binance grant pasted-later futures",
        "/apikey status pasted-later",
    ]
    for i in range(4):
        script += [*_register(f"extra-{i}"), "!demo", "!demo", ""]
    script += [
        "/apikey status all",
        "press 99",
        "press Nonexistent",
        "press Report compromised",  # every key's menu has one: which?
        "press 3",  # the first key's (its menu: Details, Rotate, Report compromised, Remove)
        "buttons",
        "press 1",
    ]
    result = run_script("\n".join(script) + "\n", "--data-dir", str(tmp_path))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    register = _section(out, "/apikey register")
    assert "✗ Secret key or private key:" in register and "Correct the form" in register
    assert "Key registered" in register
    assert "1 key" in _section(out, "/apikey status pasted-later")
    assert "frobnicate" in _section(out, "/apikey frobnicate")
    after = out[out.rindex("sandbox> /apikey status pasted-later") :]
    assert "Futures enabled" in after

    first_page = _section(out, "/apikey status all")
    assert "9 keys" in first_page and "Next" not in first_page and "Page" not in first_page
    assert "There is no button [99]" in out
    assert "No button matches “Nonexistent”" in out
    assert "More than one button matches “Report compromised”" in out
    asked = _section(out, "press 3")
    assert "(pressed “Report compromised”)" in asked and "as compromised?" in asked
    assert "Compromised key" not in asked  # nothing happens before the confirmation
    assert "[1] Yes, report it compromised" in _section(out, "buttons")
    reported = _section(out, "press 1")
    assert "Compromised key: deleted" in reported
    shown = {label for label in re.findall(r"\*([\w-]+)\* ·", first_page)}
    assert {"pasted-later", "withdrawer", "deleted", "extra-3"} <= shown
    assert (tmp_path / "apikey-bot.db").exists()  # --data-dir keeps the data


class _Terminal:
    """A child process driven like a person at a terminal: wait for a prompt, then answer."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.sandbox.console", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=_env(),
        )
        self.buffer = ""
        self.position = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            with self._lock:
                self.buffer += chunk.decode("utf-8", "replace")

    def expect(self, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                match = re.compile(pattern, re.DOTALL).search(self.buffer, self.position)
            if match:
                self.position = match.end()
                return match
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} in:\n{self.buffer[self.position :]}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=20)


def test_a_pasted_private_key_registers_through_the_prompts():
    term = _Terminal()
    try:
        term.expect("sandbox> ")
        term.send("demo-key rsa read")
        made = term.expect(r"API key: ([A-Za-z0-9]{64})\s+private key[^\n]*\n")
        api_key = made.group(1)
        pem = term.expect(r"(-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----)")
        secret = "\n".join(line.strip() for line in pem.group(1).splitlines())
        term.expect("sandbox> ")
        term.send("/apikey register")
        for prompt, answer in [
            ("Label: ", "rsa-reader"),
            ("Binance account", ""),
            ("Owner", "U0ALICE"),
            (r"Choose 1-3: ", "1"),
            (r"Choose 1-6 \[Enter = Ed25519 · the bot generates the key pair", "RSA"),
            (r"API key[^:\n]*: ", api_key),
        ]:
            term.expect(prompt)
            term.send(answer)
        term.expect(r"\(hidden\): ")
        for line in secret.splitlines():
            term.send(line)
        term.expect(r"Enter for none: ")  # the box for a key beyond its purpose
        term.send("")
        summary = term.expect(r"private message.*?sandbox> ", timeout=30)
        assert "rsa-reader" in summary.group(0)
        assert term.buffer.count("BEGIN PRIVATE KEY") == 1  # printed by demo-key, never echoed
        term.send("/apikey status rsa-reader")
        term.expect(r"1 key.*?sandbox> ", timeout=30)
        term.send("exit")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert "Traceback" not in term.buffer


@pytest.mark.parametrize("argv", [["--help"]])
def test_help_flag(argv):
    result = run_script("", *argv, timeout=30)
    assert result.returncode == 0
    assert "--data-dir" in result.stdout and "--latency-ms" in result.stdout


def test_a_binance_outage_can_be_ended_before_it_runs_out():
    script = (
        "binance outage\n/apikey status healthy-reader\n"
        "binance outage off\n/apikey status healthy-reader\nexit\n"
    )
    result = run_script(script)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "(`binance outage off` ends it sooner)" in _section(out, "binance outage\n")
    statuses = out.split("sandbox> /apikey status healthy-reader")
    assert "Could not check with Binance" in statuses[1]
    assert "The outage is over" in statuses[1]
    assert "Could not check" not in statuses[2] and "Read tier" in statuses[2]


def test_a_button_on_the_home_tab_is_answered():
    """A click in a view comes back with the view as Slack stored it (with its id): the console
    pressed buttons of the App Home with the view as the bot sent it (no id), which the bot's
    request gate rightly refused with HTTP 400."""
    result = run_script("home\npress Check my keys now\nexit\n")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    pressed = _section(out, "press Check my keys now")
    assert "400" not in pressed and "Asking Binance about the keys" in pressed
    assert "withdrawer" in pressed  # the report arrived, by direct message


def test_the_sandbox_walks_a_generated_pair_registration():
    """Register with the default key type (the bot generates an Ed25519 pair), create the
    self-generated key on the simulated Binance from its public key, enter the API key."""
    script = (
        "/apikey register\ngen-bot\ndemo\n\n2\n\n\n\n\n"
        "binance self-generated gen-bot trade\n"
        "press Enter the API key\n!demo\n\n"
        "/apikey status gen-bot\nexit\n"
    )
    result = run_script(script)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    registered = _section(out, "/apikey register")
    assert "Key pair generated" in registered and "BEGIN PUBLIC KEY" in registered
    assert "BEGIN PRIVATE KEY" not in out  # the private key never leaves the bot
    assert "Binance never saw the private key" in _section(out, "binance self-generated")
    assert "Key registered" in _section(out, "press Enter the API key")
    assert "Trade tier" in _section(out, "/apikey status gen-bot")


# --- demo governor -----------------------------------------------------------------------------


def _after(output: str, echoed: str) -> str:
    """The output from ``echoed`` (a line as a walk or the prompt echoes it) to the next one."""
    start = output.index(echoed)
    ends = [i for m in ("sandbox> ", "governor> ") if (i := output.find(m, start + 1)) != -1]
    return output[start : min(ends) if ends else None]


def test_demo_governor_walks_creation_leak_containment_and_successor():
    """A newcomer types `demo governor`: a governor for the demo master account, a key the bot
    creates in a sub-account, reported compromised, deleted through Binance's API and proven,
    and its successor made in one click. Sub-account commands take bad input politely first."""
    result = run_script(
        "binance sub-accounts\nbinance sub-account add not-an-email\ndemo governor\nexit\n",
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "has no sub-accounts" in _after(out, "sandbox> binance sub-accounts")
    assert "is not an email address" in _after(out, "sandbox> binance sub-account add")
    assert "the governor stops" not in out
    assert "governor of *demo*" in _after(out, "governor> /apikey governor demo")
    assert "sub-accounts: maker-bot@example.com" in _after(out, "governor> press Enter the API")
    created = _after(out, "governor> /apikey register")
    assert "Key registered" in created and "created the key" in created
    held = _after(out, "governor> binance sub-accounts")
    assert re.search(r"ED25519 active\s+read, trade; IPs: 203\.0\.113\.7, 127\.0\.0\.1", held)
    leak = _after(out, "governor> /apikey compromised maker-bot")
    assert "Compromised key: maker-bot" in leak
    assert re.search(
        r"Deleted by the bot through Binance's API \d+(\.\d)? s after the report", leak
    )
    assert "done by the bot: deleted through Binance's API" in leak
    gone = _after(out[out.index("5. Contained") :], "governor> binance sub-accounts")
    assert "ED25519 DELETED" in gone
    successor = _after(out, "governor> press Create a successor")
    assert "Registered *maker-bot*" in successor and "made a successor" in successor
    replaced = successor + _after(out, "governor> binance sub-accounts\n  maker-bot@example.com: 2")
    assert re.search(r"DELETED .*\n.*ED25519 active\s+read, trade; IPs: 203\.0\.113\.7", replaced)
    assert "contained by the bot in" in _after(out, "governor> /apikey incidents")
    assert "The walk is over" in out
    assert "BEGIN PRIVATE KEY" not in out  # no private key is ever shown, governor's or minted
