"""Entry point: ``python -m bot`` / ``apikey-bot``.

apikey-bot [run]                 run the Slack bot (Socket Mode or HTTP)
apikey-bot migrate               bring the database schema up to date
apikey-bot check                 prove the master keys open the stored secrets
apikey-bot keys init             make a first master key file (MASTER_KEYS_FILE, or the default)
apikey-bot keys generate ID      print a new master key line ``ID:base64``
apikey-bot keys reencrypt        re-seal every row under the active master key
apikey-bot keys retire ID        forget a master key no row uses any more
apikey-bot audit verify          check the audit chain (and its checkpoints in Slack)
apikey-bot audit export          stream the audit trail as JSON lines or CSV
apikey-bot simulator             run the local Binance simulator
"""

from __future__ import annotations

import argparse
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apikey-bot", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the Slack bot (the default)")
    sub.add_parser("scheduler", help="run only the reminder / probe loop (an extra replica)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("check", help="prove the configured master keys open the stored secrets")
    keys = sub.add_parser("keys", help="manage the master keys").add_subparsers(dest="keys_command")
    keys.add_parser(
        "init",
        help="make a first master key file where MASTER_KEYS_FILE says (never over an existing one)",
    )
    generate = keys.add_parser("generate", help="print a new master key line to add to MASTER_KEYS")
    generate.add_argument("key_id")
    reencrypt = keys.add_parser("reencrypt", help="re-seal every row under the active key")
    reencrypt.add_argument("--batch-size", type=int, default=200)
    reencrypt.add_argument("--max-batches", type=int, default=None)
    retire = keys.add_parser("retire", help="forget a master key that no row uses")
    retire.add_argument("key_id")
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command")
    audit.add_parser(
        "verify",
        help="check the MAC chain, and compare it with the checkpoints in the alert channel",
    )
    export = audit.add_parser(
        "export", help="stream the audit trail (every column, in chain order) as JSONL or CSV"
    )
    export.add_argument(
        "--since", help="from this moment: an ISO date or time (UTC unless it says), or 30d"
    )
    export.add_argument("--until", help="up to (not including) this moment; same forms")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--output", help="write to this file instead of standard output")
    sub.add_parser("simulator", help="run the local Binance simulator (see --help there)")
    sub.add_parser("sandbox", help="try every command offline (see --help there)")
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
    nothing = nothing_to_check(settings, table="audit_events")
    if nothing is not None:  # and nothing was created to find out
        print(nothing)
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
