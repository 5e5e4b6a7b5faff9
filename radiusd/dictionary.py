"""The RADIUS dictionary radiusd encodes and decodes packets with.

The dictionary files live in ``raddb/`` beside this package (shipped as
package data), so the server never depends on a FreeRADIUS installation.
Parsing them takes a while and the result is never changed, so it is
loaded once per process.
"""

from functools import cache
from pathlib import Path

from pyrad.dictionary import Dictionary

RADDB = Path(__file__).resolve().parent.parent / "raddb"


@cache
def load_dictionary() -> Dictionary:
    """Return the pyrad Dictionary read from ``raddb/dictionary``."""
    return Dictionary(str(RADDB / "dictionary"))
