"""A local append-only spool for accounting records the database could not take.

The file ``accounting.spool`` is a sequence of frames::

    4 bytes  big-endian payload length
    4 bytes  big-endian CRC-32 of the payload
    n bytes  the record as UTF-8 JSON

Frames are fsync'd before the Accounting-Response goes out, so a record the
NAS saw acknowledged survives a crash. ``accounting.cursor`` holds the byte
offset up to which frames have been committed to the database; it is
replaced atomically (write, fsync, rename). Replay re-applies at most the
chunk in flight at a crash, and the database writes are idempotent, so each
record arrives exactly once. A torn frame at the tail (a crash while
appending, before anything was acknowledged) is cut off at open.

Only the accounting writer thread uses a Spool.
"""

import json
import logging
import os
import struct
import zlib
from pathlib import Path

from radiusd.accounting.record import AccountingRecord
from schema.private_files import open_private, private_directory

_HEADER = struct.Struct(">II")
SPOOL_NAME = "accounting.spool"
CURSOR_NAME = "accounting.cursor"

log = logging.getLogger(__name__)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        private_directory(self.directory)
        self.path = self.directory / SPOOL_NAME
        self.cursor_path = self.directory / CURSOR_NAME
        self._file = open_private(self.path, "a+b")
        self.cursor = self._read_cursor()
        self.end, self.pending = self._scan()

    def _read_cursor(self) -> int:
        try:
            cursor = int(self.cursor_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        if cursor > self.path.stat().st_size:
            # Past the end only after a crash between truncating and resetting:
            # reset it now, before new appends make the stale offset look valid.
            self._write_cursor(0)
            return 0
        return cursor

    def _write_cursor(self, offset: int) -> None:
        temporary = self.cursor_path.with_suffix(".tmp")
        with open_private(temporary, "w") as writer:
            writer.write(str(offset))
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, self.cursor_path)
        _fsync_directory(self.directory)

    def _scan(self) -> tuple[int, int]:
        """Count whole frames after the cursor; cut a torn tail off."""
        count, offset = 0, self.cursor
        for offset, _record in self._frames(self.cursor):  # noqa: B007 (the last frame's end is kept)
            count += 1
        size = self.path.stat().st_size
        if offset < size:
            log.warning(
                "accounting spool %s: cutting %d bytes of an unfinished record at offset %d",
                self.path,
                size - offset,
                offset,
            )
            self._file.truncate(offset)
            os.fsync(self._file.fileno())
        return offset, count

    def _frames(self, start: int, limit: int | None = None):
        """Yield (offset after the frame, record) for whole, intact frames from ``start``."""
        with open(self.path, "rb") as reader:
            reader.seek(start)
            offset, produced = start, 0
            while limit is None or produced < limit:
                header = reader.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                length, checksum = _HEADER.unpack(header)
                payload = reader.read(length)
                if len(payload) < length or zlib.crc32(payload) != checksum:
                    return
                offset += _HEADER.size + length
                produced += 1
                yield offset, AccountingRecord.from_json(json.loads(payload))

    def append(self, records: list[AccountingRecord]) -> None:
        """Write the records and fsync them; only then may they be acknowledged."""
        frames = []
        for record in records:
            payload = json.dumps(record.to_json(), separators=(",", ":")).encode()
            frames.append(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        data = b"".join(frames)
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            # A half-written frame (disk full) would hide every later one from replay.
            self._file.truncate(self.end)
            raise
        self.end += len(data)
        self.pending += len(records)

    def read(self, limit: int) -> list[tuple[int, AccountingRecord]]:
        """Up to ``limit`` records not yet committed, each with the offset just after it."""
        return list(self._frames(self.cursor, limit))

    def advance(self, offset: int, count: int) -> None:
        """Mark everything before ``offset`` (``count`` records) as committed to the database."""
        self.pending -= count
        if offset >= self.end:
            # All replayed: start the file afresh so it does not grow for ever.
            self._file.truncate(0)
            os.fsync(self._file.fileno())
            offset = self.end = 0
        self._write_cursor(offset)
        self.cursor = offset

    def close(self) -> None:
        self._file.close()
