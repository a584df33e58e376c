"""The simulated Binance as the sandbox console drives it: the demo keys and the commands that
change what Binance says about them.

At start-up the seeded demo keys are registered through the register modal, like a user would.
Then ``demo-key`` makes a new fake key to paste into the register form (``!demo`` at its prompts
stands for it), and ``binance …`` deletes keys, grants or revokes permissions, toggles the IP
whitelist, and injects outages and latency. Keys are named by label (or ``demo-N``) in those
commands; every key and secret here is fake and lives only in this process.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.ids import COMMAND
from bot.model.key_pairs import PendingPair
from bot.sandbox.render import mrkdwn_to_text
from bot.sandbox.requests import SANDBOX_USER, BotReply, FormValues, register_form_values
from bot.sandbox.terminal import Terminal, indent

if TYPE_CHECKING:
    from bot.sandbox.binance_simulator import BinanceSimulator, SimKey

EMAIL = re.compile(r"[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,180}\.[a-z]{2,24}")
DEMO_SHORTCUT = "!demo"  # typed at the register form's key prompts: the last demo key
DEMO_ACCOUNT = "demo"

# label -> declared purpose; every demo key is registered on account "demo" at start-up.
DEMO_PURPOSES = {
    "healthy-reader": "read_only",
    "withdrawer": "trading",  # withdrawals are on: "beyond the declared purpose"
    "no-whitelist": "trading",
    "deleted": "read_only",  # registered, then deleted on (simulated) Binance
}
DEMO_LINES = {
    "healthy-reader": "read-only, IP whitelist: fine",
    "withdrawer": "declared for trading, but withdrawals are on (its owner accepted that)",
    "no-whitelist": "trading without an IP whitelist (Binance drops its trading permission soon)",
    "deleted": "deleted on Binance since it was registered",
}
REUSED_DATA = """\
This data directory comes from an earlier session: its keys are kept, but the simulated Binance
starts afresh each time and no longer knows them, so it rejects them. Start without --data-dir
(or with a new directory) for the demo keys.
"""

PERMISSION_NAMES = {
    "read": "enableReading",
    "reading": "enableReading",
    "trade": "enableSpotAndMarginTrading",
    "trading": "enableSpotAndMarginTrading",
    "spot": "enableSpotAndMarginTrading",
    "withdraw": "enableWithdrawals",
    "withdrawals": "enableWithdrawals",
    "transfer": "enableInternalTransfer",
    "internal-transfer": "enableInternalTransfer",
    "universal-transfer": "permitsUniversalTransfer",
    "margin": "enableMargin",
    "futures": "enableFutures",
    "options": "enableVanillaOptions",
    "portfolio-margin": "enablePortfolioMarginTrading",
    "fix-trade": "enableFixApiTrade",
    "fix-read": "enableFixReadOnly",
}
SHORT_NAMES = {
    "enableReading": "read",
    "enableSpotAndMarginTrading": "trade",
    "enableWithdrawals": "withdraw",
    "enableInternalTransfer": "transfer",
    "permitsUniversalTransfer": "universal-transfer",
    "enableMargin": "margin",
    "enableFutures": "futures",
    "enableVanillaOptions": "options",
    "enablePortfolioMarginTrading": "portfolio-margin",
    "enableFixApiTrade": "fix-trade",
    "enableFixReadOnly": "fix-read",
}
TIERS = {
    "read": {},
    "trade": {"enableSpotAndMarginTrading": True},
    "withdraw": {"enableSpotAndMarginTrading": True, "enableWithdrawals": True},
}


@dataclass
class DemoKey:
    name: str
    api_key: str
    secret: str = field(repr=False)
    key_type: str


class DemoBinance:
    """The console's hold on the simulated Binance: which name stands for which API key, the
    ``demo-key`` command and the ``binance …`` commands."""

    def __init__(
        self,
        sim: BinanceSimulator,
        term: Terminal,
        *,
        waiting_pairs: Callable[[], list[PendingPair]] = list,
    ) -> None:
        self.sim = sim
        self.term = term
        self._waiting_pairs = waiting_pairs  # the bot's generated pairs awaiting an API key
        self.keys: dict[str, str] = {}  # name (label, demo-N) -> API key on the simulator
        self.last_made: DemoKey | None = None
        self._made = 0

    def remember(self, name: str, api_key: str) -> None:
        """From now on ``name`` (a label) stands for ``api_key`` in ``binance …`` commands."""
        self.keys[name] = api_key

    # --- demo-key -----------------------------------------------------------------------------

    def make_key(self, args: list[str], *, quiet: bool = False) -> DemoKey | None:
        """A new fake key on the simulated Binance, printed (fake secrets only) for the form."""
        key_type, tier = "HMAC", "read"
        for arg in args:
            low = arg.lower()
            if low in {"hmac", "ed25519", "rsa"}:
                key_type = low.upper()
            elif low in TIERS:
                tier = low
            else:
                self.term.say("Usage: demo-key [hmac|ed25519|rsa] [read|trade|withdraw]")
                return None
        key = self.sim.add_key(
            account=DEMO_ACCOUNT, key_type=key_type, permissions=TIERS[tier], ip_restrict=True
        )
        self._made += 1
        name = f"demo-{self._made}"
        self.keys[name] = key.api_key
        self.last_made = DemoKey(name, key.api_key, key.secret, key_type)
        say = self.term.say
        if quiet:
            say(f"  (made {name}: a fake {key_type} key, {tier}, on the simulated Binance)")
            return self.last_made
        what = "secret" if key_type == "HMAC" else "private key (paste every line)"
        say(
            f"New key {name} on the simulated Binance: {key_type}, {tier}, IP whitelist on, "
            f'account "{DEMO_ACCOUNT}".\nIt is fake: it exists only in this sandbox.'
        )
        say(f"  API key: {key.api_key}")
        say(f"  {what}:\n" + indent(key.secret.strip(), "    "))
        say(
            f"Now: {COMMAND} register, choose key type {key_type}, and paste these "
            f"(or type {DEMO_SHORTCUT} at the API key and secret prompts)."
        )
        return self.last_made

    def key_for_form(self, key_type: str | None, *, fresh: bool) -> DemoKey:
        """The key ``!demo`` stands for in a form where ``key_type`` was chosen: the last one
        made, or (``fresh``: at the API key prompt) a new one when its key type differs."""
        last = self.last_made
        key_type = str(key_type or (last and last.key_type) or "HMAC")
        if last is not None and not (fresh and last.key_type != key_type):
            return last
        made = self.make_key([key_type.lower()], quiet=True) or last
        if made is None:  # the forms offer no key type that make_key does not know
            raise ValueError(f"the sandbox makes no demo keys of type {key_type}")
        return made

    # --- binance … ----------------------------------------------------------------------------

    def command(self, rest: str) -> None:
        """``binance <rest>``: look at or change the simulated Binance."""
        say = self.term.say
        try:
            args = shlex.split(rest)
        except ValueError:
            args = rest.split()
        sub = args[0].lower() if args else ""
        if sub in {"keys", "ls", "list"}:
            self._show_keys()
        elif sub == "delete" and len(args) == 2:
            key = self._find(args[1])
            if key:
                self.sim.delete_key(key.api_key)
                say(f"Deleted on Binance: {args[1]}. Try {COMMAND} status all.")
        elif sub in {"grant", "revoke"} and len(args) == 3:
            key = self._find(args[1])
            flag = PERMISSION_NAMES.get(args[2].lower(), args[2])
            if key and self._set_flag(key, flag, sub == "grant"):
                say(f"{args[1]}: {flag} is now {'on' if sub == 'grant' else 'off'}.")
                if sub == "grant" and flag == "enableWithdrawals" and not key.ip_restrict:
                    say("(real Binance refuses withdrawals on a key without IP whitelist)")
        elif sub in {"whitelist", "block-ip"} and len(args) == 3 and args[2] in {"on", "off"}:
            key = self._find(args[1])
            if key is None:
                return
            on = args[2] == "on"
            if sub == "whitelist":
                self.sim.set_ip_restrict(key.api_key, on)
                say(f"{args[1]}: IP whitelist {'set' if on else 'removed'}.")
            else:
                self.sim.set_ip_allowed(key.api_key, not on)
                self.sim.set_ip_restrict(key.api_key, True)
                say(
                    f"{args[1]}: this bot's IP is {'no longer' if on else 'again'} "
                    "on the key's whitelist."
                )
        elif sub == "outage" and len(args) > 1 and args[1] in ("0", "off", "over", "end"):
            self.sim.clear_faults()
            say("The outage is over: Binance answers again.")
        elif sub == "outage":
            count = int(args[1]) if len(args) > 1 and args[1].isdigit() else 10
            self.sim.inject_fault("503", count=count)
            say(
                f"The next {count} Binance requests fail with HTTP 503 "
                "(`binance outage off` ends it sooner)."
            )
        elif sub == "self-generated" and len(args) in (2, 3):
            self._self_generated(args[1], args[2].lower() if len(args) == 3 else "read")
        elif sub in {"sub-account", "sub-accounts"}:
            self._sub_accounts(args[1:])
        elif sub == "latency" and len(args) == 2 and args[1].isdigit():
            self.sim.latency = int(args[1]) / 1000
            say(f"Binance now answers after {int(args[1])} ms.")
        else:
            say(
                "Usage: binance keys | delete <key> | grant <key> <perm> | revoke <key> <perm>"
                " | whitelist <key> on|off | block-ip <key> on|off | outage [n] | latency <ms>"
                " | self-generated <label> [read|trade|withdraw]"
                " | sub-accounts | sub-account add <email>"
            )

    def _self_generated(self, label: str, tier: str) -> None:
        """What a person does in Binance's API management with the public key the bot gave:
        *Create API → Self-generated*, paste it, tick the boxes. Here the sandbox takes the
        public key of the bot's waiting pair for ``label`` (as if copied from its message)."""
        if tier not in TIERS:
            self.term.say("Usage: binance self-generated <label> [read|trade|withdraw]")
            return
        pair = next((p for p in self._waiting_pairs() if p.label == label), None)
        if pair is None:
            self.term.say(
                f"No generated key pair waits for “{label}”: {COMMAND} register it first, "
                "with key type “the bot generates the key pair”."
            )
            return
        key = self.sim.add_self_generated_key(
            pair.public_key_pem, account=DEMO_ACCOUNT, permissions=TIERS[tier], ip_restrict=True
        )
        self.keys[label] = key.api_key
        # ``!demo`` at the small form's API key prompt pastes it (there is no secret to paste)
        self.last_made = DemoKey(label, key.api_key, "", key.key_type)
        self.term.say(
            f"Binance made a self-generated {key.key_type} key from the public key of "
            f"“{label}” ({tier}, IP whitelist on). Binance never saw the private key.\n"
            f"  API key: {key.api_key}\n"
            "Now press “Enter the API key” and paste it (or type !demo at its prompt)."
        )

    def _sub_accounts(self, args: list[str]) -> None:
        """``binance sub-accounts``: the sub-accounts of the demo master account and the keys
        Binance holds for each; ``binance sub-account add <email>`` makes one (as a person does
        in Binance's sub-account management)."""
        if len(args) == 2 and args[0].lower() == "add":
            email = args[1].strip().lower()
            if not EMAIL.fullmatch(email):
                self.term.say(f"“{args[1]}” is not an email address, e.g. trading-bot@example.com")
                return
            if email in self.sim.sub_accounts:
                self.term.say(f"The sub-account {email} exists already.")
                return
            self.sim.add_sub_account(master=DEMO_ACCOUNT, email=email)
            self.term.say(
                f'New sub-account {email} of master account "{DEMO_ACCOUNT}" on the simulated '
                "Binance."
            )
            return
        if args:
            self.term.say("Usage: binance sub-accounts | binance sub-account add <email>")
            return
        subs = [s for s in list(self.sim.sub_accounts.values()) if s.master == DEMO_ACCOUNT]
        if not subs:
            self.term.say(
                f'Master account "{DEMO_ACCOUNT}" has no sub-accounts: '
                "binance sub-account add <email> makes one."
            )
            return
        for sub in subs:
            keys = self.sim.keys_of(sub.email)
            self.term.say(f"  {sub.email}: {len(keys)} API key{'s' if len(keys) != 1 else ''}")
            for key in keys:
                state = "DELETED" if key.deleted else "active"
                on = [SHORT_NAMES.get(f, f) for f, v in key.permissions.items() if v]
                ips = ", ".join(key.ip_list) if key.ip_list else "any"
                self.term.say(
                    f"    {key.api_key[:8]}…  {key.key_type:7} {state:7} "
                    f"{', '.join(on) or '-'}; IPs: {ips}"
                )

    def _show_keys(self) -> None:
        names: dict[str, list[str]] = {}
        for name, api_key in self.keys.items():
            names.setdefault(api_key, []).append(name)
        self.term.say(
            "  name(s)                   API key      type    state   IP whitelist  permissions"
        )
        for api_key, known_as in sorted(names.items(), key=lambda item: item[1][0]):
            key = self.sim.get_key(api_key)
            on = [SHORT_NAMES.get(f, f) for f, v in key.permissions.items() if v]
            state = "DELETED" if key.deleted else "active"
            ip = "yes" if key.ip_restrict else "no"
            note = "" if key.ip_allowed else "  (this bot's IP is not whitelisted)"
            self.term.say(
                f"  {' = '.join(known_as):25} {api_key[:8]}…  {key.key_type:7} {state:7} "
                f"{ip:13} {', '.join(on) or '-'}{note}"
            )

    def _find(self, ref: str) -> SimKey | None:
        """The simulator's key named ``ref`` (a name or an API key); None, said why, if none."""
        api_key = self.keys.get(ref, ref)
        try:
            return self.sim.get_key(api_key)
        except KeyError:
            known = ", ".join(sorted(self.keys))
            self.term.say(f"No key “{ref}” on the simulated Binance. Known: {known}")
            return None

    def _set_flag(self, key: SimKey, flag: str, value: bool) -> bool:
        try:
            self.sim.set_permissions(key.api_key, **{flag: value})
        except (ValueError, KeyError, TypeError):
            self.term.say(f"Unknown permission “{flag}”. Try: {', '.join(SHORT_NAMES.values())}")
            return False
        return True


def register_demo_keys(
    seeded: dict[str, SimKey],
    *,
    demo: DemoBinance,
    submit: Callable[[FormValues], BotReply],
) -> dict[str, str | None]:
    """Register the seeded demo keys through the register modal's submission, like a user would.

    ``submit`` sends the modal with the given values and returns once the bot is done with it.
    Returns each label with None when it was registered, else why the bot refused it."""
    outcome: dict[str, str | None] = {}
    to_delete: list[str] = []
    for label, purpose in DEMO_PURPOSES.items():
        key = seeded.get(label)
        if key is None:
            continue
        if key.deleted:
            # Binance would refuse to check a deleted key: register a live twin, delete it later.
            key = demo.sim.add_key(
                account=DEMO_ACCOUNT,
                key_type=key.key_type,
                permissions=key.permissions,
                ip_restrict=key.ip_restrict,
            )
            to_delete.append(key.api_key)
        reply = submit(
            register_form_values(
                label=label,
                account=DEMO_ACCOUNT,
                owner=SANDBOX_USER,
                purpose=purpose,
                key_type=key.key_type,
                api_key=key.api_key,
                secret=key.secret,
                # the demo's owner accepts "withdrawer" beyond its purpose: it is stored, and
                # its findings say so
                confirm=True,
            )
        )
        body = reply.body or {}
        demo.remember(label, key.api_key)
        if body.get("response_action") == "errors":
            errors = body.get("errors") or {}
            outcome[label] = "; ".join(mrkdwn_to_text(str(m)) for m in errors.values())
        elif reply.status != 200:
            outcome[label] = f"the bot answered HTTP {reply.status}"
        else:
            outcome[label] = None
    for api_key in to_delete:
        demo.sim.delete_key(api_key)
    return outcome


def demo_summary(outcome: dict[str, str | None]) -> str:
    """The banner's lines about the demo keys: which were registered, and why others were not."""
    registered = [label for label, problem in outcome.items() if problem is None]
    lines = []
    if registered:
        lines.append(f'Demo keys registered on account "{DEMO_ACCOUNT}":')
        lines += [f"  {label:15} {DEMO_LINES.get(label, '')}" for label in registered]
    refused = {label: problem for label, problem in outcome.items() if problem}
    if refused and all("already registered" in problem for problem in refused.values()):
        lines.append(REUSED_DATA.rstrip("\n"))
    else:
        lines += [f"(demo key {label} not registered: {why})" for label, why in refused.items()]
    return "\n".join(lines) + "\n"
