"""Files and directories radbill creates for itself: readable by their owner only.

The database, spooled accounting records and keys hold subscribers' passwords
and money. They are created 0600 (directories 0700) whatever the process's
umask, because a umask of 022 would leave them readable by every local user.
"""

import os
import secrets
import stat
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: str | Path) -> Path:
    """Create ``path`` and any missing parents 0700; an existing directory is left as it is."""
    path = Path(path)
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is masked by the umask
    return path


def open_private(path: str | Path, mode: str = "a+b"):
    """``open(path, mode)``, creating the file 0600 if it does not exist yet."""

    def opener(name, flags):
        descriptor = os.open(name, flags, FILE_MODE)
        if flags & os.O_CREAT and os.fstat(descriptor).st_size == 0:
            os.fchmod(descriptor, FILE_MODE)  # os.open's mode is masked by the umask too
        return descriptor

    return open(path, mode, opener=opener)


def create_private_file(path: str | Path) -> None:
    """Create an empty file 0600 unless it exists (e.g. a SQLite database before SQLite opens it)."""
    open_private(path, "ab").close()


def load_or_create_key(path: str | Path) -> bytes:
    """A 256-bit key from ``path``, created (0600) on first use; a key others may read is refused.

    A key radbill makes for itself (the API's token signing key, the card PIN
    key) is never a built-in default (FIELD-NOTES 25). A new key file takes the
    owner of its directory, so a key first made by root in the daemons' state
    directory stays readable by the daemons' user.
    """
    path = Path(path)
    private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as key_file:
            os.fchmod(key_file.fileno(), FILE_MODE)
            key_file.write(secrets.token_hex(32) + "\n")
        directory = path.parent.stat()
        if os.geteuid() == 0 and (directory.st_uid, directory.st_gid) != (0, 0):
            os.chown(path, directory.st_uid, directory.st_gid)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"{path} is readable by other users: chmod 600 it (or delete it to make a new key)"
        )
    key = path.read_text().strip()
    if len(key) < 64:
        raise PermissionError(f"{path} does not hold a 256-bit key: delete it to make a new one")
    return bytes.fromhex(key)
