"""Files and directories radbill creates for itself: readable by their owner only.

The database, spooled accounting records and keys hold subscribers' passwords
and money. They are created 0600 (directories 0700) whatever the process's
umask, because a umask of 022 would leave them readable by every local user.
"""

import os
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
