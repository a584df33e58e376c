"""Reading the audit trail out, for auditors and SIEMs: a stream of events in chain order
(``iter_events``), written as JSON lines or CSV (``write_events``), and the forwarder's cursor
with its lease (one sender for each destination, across replicas).

Every column of ``audit_events`` is carried, read from the table itself, so a column added to
the chain later (a MAC, a key id) reaches exports and SIEMs without a change here. Reading is
keyset-paginated on ``id`` (the chain order): memory stays bounded by one batch, whatever the
size of the trail.
"""

from __future__ import annotations

import base64
import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from storage.db import create_engine
from storage.models import AuditEvent, AuditForwardCursor

EXPORT_BATCH = 2000
FORMATS = ("jsonl", "csv")


def audit_table() -> sa.Table:
    table = sa.inspect(AuditEvent).local_table
    assert isinstance(table, sa.Table)
    return table


def audit_columns() -> list[str]:
    """The names of every column of the audit table, in the table's order."""
    return [column.name for column in audit_table().columns]


def reading_engine(url: str) -> Engine:
    """An engine that cannot change the database: SQLite opened read-only (``mode=ro``: it
    never creates the file or writes to it), PostgreSQL in read-only transactions."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        uri = Path(parsed.database or "").resolve().as_uri() + "?mode=ro"
        return sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30),
        )
    engine = create_engine(url, pool_pre_ping=True)  # a missing driver: one line
    return engine.execution_options(postgresql_readonly=True)


def trail_exists(engine: Engine) -> bool:
    """Whether the database has an audit table at all (a database never migrated has none)."""
    with engine.connect() as connection:
        return sa.inspect(connection).has_table(audit_table().name)


def iter_events(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int | None = None,
    batch: int = EXPORT_BATCH,
) -> Iterator[dict[str, Any]]:
    """Events with ``id > after_id`` (and ``since <= at < until``) in id order, each as a dict
    of every column, read ``batch`` rows at a time: one short read per batch, no transaction
    held open between them, nothing kept once yielded."""
    table = audit_table()
    last_id = after_id
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        query = sa.select(table).where(table.c.id > last_id).order_by(table.c.id).limit(size)
        if since is not None:
            query = query.where(table.c.at >= since)
        if until is not None:
            query = query.where(table.c.at < until)
        with engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
        if not rows:
            return
        yield from rows
        last_id = rows[-1]["id"]
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            return


def exportable(value: Any) -> Any:
    """A column value as JSON carries it: datetimes in ISO-8601 UTC, bytes in base64; JSON
    columns (the detail) stay the structure they are."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def event_record(row: dict[str, Any]) -> dict[str, Any]:
    """One event as a JSON object: every column, in the table's order."""
    return {name: exportable(value) for name, value in row.items()}


def event_json(row: dict[str, Any]) -> str:
    return json.dumps(event_record(row), ensure_ascii=False, separators=(",", ":"))


def write_events(rows: Iterable[dict[str, Any]], out: TextIO, *, fmt: str) -> int:
    """Write events as JSON lines (one object per line, every value exact) or CSV (a header of
    the column names, one row per event, JSON columns as JSON text, no value as an empty field,
    text a spreadsheet would evaluate neutralised: ``neutralised_cell``); returns the number
    written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(event_json(row))
            out.write("\n")
            count += 1
        return count
    columns = audit_columns()
    # Records end in CRLF, as RFC 4180 (section 2) has it; Python's writer then also quotes a
    # field holding a lone carriage return, which "\n" as terminator let through unquoted,
    # splitting one event over two rows for every reader.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_field(exportable(row.get(name))) for name in columns])
        count += 1
    return count


# A cell that begins with one of these is evaluated as a formula by Excel, LibreOffice and
# Google Sheets (OWASP, "CSV Injection": =, +, -, @, tab 0x09, carriage return 0x0D). A label,
# an actor or a base64 MAC may begin with one; the quote in front makes the cell text.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISING_QUOTE = "'"


def neutralised_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it without evaluating it: a single quote in front of a
    cell that begins with a formula trigger, and in front of one that already begins with a
    quote, so that taking off one leading quote always gives the value back exactly."""
    if text.startswith((*FORMULA_TRIGGERS, NEUTRALISING_QUOTE)):
        return NEUTRALISING_QUOTE + text
    return text


def _csv_field(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return neutralised_cell(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if isinstance(value, str):
        return neutralised_cell(value)
    return value


# --- the forwarder's cursor ----------------------------------------------------------------------


def cursor_table() -> sa.Table:
    table = sa.inspect(AuditForwardCursor).local_table
    assert isinstance(table, sa.Table)
    return table


def claim_cursor(
    engine: Engine,
    *,
    destination: str,
    endpoint: str,
    owner: str,
    now: datetime,
    lease: timedelta,
) -> int | None:
    """Take (or renew) the lease to send to ``destination`` until ``now + lease``; returns the
    id of the last event it accepted, or None when another sender holds an unexpired lease.
    A destination seen for the first time starts before the first event."""
    table = cursor_table()
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as connection:
        connection.execute(
            insert(table)
            .values(destination=destination, endpoint=endpoint, last_id=0, sent=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["destination"])
        )
        claimed = connection.execute(
            sa.update(table)
            .where(
                table.c.destination == destination,
                sa.or_(
                    table.c.lease_owner == owner,
                    table.c.lease_owner.is_(None),
                    table.c.lease_until.is_(None),
                    table.c.lease_until < now,
                ),
            )
            .values(lease_owner=owner, lease_until=now + lease, endpoint=endpoint)
            .returning(table.c.last_id)
        ).scalar()
    return claimed


def advance_cursor(
    engine: Engine, *, destination: str, owner: str, last_id: int, sent: int, now: datetime
) -> bool:
    """Record that the destination accepted every event up to ``last_id`` (``sent`` of them),
    if ``owner`` still holds the lease; False when it lost it (another sender took over)."""
    table = cursor_table()
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(table)
            .where(
                table.c.destination == destination,
                table.c.lease_owner == owner,
                table.c.last_id < last_id,
            )
            .values(last_id=last_id, sent=table.c.sent + sent, updated_at=now)
        )
    return result.rowcount == 1


def release_cursor(engine: Engine, *, destination: str, owner: str) -> None:
    """Give the lease up (a replica shutting down), so another replica takes over at once."""
    table = cursor_table()
    with engine.begin() as connection:
        connection.execute(
            sa.update(table)
            .where(table.c.destination == destination, table.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
