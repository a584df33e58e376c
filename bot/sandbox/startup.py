"""Starting ``apikey-bot sandbox``: its command line, its data directory and log, and the local
stack (Binance simulator seeded with demo keys, Slack stand-in, bot) the console talks to."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.sandbox.demo import demo_summary
from bot.sandbox.drill import ALERT_CHANNEL, PEOPLE
from bot.sandbox.requests import SANDBOX_USER

if TYPE_CHECKING:
    from bot.sandbox.binance_simulator import SimKey
    from bot.sandbox.stack import LocalStack

BANNER = """\
apikey-bot sandbox: the bot, a Binance simulator and a stand-in for Slack, all on this machine.
Nothing leaves this machine: no Slack workspace, no Binance account, no internet. Every API key
here is fake and exists only inside this process.

  data:  {data}
  log:   {log}

{demo}
People: you (admin, acting now), olivia (key owner), max (member): `as @max` switches.
Channels: #sandbox (where you type), #alerts (the alert channel).

Try:  /apikey status all    /apikey list    /apikey register    /apikey remove withdrawer
      press <button>        demo-key        demo drill          advance 1d    help    exit
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apikey-bot sandbox",
        description="Try the bot offline: a Binance simulator with demo keys, a stand-in for "
        "Slack and a console to type /apikey commands in. Nothing leaves this machine.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the sandbox's database here (default: a temporary directory, deleted at exit)",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        help="make the simulated Binance answer this slowly (over 2000 shows the slow path)",
    )
    return parser


def open_data_dir(wanted: Path | None, cleanup: contextlib.ExitStack) -> tuple[Path, str]:
    """The data directory (``wanted``, or a temporary one deleted on ``cleanup``) and how the
    banner describes it."""
    if wanted is None:
        data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="apikey-")))
        return data_dir, f"{data_dir} (deleted when you exit; keep it with --data-dir DIR)"
    data_dir = wanted.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir, f"{data_dir} (kept)"


def log_to(path: Path) -> logging.Handler:
    """The bot's log goes to a file: the terminal is for the conversation."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def start_stack(
    data_dir: Path, cleanup: contextlib.ExitStack
) -> tuple[LocalStack, dict[str, SimKey]]:
    """The simulator seeded with the demo keys (not yet registered), the Slack stand-in and the
    bot, on 127.0.0.1; each stopped on ``cleanup``."""
    from bot.sandbox.binance_simulator import BinanceSimulator, seed_demo
    from bot.sandbox.stack import SANDBOX_SIGNING_SECRET, start_local_stack

    sim = BinanceSimulator().start()
    cleanup.callback(sim.stop)
    seeded = seed_demo(sim)
    stack = start_local_stack(
        workdir=data_dir,
        simulator=sim,
        signing_secret=SANDBOX_SIGNING_SECRET,
        master_keys=_master_keys(data_dir),
        admin_user_ids=SANDBOX_USER,
        # the console ticks the scheduler on a clock it moves (`tick`, `advance 1d`)
        scheduler_enabled=False,
        # Settings of a real deployment in the environment must not leak into the sandbox.
        slack_app_token=None,
        slack_team_id=None,
        master_key_active=None,
        alert_channel=ALERT_CHANNEL,
        # The bot's own outgoing address: a governor key, and every key it creates, is
        # restricted to it (`/apikey governor demo`, `demo governor`).
        bot_egress_ips="127.0.0.1",
        # Approvals (README: Approvals) need a second admin or approver, which the sandbox's
        # cast does not have: its demo keys (one beyond its purpose) are registered at once.
        approval_required_for="none",
    )
    cleanup.callback(stack.stop)
    for person in PEOPLE:
        stack.slack.add_user(person.user_id, name=person.name, is_admin=person.role == "admin")
    return stack, seeded


def banner(*, where: str, log_file: Path, outcome: dict[str, str | None]) -> str:
    """What the sandbox is, where its data is, and the demo keys registered (``outcome``)."""
    return BANNER.format(data=where, log=log_file, demo=demo_summary(outcome))


def _master_keys(data_dir: Path) -> str:
    """The sandbox's master key, kept in its data directory so a kept directory reopens."""
    from storage.crypto import generate_master_key

    path = data_dir / "sandbox-master-keys"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    line = generate_master_key("sandbox").encoded()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return line
