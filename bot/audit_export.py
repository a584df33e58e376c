"""``apikey-bot audit export``: the audit trail for auditors and SIEMs, streamed.

Read-only: it opens the database, never migrates it, and on a machine with no database yet it
says there is nothing to export instead of creating one.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa

from bot.config import Settings
from storage.audit_export import iter_events, reading_engine, trail_exists, write_events

_RELATIVE = re.compile(r"(\d{1,5})([dh])")
MOMENT_FORMS = "an ISO date or time such as 2026-12-01 or 2026-12-01T08:00:00Z, or 30d / 12h ago"


class MomentError(ValueError):
    pass


def parse_moment(text: str, *, now: datetime) -> datetime:
    """``2026-12-01``, ``2026-12-01T08:00``, ``…+02:00`` / ``…Z`` (no offset: UTC), or ``30d``
    / ``12h`` (that long before ``now``)."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MomentError(f"{text!r} is not {MOMENT_FORMS}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def export_trail(
    settings: Settings,
    *,
    since: str | None,
    until: str | None,
    fmt: str,
    output: str | None,
) -> int:
    now = datetime.now(UTC)
    bounds: list[datetime | None] = []
    for option, text in (("--since", since), ("--until", until)):
        try:
            bounds.append(parse_moment(text, now=now) if text is not None else None)
        except MomentError as exc:
            print(f"apikey-bot: {option}: {exc}", file=sys.stderr)
            return 2
    start, end = bounds
    missing = _missing_database(settings.database_url)
    if missing:
        print(f"nothing to export: {missing}", file=sys.stderr)
        return 0
    engine = reading_engine(settings.database_url)
    try:
        if not trail_exists(engine) or _empty(engine):
            print("nothing to export: the database has no audit trail yet", file=sys.stderr)
            return 0
        rows = iter_events(engine, since=start, until=end)
        with _destination(output) as out:
            count = write_events(rows, out, fmt=fmt)
    except BrokenPipeError:  # `… | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            sys.stdout = io.TextIOWrapper(open(os.devnull, "wb"))  # noqa: SIM115
        return 0
    except OSError as exc:
        print(f"apikey-bot: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError as exc:  # the class only: its text may name the server
        print(
            f"apikey-bot: cannot read the audit trail ({type(exc).__name__}): check DATABASE_URL",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()
    print(f"exported {count} audit events", file=sys.stderr)
    return 0


def _empty(engine: sa.Engine) -> bool:
    """No event at all: nothing to export (a period with none is a result: 0 events)."""
    query = sa.select(sa.literal(1)).select_from(sa.table("audit_events")).limit(1)
    with engine.connect() as connection:
        return connection.execute(query).first() is None


def _missing_database(url: str) -> str | None:
    """Why there is nothing to read (a SQLite file that does not exist), else None: opening
    SQLite on a missing file would create it."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or "mode=memory" in url:
        return "the database is in memory"
    if not Path(database).exists():
        return f"no database at {database}"
    return None


@contextlib.contextmanager
def _destination(output: str | None) -> Iterator[TextIO]:
    """Standard output, or a file written beside its final name and renamed into place at the
    end: an export that fails half-way leaves no half file looking complete."""
    if output is None:
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(encoding="utf-8")
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
