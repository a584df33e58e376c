"""The file sink: one JSON file per key label in a directory the trading service mounts.

Each write goes to a temporary file in the same directory (created with mode 0600), is flushed
to disk, then renamed over the key's file: a reader sees the old document or the new one,
never half of one, and a crash or a full disk leaves the old file in place. The directory is
flushed too, so the rename survives a power cut. The file is read back to confirm it holds
exactly what was written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from bot.sinks import (
    DeliveredCredentials,
    SinkError,
    SinkFailure,
    SinkKind,
    Written,
    content_digest,
    safe_name,
)

FILE_MODE = 0o600


def file_path(directory: Path, label: str) -> Path:
    """The file that holds a key's credentials."""
    return directory / f"{safe_name(label)}.json"


class FileSink:
    kind = SinkKind.FILE

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def destination(self, *, label: str, account: str) -> str:
        return str(file_path(self.directory, label))

    def write(self, credentials: DeliveredCredentials, *, idempotency_token: str) -> Written:
        document = credentials.document()
        target = file_path(self.directory, credentials.label)
        try:
            if not self.directory.is_dir():
                raise SinkError(
                    SinkFailure.UNREACHABLE,
                    f"the directory {self.directory} does not exist (is the volume mounted?)",
                )
            self._replace(target, document)
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

    def _replace(self, target: Path, document: bytes) -> None:
        # mkstemp creates the file with mode 0600 and O_EXCL: no other user ever reads it.
        handle, temporary = tempfile.mkstemp(
            dir=self.directory, prefix=f".{target.stem}.", suffix=".tmp"
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
