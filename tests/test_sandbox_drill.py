"""The sandbox runs the whole drill: a scheduler on a clock the console moves, message updates
drawn with their buttons, several people, an alert channel and channel messages (leak detection),
driven end to end as a subprocess with a script on stdin, like a newcomer would."""

from __future__ import annotations

import re
from datetime import timedelta

from slack_sdk import WebClient

from bot.sandbox.drill import channel_id, find_person, parse_duration
from bot.sandbox.slack_standin import SlackStandIn
from tests.test_sandbox import _section, run_script


def test_the_stand_in_keeps_the_ts_it_answered_so_an_update_names_the_message():
    with SlackStandIn() as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        posted = client.chat_postMessage(channel="C0ALERTS", text="checklist")
        client.chat_update(channel="C0ALERTS", ts=posted["ts"], text="checklist, 1 done")
        post, update = slack.calls_to("chat.postMessage")[0], slack.calls_to("chat.update")[0]
        assert post.answered_ts == posted["ts"] == update.params["ts"] == update.answered_ts


def test_durations_people_and_channels_are_read_as_typed():
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration(" 12 h ") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("soon") is None and parse_duration("-1d") is None
    assert find_person("@olivia").user_id == "U0OLIVIA"
    assert find_person("owner").name == "olivia" and find_person("admin").name == "you"
    assert find_person("@nobody") is None
    assert channel_id("#alerts") == "C0ALERTS" and channel_id("#sandbox") == "C0SANDBOX"
    assert channel_id("#no spaces") is None


ROTATION = """\
as @olivia
demo-key hmac trade
/apikey register
drill-bot
demo

2
HMAC
!demo
!demo

/apikey rotate drill-bot every 16d
advance 2d
press Snooze
who
advance 2d
demo-key hmac trade
/apikey rotate drill-bot
HMAC
!demo
!demo

advance 25h
/apikey rotate drill-bot every 90d
binance delete demo-1
advance 1h
/apikey rotation
advance soon
as @nobody
exit
"""


def test_a_rotation_from_reminder_to_completion():
    result = run_script(ROTATION)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "olivia (key owner)" in out and "#alerts" in out

    reminded = _section(out, "advance 2d")
    assert "Rotation reminder: *drill-bot* is due in 14 days" in reminded
    assert "For: @olivia" in reminded and "a direct message" in reminded
    assert "Sent late" not in reminded  # the clock stopped on the reminder's day
    assert "(scheduler at " in reminded

    rotated = _section(out, "/apikey rotate drill-bot\n")
    assert "Rotation started" in rotated and "delete the old key" in rotated
    assert "OLD key" not in rotated  # the old key has its grace period (on the same clock)
    grace_over = _section(out, "advance 25h")
    assert "OLD key" in grace_over and "#alerts" in grace_over  # the channel is told

    done = _section(out, "advance 1h")
    assert "Rotation of *drill-bot* complete: Binance now rejects the old key" in done
    assert "Sent late" not in done
    snoozed = _section(out, "press Snooze")
    assert "Snoozed" in snoozed and "drill-bot" in snoozed
    assert re.search(r"→ @olivia\s+U0OLIVIA\s+key owner", _section(out, "who"))
    assert "Usage: advance" in _section(out, "advance soon")
    assert "No one here is called “@nobody”" in _section(out, "as @nobody")


INCIDENT = """\
as @olivia
demo-key hmac trade
/apikey register
drill-bot
demo

2
HMAC
!demo
!demo

as @max
say #sandbox oops, the secret: !demo
say #sandbox
as @olivia
/apikey compromised drill-bot
binance delete demo-1
advance 1m
press 1
as @max
press 1
as @olivia
press 1
as @you
press 1
press 1
press 1

Rehearsal: pasted in #sandbox, key deleted.
exit
"""


def test_an_incident_from_a_leak_to_its_closing_summary():
    result = run_script(INCIDENT)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    secret = re.search(r"secret:\n\s+(\S+)", _section(out, "demo-key hmac trade")).group(1)

    leak = _section(out, "say #sandbox oops")
    assert "(@max posted in #sandbox)" in leak
    assert "message in #sandbox, in a thread" in leak and "drill-bot" in leak
    assert secret not in leak.split("(@max posted")[1]  # the bot never echoes the secret
    assert "Usage: say #channel" in _section(out, "say #sandbox\n")

    raised = _section(out, "/apikey compromised drill-bot")
    assert "message in #alerts" in raised and "Compromised key: drill-bot" in raised
    # the scheduler ran: Binance was asked whether the key still works
    assert "Binance still accepts this key" in raised

    rejected = _section(out, "advance 1m")
    assert "the message in #alerts is updated; it now reads" in rejected
    # what Binance said (-2015), no more: step 1 is left to the person who deleted the key
    assert "Binance rejects the key from the bot's address" in rejected
    assert "no longer admits the bot" in rejected
    assert "done by the bot" not in rejected and "[1] Mark done" in rejected
    assert '"method": "chat.update"' not in out  # drawn as a message, not as raw JSON

    presses = out.split("sandbox> press 1")[1:]
    assert len(presses) == 6
    for step, who in ((1, "olivia"), (2, "max"), (3, "olivia"), (4, "you"), (5, "you")):
        assert f"{step} of 5 steps done" in presses[step - 1]
        assert f"done by @{who}" in presses[step - 1]
    closing = presses[5]
    assert "Close the incident" in closing
    assert "Incident closed: drill-bot" in closing and "Timeline" in closing
    assert "Rehearsal: pasted in #sandbox" in closing
    # Raised and rejected on the one sandbox clock (two clocks made it "49 h 0 min").
    assert re.search(
        r"Time until Binance rejected the key:\* (less than a minute|[1-9] min)", closing
    ), closing


def test_demo_drill_walks_the_whole_drill():
    result = run_script("demo drill\nexit\n", timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "the drill stops" not in out
    for fragment in (
        "Key registered",
        "1 key: all fine",
        "Rotation reminder: *drill-bot* is due in 14 days",
        "Rotation started",
        "It matches the registered key *drill-bot*",
        "Compromised key: drill-bot",
        "done by @max",
        "done by @olivia",
        "Incident closed: drill-bot",
        "The drill is over.",
    ):
        assert fragment in out, fragment
    assert out.index("Rotation started") < out.index("Compromised key") < out.index("closed")


HAND_OVER_AND_FALSE_ALARM = """\
as @olivia
demo-key hmac trade
/apikey register
ho-bot
demo

2
HMAC
!demo
!demo

/apikey compromised ho-bot
press Hand over command
@max
as @you
press Close incident
2
Only a test key was pasted.
exit
"""


def test_a_hand_over_by_name_and_a_false_alarm_in_the_sandbox():
    result = run_script(HAND_OVER_AND_FALSE_ALARM)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    raised = _section(out, "/apikey compromised ho-bot")
    assert "Commander:* @olivia" in raised and "[7] Hand over command" in raised
    assert "#alerts (open it" in raised  # a channel is shown by its name, not its id
    handed = _section(out, "press Hand over command")
    assert "New commander [@olivia] (a person" in handed  # people are picked by name
    assert "Commander:* @max" in handed and "@max now leads the response" in handed
    closed = _section(out, "press Close incident")
    assert "False alarm: the key did not leak" in closed
    assert "Closed as a false alarm by @you" in closed and "back in normal use" in closed
