"""The command line as an operator meets it: --help, --version, exit codes, and its logs."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import _parser
from storage.crypto import generate_master_key

NOTHING_COMMANDS = (["check"], ["audit", "verify"], ["audit", "export"])
# What an object's default repr, or the key ring's, looks like in a log line.
REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>|KeyRing\(")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MASTER_", "DATABASE_", "BINANCE_", "ALERT_", "LOG_"))
    }
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", **extra})
    return env


def _run(args: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_every_subcommand_and_option_has_a_description():
    parser = _parser()
    assert parser.description and "Entry point" not in parser.description
    assert "``" not in parser.format_help()  # no reStructuredText in a terminal
    subcommands = _subparsers(parser)
    for name in ("run", "scheduler", "migrate", "check", "sandbox", "simulator"):
        assert name in subcommands, name
    for name in ("audit verify", "audit export", "keys init", "keys generate", "keys retire"):
        assert name in subcommands, name
    for name, sub in subcommands.items():
        assert sub.description, f"`apikey-bot {name}` has no description"
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # its commands are checked one by one
            assert action.help, f"`apikey-bot {name}` {action.dest} has no help"


def test_help_states_the_one_exit_code_rule():
    text = " ".join(_parser().format_help().split())
    assert "nothing to check" in text and "exit" in text
    for name in ("check", "audit verify", "audit export"):
        sub = " ".join(_subparsers(_parser())[name].format_help().split())
        assert "nothing to" in sub and "exits 0" in sub, name


def test_version_comes_from_the_installed_package(tmp_path):
    done = _run(["--version"], tmp_path, _env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"apikey-bot {importlib.metadata.version('apikey-bot')}"


@pytest.mark.parametrize("state", ["no database", "migrated, nothing stored"])
def test_nothing_to_check_is_one_rule_for_check_verify_and_export(tmp_path, state):
    """Exit 0, one line on standard error that begins "nothing to", nothing on standard output
    (an export's output stays an empty file), and nothing created."""
    env = _env(tmp_path)
    if state != "no database":
        assert _run(["migrate"], tmp_path, env).returncode == 0
    before = _files(tmp_path)
    for command in NOTHING_COMMANDS:
        done = _run(command, tmp_path, env)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout == "", (command, done.stdout)
        lines = [line for line in done.stderr.splitlines() if "nothing to" in line]
        assert len(lines) == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert _files(tmp_path) == before  # no database, no key file


def _files(directory: Path) -> list[str]:
    """What is in ``directory``, leaving out SQLite's -wal / -shm companions (a reader opens
    those beside the database it reads)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(("-wal", "-shm")))


def _logged(tmp_path: Path, env: dict[str, str], commands: list[list[str]]) -> str:
    out = []
    for command in commands:
        done = _run(command, tmp_path, {**env, "LOG_LEVEL": "DEBUG"})
        out.append(f"$ {' '.join(command)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return "\n".join(out)


def test_no_command_logs_an_object_repr_on_an_empty_or_a_filled_database(tmp_path):
    k1 = generate_master_key("k1")
    env = _env(tmp_path, MASTER_KEYS=k1.encoded())
    read_only = [["check"], ["audit", "verify"], ["audit", "export"]]
    empty = _logged(tmp_path, env, read_only)
    filled = _logged(
        tmp_path,
        env,
        [["migrate"], ["keys", "reencrypt"], *read_only, ["keys", "generate", "k2"]],
    )
    k2 = generate_master_key("k2")
    two = {**env, "MASTER_KEYS": f"{k1.encoded()}\n{k2.encoded()}"}
    rotated = _logged(tmp_path, two, [["keys", "reencrypt"], ["keys", "retire", "k1"], *read_only])
    for log in (empty, filled, rotated):
        assert "Traceback" not in log, log
        assert not REPR.search(log), REPR.search(log).group(0) + "\n" + log
    assert "storage ready" in filled  # the line that used to show the ring's repr was captured
    assert k1.encoded().split(":", 1)[1] not in filled + rotated
