"""``apikey-bot sandbox``: try every command with no Slack workspace and no Binance account.

Starts, all on 127.0.0.1, the Binance simulator (seeded with demo keys), a stand-in for Slack and
the bot itself, registers the demo keys through the real modal path, then reads commands from the
terminal (or from a piped script): ``/apikey …`` lines go to the bot as signed slash commands,
modals are filled in at prompts, buttons are pressed by name or number, and every reply the bot
sends to "Slack" is printed as text.

This module is the prompt loop and its dispatch; the rest of the sandbox console lives beside it:
``startup`` (command line, data directory, the local stack), ``terminal`` (what the person reads
and types), ``replies`` (what the bot sends to Slack, as text, and its buttons), ``forms`` (modals
filled in at prompts), ``demo`` (demo keys and the ``binance …`` commands) and ``drill`` (the
sandbox's people and channels, the scheduler's clock and ``demo drill``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from bot.ids import COMMAND, Action, Block, Callback
from bot.sandbox.demo import DEMO_SHORTCUT, DemoBinance, register_demo_keys
from bot.sandbox.drill import (
    CHANNELS,
    PEOPLE,
    Person,
    SandboxClock,
    channel_id,
    drill_lines,
    find_person,
    next_due,
    parse_duration,
)
from bot.sandbox.forms import Answers, FormPrompts, has_inputs
from bot.sandbox.governor_demo import INTRO, OUTRO, governor_demo_lines
from bot.sandbox.render import WIDTH, text_of
from bot.sandbox.replies import BotActivity, SlackReplies
from bot.sandbox.requests import (
    DEFAULT_TEAM,
    SANDBOX_CHANNEL,
    SANDBOX_USER,
    BotReply,
    FormValues,
    SignedClient,
    app_home_opened,
    block_action,
    message_event,
    slash_command,
    view_submission,
)
from bot.sandbox.startup import banner, log_to, open_data_dir, parser, start_stack
from bot.sandbox.terminal import Terminal, read_hidden
from bot.services.custody.key_pairs import waiting_pairs

PROMPT = "sandbox> "
MAX_STOPS = 500  # `advance`: at most this many stops at due jobs on the way

HELP = """\
Console commands (anything starting with /apikey goes to the bot, as the person acting):
  /apikey <text>                 a slash command, e.g. /apikey status all, /apikey help
  press <number|text>            press a button of the last reply, e.g. press 1, press Next
                                 (or an option of a key's ⋮ menu, by its number)
  buttons                        show the buttons you can press
  home                           open the app's Home tab (your keys, a Register button)
  demo-key [hmac|ed25519|rsa] [read|trade|withdraw]
                                 make a new fake key on the simulated Binance and print it, to
                                 paste into the register form (or type !demo at its prompts)
  binance keys                   the keys the simulated Binance holds
  binance delete <key>           delete a key on Binance (<key> = a label or an API key)
  binance grant <key> <perm>     turn a permission on:  read trade withdraw transfer
  binance revoke <key> <perm>      universal-transfer margin futures options portfolio-margin
                                   fix-trade fix-read (or Binance's own field names)
  binance whitelist <key> on|off set or drop the key's IP whitelist
  binance block-ip <key> on|off  whitelist without this bot's IP (Binance answers -2015)
  binance outage [count | off]   the next <count> (10) Binance requests fail with HTTP 503
  binance latency <ms>           slow Binance down (over 2000 ms, the register form waits)
  binance self-generated <label> [read|trade|withdraw]
                                 create in Binance the key of a pair the bot generated
  as @you|@olivia|@max           act as another person: you (admin), olivia (key owner), max
                                 (member); also as admin, as owner, as member
  who                            who is acting, and the people of this workspace
  say #channel <text>            post a message in a channel as the person acting (the bot looks
                                 for leaked keys); !demo in the text is the last demo key's secret
  tick                           run the bot's scheduled work that is due now
  advance <n>m|h|d|w             move the scheduler's clock forward (e.g. advance 1d), then tick
  demo drill                     walk register, reminder, rotate, leak, incident, close
  demo governor                  walk a governor: a key created in a sub-account by the bot,
                                 leaked, deleted through Binance's API in seconds, replaced
  binance sub-accounts           the demo master account's sub-accounts and their keys
  binance sub-account add <email>
                                 a new sub-account of the demo master account
  calls                          the raw Slack calls of the last command (JSON)
  help                           this text
  exit                           leave (also quit, or Ctrl-D)
In a form: Enter takes the default shown in [brackets]; Ctrl-D or Ctrl-C cancels the form.
"""


class Console:
    """The read-eval-print loop: reads a line, sends it to the bot or runs it, shows the replies.

    The person's side goes through ``term``; what the bot sends to Slack is shown by
    ``replies``; modals are filled in by ``forms``; ``demo`` drives the simulated Binance."""

    def __init__(
        self,
        stack: Any,
        *,
        team_id: str,
        term: Terminal,
        style: bool = False,
        width: int = WIDTH,
    ) -> None:
        self.stack = stack
        self.slack = stack.slack
        self.team_id = team_id
        self.term = term
        self.client = SignedClient(stack.url, secret=_signing_secret(stack))
        activity = BotActivity()
        activity.watch(getattr(stack.services, "background", None))
        runner = getattr(stack.app, "_listener_runner", None)
        activity.watch(getattr(runner, "listener_executor", None))
        self.replies = SlackReplies(self.slack, term, activity=activity, width=width, style=style)
        self.demo = DemoBinance(
            stack.simulator,
            term,
            waiting_pairs=lambda: waiting_pairs(stack.services.engine, team_id),
        )
        self.forms = FormPrompts(term, self.demo, {p.user_id: p.name for p in PEOPLE})
        self.replies.channel_names = dict(CHANNELS)
        self.replies.user_names = {p.user_id: p.name for p in PEOPLE}
        self.actor: Person = PEOPLE[0]
        self.clock = SandboxClock()
        # One time for everything the bot does here: what it stamps (raised at, ticked at) and
        # what the scheduler runs, or a drill's "time to revoke" would mix the two clocks.
        stack.services.clock = self.clock.now
        self.scheduler = stack.scheduler(self.clock, worker_id="sandbox")

    def close(self) -> None:
        self.client.close()
        self.scheduler.close()

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        while True:
            try:
                line = self.term.ask(PROMPT)
            except EOFError:
                self.term.say()
                return 0
            except KeyboardInterrupt:
                self.term.say()
                return 0
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in {"exit", "quit", "q"}:
                return 0
            try:
                self.dispatch(line)
            except KeyboardInterrupt:
                self.term.say("\n(interrupted)")
            except BrokenPipeError:
                raise
            except Exception as exc:  # the console must survive anything the user types
                logging.getLogger(__name__).exception("console command failed: %s", line)
                self.term.say(f"Sorry, that failed in the sandbox: {type(exc).__name__}: {exc}")

    def dispatch(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == COMMAND or word.lower() == "/apikey":
            self.slash(rest)
        elif word == "press":
            self.press(rest)
        elif word == "home":
            self.home()
        elif word == "buttons":
            self.replies.show_buttons()
        elif word in {"help", "?"}:
            self.term.say(HELP)
        elif word == "demo-key":
            self.demo.make_key(rest.split())
        elif word == "binance":
            self.demo.command(rest)
        elif word == "as":
            self.act_as(rest)
        elif word == "who":
            self.who()
        elif word == "say":
            self.say(rest)
        elif word == "tick":
            self.tick(announce=True)
        elif word == "advance":
            self.advance(rest)
        elif word == "demo" and rest == "drill":
            self.drill()
        elif word == "demo" and rest == "governor":
            self.governor_demo()
        elif word == "demo":
            self.term.say("Usage: demo drill | demo governor (or demo-key, to make a key)")
        elif word == "calls":
            self.term.say(
                json.dumps(self.replies.last_calls, indent=2, ensure_ascii=False, default=str)
            )
        elif word.startswith("/"):
            self.term.say(f"This sandbox only knows the {COMMAND} command.")
        else:
            self.term.say(f"Unknown console command “{word}”. Type help, or {COMMAND} help.")

    # --- requests to the bot ------------------------------------------------------------------

    def slash(self, text: str) -> None:
        self.replies.start_command()
        body = slash_command(
            text,
            response_url=self.slack.response_url(),
            user_id=self.actor.user_id,
            team_id=self.team_id,
            channel_id=SANDBOX_CHANNEL,
        )
        self.replies.show_ack(self.client.post(body))
        self.follow()
        self.tick()

    def press(self, which: str) -> None:
        if not which:
            self.term.say("Press which button? e.g. press 1, or press Next.")
            self.replies.show_buttons()
            return
        chosen = self.replies.find_button(which)
        if chosen is None:
            return
        button = chosen.button
        self.term.say(f"(pressed “{button.text}”)")
        if button.url:
            self.term.say(f"(in Slack this would also open {button.url})")
        self.replies.start_command()
        response_url = None if chosen.view else self.slack.response_url()
        message = dict(chosen.message) if chosen.message is not None else None
        channel = (message or {}).pop("_channel", None) or SANDBOX_CHANNEL
        body = block_action(
            button.action_id,
            button.value,
            response_url=response_url,
            text=button.text,
            block_id=button.block_id,
            message=message,
            view=chosen.view,
            user_id=self.actor.user_id,
            team_id=self.team_id,
            channel_id=channel,
            overflow=button.overflow,
        )
        self.replies.show_ack(self.client.post(body))
        self.follow()
        self.tick()

    def home(self) -> None:
        """Open the app's Home tab, as a click on the app's name in Slack does."""
        self.replies.start_command()
        self.replies.show_ack(
            self.client.post(app_home_opened(user_id=self.actor.user_id, team_id=self.team_id))
        )
        self.follow()

    def follow(self) -> None:
        """Show what the bot sends to Slack until it is done; fill in the forms it opens."""
        for view in self.replies.follow():
            if has_inputs(view):
                self.fill_modal(view)

    def fill_modal(self, view: dict[str, Any]) -> None:
        """Ask for the form's inputs and submit it, again while the bot refuses and the person
        wants to correct it; forms the bot pushes next are filled in too."""
        title = text_of(view.get("title")) or "the form"
        self.term.say(f"Fill in “{title}” (Enter takes the [default]; Ctrl-D cancels):")
        answers: Answers = {}
        while True:
            try:
                values = self.forms.ask_values(view, answers)
            except (EOFError, KeyboardInterrupt):
                self.term.say("\n(form cancelled; nothing was sent)")
                return
            reply = self.client.post(
                view_submission(
                    view.get("callback_id", ""),
                    values,
                    view_id=view.get("id") or "V0" + uuid.uuid4().hex[:10].upper(),
                    private_metadata=view.get("private_metadata", ""),
                    blocks=view.get("blocks"),
                    title=title,
                    user_id=self.actor.user_id,
                    team_id=self.team_id,
                )
            )
            self.replies.record_answer("(answer to the form)", reply)
            body = reply.body or {}
            action = body.get("response_action")
            if reply.status != 200:
                self.term.say(f"(the bot answered HTTP {reply.status})")
                return
            if action == "errors":
                self.forms.show_errors(view, body.get("errors") or {})
                if self.term.confirm("Correct the form and submit again?"):
                    continue
                self.term.say("(form closed; the bot accepted nothing)")
                return
            if action in {"update", "push"} and isinstance(body.get("view"), dict):
                caption = "the form now shows" if action == "update" else "another form opens"
                self.replies.show(caption, {"view": body["view"]}, view=body["view"])
                self._remember(view, values)
                self.follow()
                if action == "push" and has_inputs(body["view"]):
                    self.fill_modal(body["view"])
                return
            self.term.say("↳ the form closes")
            self._remember(view, values)
            self.follow()
            self.tick()
            return

    # --- the workspace, its clock and the drill --------------------------------------------------

    def act_as(self, ref: str) -> None:
        person = find_person(ref)
        if person is None:
            names = ", ".join(f"@{p.name} ({p.role})" for p in PEOPLE)
            self.term.say(f"No one here is called “{ref}”. The people here: {names}.")
            return
        self.actor = person
        self.term.say(f"(you now act as @{person.name}, {person.role})")

    def who(self) -> None:
        for person in PEOPLE:
            mark = "→" if person is self.actor else " "
            self.term.say(f" {mark} @{person.name:8} {person.user_id:10} {person.role}")
        names = ", ".join(f"#{name}" for name in CHANNELS.values())
        self.term.say(f"Channels: {names} (alerts go to #alerts).")

    def say(self, rest: str) -> None:
        """``say #channel <text>``: a message from the person acting, as Slack's Events API
        delivers it to the bot (the ``message`` event)."""
        where, _, text = rest.partition(" ")
        channel = channel_id(where) if where.startswith("#") else None
        if channel is None or not text.strip():
            self.term.say("Usage: say #channel <text>, e.g. say #sandbox hello")
            return
        if DEMO_SHORTCUT in text:
            last = self.demo.last_made
            if last is None:
                self.term.say("There is no demo key yet: make one with demo-key.")
                return
            text = text.replace(DEMO_SHORTCUT, last.secret.strip() or last.api_key)
        self.term.say(f"(@{self.actor.name} posted in {self.replies.channel_name(channel)})")
        self.replies.start_command()
        reply = self.client.post(
            message_event(
                text, channel_id=channel, user_id=self.actor.user_id, team_id=self.team_id
            )
        )
        self.replies.record_answer("(HTTP answer to the event)", reply)
        if reply.status != 200:
            self.term.say(f"(the bot answered HTTP {reply.status})")
        self.follow()
        self.tick()

    def tick(self, *, announce: bool = False, wait: bool = True) -> None:
        """Run the scheduled work due by the sandbox's clock, and show what it sends to Slack;
        again while it leaves more work due now (a check that schedules the next one).

        A tick runs its jobs to the end, so ``wait=False`` shows their calls at once; otherwise
        work they handed on is waited for too. Says what ran when ``announce`` or it was not
        nothing (and ``wait``)."""
        ran = 0
        fresh = False
        for _ in range(5):
            report = self.scheduler.tick()
            if not report.claimed:
                break
            if not fresh and self.replies.has_unseen():
                # what the jobs sent is the newest reply: its buttons are the ones to press
                self.replies.start_command()
                fresh = True
            ran += report.claimed
            self.replies.flush()
        if ran and wait:
            self.follow()
        if announce or (ran and wait):
            when = self.clock.now().strftime("%Y-%m-%d %H:%M UTC")
            done = f"{ran} job{'s' if ran != 1 else ''}" if ran else "nothing due"
            self.term.say(f"(scheduler at {when}: {done})")

    def advance(self, rest: str) -> None:
        delta = parse_duration(rest)
        if delta is None:
            self.term.say("Usage: advance <n>m|h|d|w, e.g. advance 1d or advance 12h")
            return
        self.term.say(f"(the clock moves forward {rest.strip()})")
        target = self.clock.now() + delta
        # Stop at each job's due time on the way, as a bot that kept running would have run it:
        # a reminder sent on its day is not "late".
        for _ in range(MAX_STOPS):
            due = next_due(self.stack.services.engine)
            if due is None or due > target:
                break
            self.clock.move_to(due)
            self.tick(wait=False)
        self.clock.move_to(target)
        self.tick(announce=True)

    def drill(self) -> None:
        """``demo drill``: run the drill's lines as if typed; forms take the lines after them."""
        self._walk(
            drill_lines(),
            intro="The drill: register → status → reminder → rotate → leak → incident → close",
            outro="\nThe drill is over. Try it yourself: type help.",
            name="drill",
        )

    def governor_demo(self) -> None:
        """``demo governor``: the governor's walk, run like the drill."""
        self._walk(governor_demo_lines(), intro=INTRO, outro=OUTRO, name="governor")

    def _walk(self, lines: list[str], *, intro: str, outro: str, name: str) -> None:
        """Run a demo's ``lines`` as if typed at a ``name>`` prompt; forms take the lines
        after their command."""
        self.term.scripted_only = True
        try:
            self._run_script(lines, intro=intro, outro=outro, name=name)
        finally:
            self.term.scripted_only = False
            self.term.drop_fed()

    def _run_script(self, lines: list[str], *, intro: str, outro: str, name: str) -> None:
        self.term.say(intro)
        while lines:
            line = lines.pop(0)
            if line.startswith("##"):
                text = line[2:].strip()
                self.term.say(text if line.startswith("##  ") else "\n" + text)
                continue
            self.term.say(f"{name}> {line}")
            answers = []
            while lines and not _is_command(lines[0]):
                answers.append(lines.pop(0))
            self.term.feed(answers)
            self.dispatch(line)
            if self.term.drop_fed():
                self.term.say(f"(the {name} stops: the bot did not answer as it expected)")
                return
        self.term.say(outro)

    def _remember(self, view: dict[str, Any], values: FormValues) -> None:
        """After a registration, the label names that key in ``binance …`` commands."""
        if view.get("callback_id") != Callback.REGISTER:
            return
        label = (values.get(Block.LABEL, {}).get(Action.LABEL) or {}).get("value")
        api_key = (values.get(Block.API_KEY, {}).get(Action.API_KEY) or {}).get("value")
        if label and api_key:
            self.demo.remember(label, api_key)

    # --- start-up --------------------------------------------------------------------------------

    def register_demo_keys(self, seeded: dict[str, Any]) -> dict[str, str | None]:
        """Register the seeded demo keys through the register modal, like a user would.

        Returns each label with None when it was registered, else why the bot refused it."""
        outcome = register_demo_keys(seeded, demo=self.demo, submit=self._submit_registration)
        for _ in range(5):  # what registering started (announcements to #alerts), unshown
            if not self.scheduler.tick().claimed:
                break
        self.stack.wait_idle()
        self.slack.clear()
        return outcome

    def _submit_registration(self, values: FormValues) -> BotReply:
        """Submit the register modal with ``values``; return once the bot is done with it."""
        mark = len(self.slack.calls)
        reply = self.client.post(
            view_submission(
                Callback.REGISTER.value,
                values,
                private_metadata=json.dumps({"channel": SANDBOX_CHANNEL}),
                user_id=SANDBOX_USER,
                team_id=self.team_id,
            )
        )
        self.replies.wait_quietly(mark)
        return reply


DRILL_COMMANDS = {"as", "who", "say", "tick", "advance", "demo-key", "binance", "press"}


def _is_command(line: str) -> bool:
    """In the drill's script: a console command (not an answer to the form before it)."""
    word = line.split(" ", 1)[0]
    return line.startswith("##") or word.lower() == "/apikey" or word in DRILL_COMMANDS


def _signing_secret(stack: Any) -> str:
    secret = stack.settings.slack_signing_secret
    return secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)


def main(argv: Sequence[str] | None = None) -> int:
    """``apikey-bot sandbox``: start everything, register the demo keys, run the console."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    with contextlib.ExitStack() as cleanup:
        try:
            data_dir, where = open_data_dir(args.data_dir, cleanup)
            log_file = data_dir / "sandbox.log"
            cleanup.callback(log_to(log_file).close)
        except OSError as exc:  # a --data-dir that cannot be made or written: say which
            print(
                f"apikey-bot sandbox: cannot use --data-dir {args.data_dir}: "
                f"{exc.strerror or type(exc).__name__}",
                file=sys.stderr,
            )
            return 2
        print("Starting the sandbox (Binance simulator, Slack stand-in, bot)…", flush=True)
        try:
            stack, seeded = start_stack(data_dir, cleanup)
        except Exception as exc:
            logging.getLogger(__name__).exception("sandbox start-up failed")
            print(
                f"apikey-bot sandbox: could not start: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            print(f"(details in {log_file})", file=sys.stderr)
            return 1
        console = _console_at_this_terminal(stack)
        outcome = console.register_demo_keys(seeded)
        stack.simulator.latency = max(0, args.latency_ms) / 1000
        try:
            print(banner(where=where, log_file=log_file, outcome=outcome), flush=True)
            return console.run()
        except BrokenPipeError:  # e.g. piped into `head`: stop quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        finally:
            console.close()
            with contextlib.suppress(OSError):
                print("Stopping the sandbox…", flush=True)


def _console_at_this_terminal(stack: Any) -> Console:
    """A console on stdin/stdout: line editing and styling at a terminal, echo from a pipe."""
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - line editing and history for input()
    term = Terminal(
        out=sys.stdout,
        read_line=input,
        read_secret=read_hidden(sys.stdin),
        echo=not interactive,
    )
    return Console(
        stack,
        team_id=getattr(stack.slack, "team_id", None) or DEFAULT_TEAM,
        term=term,
        style=sys.stdout.isatty() and not os.environ.get("NO_COLOR"),
        width=min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns),
    )


if __name__ == "__main__":
    sys.exit(main())
