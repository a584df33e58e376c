"""The file sink: one JSON file per key in a directory the trading service mounts.

Each write goes to a temporary file in the same directory (created with mode 0600), is flushed
to disk, then renamed over the key's file: a reader sees the old document or the new one,
never half of one, and a crash or a full disk leaves the old file in place. The directory is
flushed too, so the rename survives a power cut. The file is read back to confirm it holds
exactly what was written.

A crash between the write and the rename leaves the temporary file (``.<name>.XXXXXXXX.tmp``,
the whole document, secret included). Such leftovers of a key's file are removed before and
after each write of it, at start-up and when the key is removed (``clean``, ``leftovers``).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import suppress
from pathlib import Path

from bot.sinks import (
    DeliveredCredentials,
    SinkError,
    SinkFailure,
    SinkKind,
    Written,
    content_digest,
    earlier_name,
    unique_name,
)

FILE_MODE = 0o600
SUFFIX = ".json"
# The names this sink gives (both schemes): no path, no leading dot.
_OWN_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.json")
# A temporary file as tempfile.mkstemp names it here: "." + the file's stem + "." + 8 random
# characters (its alphabet: a-z, 0-9 and _) + ".tmp". The random part has a fixed length,
# so the stem is known exactly: ".bot.x.<8>.tmp" is never taken for a leftover of "bot".
_TEMPORARY = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp")


def file_path(directory: Path, label: str) -> Path:
    """The file that holds a key's credentials: one file per label, one label per file."""
    return directory / f"{unique_name(label)}{SUFFIX}"


def earlier_file_path(directory: Path, label: str) -> Path:
    """The file versions before issue 21 chose for ``label`` (kept by keys delivered there)."""
    return directory / f"{earlier_name(label)}{SUFFIX}"


class FileSink:
    kind = SinkKind.FILE

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def destination(self, *, label: str, account: str) -> str:
        return str(file_path(self.directory, label))

    def write(
        self, credentials: DeliveredCredentials, *, destination: str, idempotency_token: str
    ) -> Written:
        document = credentials.document()
        target = self._target(destination)
        try:
            if not self.directory.is_dir():
                raise SinkError(
                    SinkFailure.UNREACHABLE,
                    f"the directory {self.directory} does not exist (is the volume mounted?)",
                )
            self._remove_leftovers(target)
            try:
                self._replace(target, document)
            finally:
                with suppress(OSError):  # the write's own outcome is what counts
                    self._remove_leftovers(target)
            written = target.read_bytes()
        except PermissionError:
            raise SinkError(
                SinkFailure.DENIED, f"no permission to write in {self.directory}"
            ) from None
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "OSError")
            raise SinkError(
                SinkFailure.FAILED, f"writing {target.name} failed ({name}); the old file is kept"
            ) from None
        if written != document:
            raise SinkError(
                SinkFailure.FAILED, f"{target.name} does not hold what was written; will retry"
            )
        return Written(destination=str(target), version_id=content_digest(document))

    def leftovers(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:  # not mounted (yet): nothing to sweep
            return []
        stems = {found["stem"] for name in names if (found := _TEMPORARY.fullmatch(name))}
        return sorted(str(self.directory / f"{stem}{SUFFIX}") for stem in stems)

    def clean(self, destination: str) -> int:
        try:
            return self._remove_leftovers(self._target(destination))
        except FileNotFoundError:  # the directory is not mounted
            return 0
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "OSError")
            raise SinkError(
                SinkFailure.FAILED, f"removing the temporary files of {destination} failed ({name})"
            ) from None

    def _target(self, destination: str) -> Path:
        target = Path(destination)
        if target.parent != self.directory or not _OWN_FILE.fullmatch(target.name):
            raise SinkError(
                SinkFailure.FAILED,
                f"{target.name} is not a file of the directory {self.directory}; nothing written",
            )
        return target

    def _remove_leftovers(self, target: Path) -> int:
        """Remove the temporary files of ``target`` that a crashed write left behind."""
        stem = target.name.removesuffix(SUFFIX)
        removed = 0
        for name in os.listdir(self.directory):
            found = _TEMPORARY.fullmatch(name)
            if found is not None and found["stem"] == stem:
                (self.directory / name).unlink(missing_ok=True)
                removed += 1
        return removed

    def _replace(self, target: Path, document: bytes) -> None:
        # mkstemp creates the file with mode 0600 and O_EXCL: no other user ever reads it.
        handle, temporary = tempfile.mkstemp(
            dir=self.directory, prefix=f".{target.name.removesuffix(SUFFIX)}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(document)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, FILE_MODE)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
