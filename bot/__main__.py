"""The command line, ``apikey-bot`` (or ``python -m bot``): the bot, and its admin commands.

apikey-bot [run]                 run the Slack bot (Socket Mode or HTTP)
apikey-bot scheduler             run only the reminder / probe loop (an extra replica)
apikey-bot migrate               bring the database schema up to date
apikey-bot check                 prove the master keys open the stored secrets
apikey-bot keys init             make a first master key file (MASTER_KEYS_FILE, or the default)
apikey-bot keys generate ID      print a new master key line ``ID:base64``
apikey-bot keys reencrypt        re-seal every row under the active master key
apikey-bot keys retire ID        forget a master key no row uses any more
apikey-bot audit verify          check the audit chain (and its checkpoints in Slack)
apikey-bot audit export          stream the audit trail as JSON lines or CSV
apikey-bot simulator             run the local Binance simulator
apikey-bot sandbox               try every command offline
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence

from bot.audit_export import export_trail
from bot.bootstrap import (
    check_master_keys,
    configure_logging,
    init_key_file,
    nothing_to_check,
    open_storage,
    read_configured_ring,
)
from bot.config import ConfigError, Settings, load_settings
from storage.audit_export import FORMATS
from storage.crypto import CryptoError, KeyRing, generate_master_key
from storage.db import DatabaseUnavailable, migrate, open_database
from storage.master_keys import VaultError, reencrypt_all, retire_key

log = logging.getLogger("bot")

DESCRIPTION = (
    "A Slack bot that governs a team's Binance API keys: it keeps their secrets sealed, shows "
    "what each key can really do, rotates keys on schedule and runs the playbook when one "
    "leaks. Without a subcommand it runs the bot. Settings come from the environment (and "
    "an optional .env file)."
)
# One rule for every command that checks or reads what is stored (check, audit verify,
# audit export): an empty or missing database is not a failure.
NOTHING_TO_CHECK_RULE = (
    "When there is nothing to check yet (no database, no tables, or nothing stored in them), "
    "the command creates nothing, says so in one line on standard error that begins "
    "'nothing to', and exits 0."
)
EXIT_CODES = (
    "exit codes: 0 done, or nothing to check; 1 what was checked is wrong (a tampered audit "
    "trail) or the output could not be written; 2 the command could not run (a setting, "
    "a master key or the database); 3 keys reencrypt stopped with rows still to do. "
    + NOTHING_TO_CHECK_RULE
)


def _version() -> str:
    try:
        return importlib.metadata.version("apikey-bot")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown (not installed)"


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    *,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description, epilog=epilog)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apikey-bot", description=DESCRIPTION, epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _add(
        sub,
        "run",
        "run the Slack bot (the default)",
        "Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT "
        "(POST /slack/events, GET /healthz). It migrates the database and, on a first run, "
        "makes a master key file. Stops cleanly on SIGTERM.",
    )
    _add(
        sub,
        "scheduler",
        "run only the reminder / probe loop (an extra replica)",
        "Run only the loop that sends reminders and runs scheduled checks, without serving "
        "Slack: an extra replica beside `run`, on the same database.",
    )
    _add(
        sub,
        "migrate",
        "bring the database schema up to date",
        "Bring the database schema at DATABASE_URL up to date (Alembic migrations). Checks "
        "the master keys' settings first; safe to run again.",
    )
    _add(
        sub,
        "check",
        "prove the configured master keys open the stored secrets",
        "Prove the configured master keys open what is stored, changing nothing: no "
        "database, table, key file or canary is created.",
        epilog=EXIT_CODES,
    )
    keys_parser = _add(
        sub,
        "keys",
        "manage the master keys",
        "Manage the master keys that seal every stored secret.",
    )
    keys = keys_parser.add_subparsers(dest="keys_command", title="commands", metavar="COMMAND")
    _add(
        keys,
        "init",
        "make a first master key file (never over an existing one)",
        "Make a first master key file where MASTER_KEYS_FILE says (else the default path), "
        "readable by its owner only. Never over an existing file, and never when the "
        "database holds secrets a new key could not open.",
    )
    generate = _add(
        keys,
        "generate",
        "print a new master key line to add to MASTER_KEYS",
        "Print a new master key line ID:base64 on standard output. Append it to MASTER_KEYS "
        "(or the key file) as the last entry, restart, then run `keys reencrypt`.",
    )
    generate.add_argument("key_id", metavar="ID", help="the new key's id, e.g. k2")
    reencrypt = _add(
        keys,
        "reencrypt",
        "re-seal every row under the active key",
        "Re-seal every stored secret under the active master key, in batches; safe to "
        "interrupt and run again. Exits 3 when --max-batches stopped it with rows to do.",
    )
    reencrypt.add_argument(
        "--batch-size", type=int, default=200, help="rows re-sealed per transaction (200)"
    )
    reencrypt.add_argument(
        "--max-batches", type=int, default=None, help="stop after this many batches (no limit)"
    )
    retire = _add(
        keys,
        "retire",
        "forget a master key that no row uses",
        "Forget a master key that no stored row uses any more (refused while one does), and "
        "remove it from the key file when the keys live there.",
    )
    retire.add_argument("key_id", metavar="ID", help="the id of the master key to retire")
    audit_parser = _add(
        sub,
        "audit",
        "the audit trail",
        "Check or export the audit trail (read-only).",
    )
    audit = audit_parser.add_subparsers(dest="audit_command", title="commands", metavar="COMMAND")
    _add(
        audit,
        "verify",
        "check the MAC chain, and compare it with the checkpoints in Slack",
        "Check the audit trail's MAC chain and, when SLACK_BOT_TOKEN and ALERT_CHANNEL are "
        "set, compare it with the checkpoints posted in the alert channel. Exits 1 when the "
        "trail was tampered with.",
        epilog=EXIT_CODES,
    )
    export = _add(
        audit,
        "export",
        "stream the audit trail (every column, in chain order) as JSONL or CSV",
        "Stream the audit trail, every column in chain order, as JSON lines or CSV, in "
        "constant memory; the count goes to standard error.",
        epilog=EXIT_CODES,
    )
    export.add_argument(
        "--since", help="from this moment: an ISO date or time (UTC unless it says), or 30d"
    )
    export.add_argument("--until", help="up to (not including) this moment; same forms")
    export.add_argument(
        "--format", choices=FORMATS, default="jsonl", help="jsonl (the default) or csv"
    )
    export.add_argument("--output", help="write to this file instead of standard output")
    _add(
        sub,
        "simulator",
        "run the local Binance simulator (see --help there)",
        "Run the local Binance simulator, for tests and trying the bot out "
        "(`apikey-bot simulator --help` lists its options).",
    )
    _add(
        sub,
        "sandbox",
        "try every command offline (see --help there)",
        "Try every command offline against a simulated Slack and Binance "
        "(`apikey-bot sandbox --help` lists its options).",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulator"]:
        from bot.sandbox.binance_simulator import main as simulator_main

        return simulator_main(argv[1:]) or 0
    if argv[:1] == ["sandbox"]:
        from bot.sandbox.console import main as sandbox_main

        return sandbox_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, log_format=settings.log_format)
        return _dispatch(args, settings)
    except (ConfigError, VaultError, CryptoError, DatabaseUnavailable) as exc:
        print(f"apikey-bot: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command or "run"
    if command == "migrate":
        read_configured_ring(settings)  # a malformed master key stops before any migration
        engine = open_database(settings.database_url)
        migrate(engine)
        engine.dispose()
        print("database schema is up to date")
        return 0
    if command == "check":
        return check_master_keys(settings)
    if command == "keys":
        return _keys(args, settings)
    if command == "audit" and args.audit_command == "export":
        return export_trail(
            settings, since=args.since, until=args.until, fmt=args.format, output=args.output
        )
    if command == "audit":
        if args.audit_command != "verify":
            _parser().parse_args(["audit", "--help"])
            return 2
        return _audit_verify(settings)
    if command == "scheduler":
        from bot.runner import run_scheduler_only

        return run_scheduler_only(settings)
    from bot.runner import run_bot

    return run_bot(settings)


def _audit_verify(settings: Settings) -> int:
    """The same verification as `/apikey audit verify`: the chain (with the audit key, which
    the master keys open), and the checkpoints in the alert channel when Slack is configured."""
    from bot.app import make_web_client
    from bot.model.audit import Witness, WitnessState
    from bot.services.audit_trail import verify
    from bot.slack.checkpoints import read_witness

    read_configured_ring(settings)  # a malformed master key is reported first
    nothing = nothing_to_check(settings, table="audit_events", empty="the audit trail is empty")
    if nothing is not None:  # and nothing was created to find out
        print(nothing, file=sys.stderr)
        return 0
    storage = open_storage(settings, run_migrations=False, allow_new_key=False)
    if settings.slack_bot_token is not None and settings.alert_channel:
        witness = read_witness(make_web_client(settings), settings.alert_channel)
    else:
        witness = Witness(WitnessState.NONE)
    report = verify(engine=storage.engine, actor=None, witness=witness)
    if report.broken_at is None:
        print(f"audit chain intact: {report.events} events checked")
    else:
        print(
            f"audit trail TAMPERED: event #{report.broken_at} does not fit the chain "
            f"({report.reason}); {report.verified} events before it are intact",
            file=sys.stderr,
        )
    for problem in report.witness_problems:
        print(f"audit trail TAMPERED: {problem}", file=sys.stderr)
    if witness.state is WitnessState.READ:
        print(
            f"compared with {report.checkpoints_checked} checkpoint(s) read back from "
            f"{witness.channel}" + (" (older ones skipped)" if witness.incomplete else "")
        )
    elif witness.state is WitnessState.UNREADABLE:
        print(
            f"could only check the database: the checkpoints in {witness.channel} could not be "
            f"read ({witness.problem})"
        )
    else:
        print(
            "could only check the database: nothing outside it witnesses the chain (set "
            "SLACK_BOT_TOKEN and ALERT_CHANNEL to compare with the checkpoints), so deleted "
            "newest events or a restored older copy would not show"
        )
    return 0 if report.ok else 1


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    if args.keys_command == "init":
        path = init_key_file(settings)
        print(
            f"created master key k1 in {path} (owner-only permissions). Back it up: without it "
            "the stored secrets cannot be opened."
        )
        return 0
    if args.keys_command == "generate":
        print(generate_master_key(args.key_id).encoded())
        print(
            "Append this line to MASTER_KEYS (or the key file) so that it is the last entry, "
            "restart, then run `apikey-bot keys reencrypt`.",
            file=sys.stderr,
        )
        return 0
    if args.keys_command not in ("reencrypt", "retire"):
        _parser().parse_args(["keys", "--help"])
        return 2
    storage = open_storage(settings, allow_new_key=False)
    if args.keys_command == "reencrypt":
        report = reencrypt_all(
            storage.engine,
            storage.key_ring,
            batch_size=args.batch_size,
            max_batches=args.max_batches,
        )
        print(
            f"re-sealed {report.rows_resealed} row(s) under {report.active_key_id}; "
            f"{report.rows_remaining} still to do"
        )
        return 0 if report.rows_remaining == 0 else 3
    smaller = retire_key(storage.engine, storage.key_ring, args.key_id)
    if storage.key_ring.is_envelope(args.key_id):
        print(f"master key {args.key_id} is no longer used: unset MASTER_KMS_KEY_ID")
    elif settings.master_keys is None and settings.key_file.exists():
        _rewrite_key_file(settings, smaller)
        print(f"master key {args.key_id} retired and removed from {settings.key_file}")
    else:
        print(f"master key {args.key_id} is no longer used: remove it from MASTER_KEYS")
    return 0


def _rewrite_key_file(settings: Settings, ring: KeyRing) -> None:
    path = settings.key_file
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# apikey-bot master keys: id:base64, one per line; the last one is active.\n")
        local = ring.local_key_ids  # a KMS key is configured by MASTER_KMS_KEY_ID, not here
        others = [kid for kid in local if kid != ring.active.key_id]
        for kid in [*others, *[kid for kid in local if kid == ring.active.key_id]]:
            handle.write(ring.export_line(kid) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
