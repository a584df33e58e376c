"""A modal filled in at the prompts: one question per input block, the answers turned into the
``state.values`` Slack sends with the submission.

Enter takes the default shown in [brackets]: the element's initial value, or the answer given
before when the bot refused the submission and the person corrects the form. Choices are picked by
number, value or the start of their text. At the register form's key prompts, ``!demo`` stands
for the last demo key (a new one when a different key type was chosen).
"""

from __future__ import annotations

import re
from typing import Any

from bot.ids import Action, Block
from bot.sandbox.demo import DEMO_SHORTCUT, DemoBinance, DemoKey
from bot.sandbox.render import element_options, mrkdwn_to_text, text_of
from bot.sandbox.requests import SANDBOX_CHANNEL, SANDBOX_USER, FormValues
from bot.sandbox.terminal import Terminal, loosely

Answers = dict[tuple[str, str], dict[str, Any]]  # (block_id, action_id) -> the element's state


class FormPrompts:
    """Asks for each input of a modal and builds the state its submission carries."""

    def __init__(
        self, term: Terminal, demo: DemoBinance, user_names: dict[str, str] | None = None
    ) -> None:
        self.term = term
        self.demo = demo
        self.user_names = user_names or {}  # user id -> name: a person is picked as @name
        self._answers: Answers = {}

    def ask_values(self, view: dict[str, Any], answers: Answers) -> FormValues:
        """Ask for every input of ``view``; ``answers`` (earlier ones are the defaults) is updated.

        Raises EOFError or KeyboardInterrupt when the person cancels the form."""
        self._answers = answers
        values: FormValues = {}
        for index, block in enumerate(view.get("blocks") or []):
            if block.get("type") != "input":
                continue
            element = block.get("element") or {}
            block_id = block.get("block_id") or f"block_{index}"
            action_id = element.get("action_id") or f"action_{index}"
            previous = answers.get((block_id, action_id))
            state = self._ask_element(block, element, previous)
            if state is not None:
                values.setdefault(block_id, {})[action_id] = state
                answers[(block_id, action_id)] = state
        return values

    def show_errors(self, view: dict[str, Any], errors: dict[str, str]) -> None:
        """The bot's ``response_action: errors``, each under its input's label."""
        labels = {
            b.get("block_id"): text_of(b.get("label"))
            for b in view.get("blocks") or []
            if b.get("type") == "input"
        }
        self.term.say("↳ the form refuses the submission:")
        for block_id, message in errors.items():
            self.term.say(f"  ✗ {labels.get(block_id, block_id)}: {mrkdwn_to_text(str(message))}")

    def _ask_element(
        self, block: dict[str, Any], element: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        label = text_of(block.get("label")) or element.get("action_id", "?")
        optional = bool(block.get("optional"))
        kind = element.get("type", "plain_text_input")
        if kind in {"static_select", "radio_buttons", "external_select"}:
            return self._ask_choice(label, element, optional, previous)
        if kind in {"checkboxes", "multi_static_select"}:
            return self._ask_many(label, element, previous)
        if kind == "users_select":
            return self._ask_user(label, element, previous)
        if kind in {"conversations_select", "channels_select"}:
            key = "selected_conversation" if kind == "conversations_select" else "selected_channel"
            default = (
                (previous or {}).get(key) or element.get("initial_" + key[9:]) or SANDBOX_CHANNEL
            )
            answer = self.term.ask(f"{label} [{default}]: ").strip() or default
            return {"type": kind, key: answer.lstrip("#")}
        if _is_secret(label, element):
            return self._ask_secret_text(label, element, optional, previous)
        return self._ask_text(label, element, optional, previous, kind)

    def _demo_key(self, *, fresh: bool) -> DemoKey:
        """The demo key !demo stands for, given the key type chosen so far in this form."""
        chosen = (self._answers.get((Block.KEY_TYPE, Action.KEY_TYPE)) or {}).get(
            "selected_option"
        ) or {}
        return self.demo.key_for_form(chosen.get("value"), fresh=fresh)

    def _ask_text(
        self,
        label: str,
        element: dict[str, Any],
        optional: bool,
        previous: dict[str, Any] | None,
        kind: str,
    ) -> dict[str, Any]:
        field = {"datepicker": "selected_date", "timepicker": "selected_time"}.get(kind, "value")
        default = (previous or {}).get(field) or element.get("initial_value") or ""
        shown = f" [{default}]" if default else (" (optional)" if optional else "")
        while True:
            answer = self.term.ask(f"{label}{shown}: ").strip()
            if answer == DEMO_SHORTCUT:
                demo = self._demo_key(fresh=True)
                answer = demo.api_key
                self.term.say(f"  (the API key of {demo.name})")
            answer = answer or default
            if answer or optional:
                return {"type": kind, field: answer or None}
            self.term.say("  This field is required.")

    def _ask_secret_text(
        self, label: str, element: dict[str, Any], optional: bool, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        kept = (previous or {}).get("value")
        shown = " [Enter keeps what you typed]" if kept else ""
        while True:
            answer = self.term.ask_secret(f"{label} (hidden){shown}: ").strip()
            if answer == DEMO_SHORTCUT:
                demo = self._demo_key(fresh=False)
                answer = demo.secret
                self.term.say(f"  (the secret of {demo.name})")
            elif answer.startswith("-----BEGIN") and "-----END" not in answer:
                answer = self._read_pem(answer)
            answer = answer.replace("\\n", "\n") or kept or ""
            if answer or optional:
                return {"type": element.get("type", "plain_text_input"), "value": answer or None}
            self.term.say("  This field is required.")

    def _read_pem(self, first: str) -> str:
        lines = [first]
        while len(lines) < 200:
            line = self.term.read_secret_line().strip()
            lines.append(line)
            if line.startswith("-----END"):
                break
        return "\n".join(lines) + "\n"

    def _ask_choice(
        self, label: str, element: dict[str, Any], optional: bool, previous: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        options = element_options(element)
        default = (previous or {}).get("selected_option") or element.get("initial_option")
        default_value = (default or {}).get("value")
        self.term.say(f"{label}:")
        for number, option in enumerate(options, 1):
            mark = "  (default)" if option.get("value") == default_value else ""
            about = text_of(option.get("description"))
            about = f" — {about}" if about else ""
            self.term.say(f"  {number}) {text_of(option.get('text'))}{about}{mark}")
        hint = f" [Enter = {text_of(default.get('text'))}]" if default else ""
        while True:
            answer = self.term.ask(f"Choose 1-{len(options)}{hint}: ").strip()
            if not answer:
                if default:
                    return {"type": element["type"], "selected_option": _plain(default)}
                if optional:
                    return None
                self.term.say("  Please choose one.")
                continue
            chosen = _pick(options, answer)
            if chosen is not None:
                return {"type": element["type"], "selected_option": _plain(chosen)}
            self.term.say(f"  “{answer}” is not one of the choices.")

    def _ask_many(
        self, label: str, element: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        options = element_options(element)
        default = (previous or {}).get("selected_options") or element.get("initial_options") or []
        self.term.say(f"{label}:")
        for number, option in enumerate(options, 1):
            self.term.say(f"  {number}) {text_of(option.get('text'))}")
        while True:
            answer = self.term.ask("Numbers separated by commas, or Enter for none: ").strip()
            if not answer:
                return {"type": element["type"], "selected_options": default}
            picked = [_pick(options, part.strip()) for part in answer.split(",")]
            if all(p is not None for p in picked):
                chosen = [_plain(p) for p in picked if p is not None]
                return {"type": element["type"], "selected_options": chosen}
            self.term.say("  Some of those are not among the choices.")

    def _ask_user(
        self, label: str, element: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        default = (
            (previous or {}).get("selected_user") or element.get("initial_user") or SANDBOX_USER
        )
        ids = {name.lower(): user_id for user_id, name in self.user_names.items()}
        shown = self.user_names.get(default, default)
        hint = "a person, e.g. @" + next(iter(ids)) if ids else "a Slack user id"
        while True:
            answer = self.term.ask(f"{label} [@{shown}] ({hint}): ").strip()
            named = ids.get(answer.removeprefix("@").lower())
            user = named or (
                re.sub(r"^<?@?([A-Z0-9]+)(\|[^>]*)?>?$", r"\1", answer) if answer else default
            )
            if re.fullmatch(r"[UW][A-Z0-9]{2,}", user):
                return {"type": "users_select", "selected_user": user}
            names = ", ".join("@" + n for n in ids) or "none"
            self.term.say(f"  Pick a person ({names}) or a Slack user id like U0ALICE.")


def has_inputs(view: dict[str, Any]) -> bool:
    """Whether ``view`` asks for anything (else it only shows a result)."""
    return any(b.get("type") == "input" for b in view.get("blocks") or [])


def _plain(option: dict[str, Any]) -> dict[str, Any]:
    """An option as Slack sends it back in ``selected_option``."""
    return {k: v for k, v in option.items() if k in {"text", "value", "description"}}


def _pick(options: list[dict[str, Any]], answer: str) -> dict[str, Any] | None:
    """The option ``answer`` names: its number, its value or text, or the start of its text."""
    if answer.isdigit():
        number = int(answer)
        return options[number - 1] if 1 <= number <= len(options) else None
    wanted = loosely(answer)
    for option in options:
        if wanted in {loosely(str(option.get("value", ""))), loosely(text_of(option.get("text")))}:
            return option
    starts = [o for o in options if loosely(text_of(o.get("text"))).startswith(wanted)]
    return starts[0] if len(starts) == 1 else None


def _is_secret(label: str, element: dict[str, Any]) -> bool:
    low = label.lower()
    return element.get("action_id") == Action.SECRET or "secret" in low or "private key" in low
