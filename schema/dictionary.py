"""The RADIUS dictionary every part encodes and decodes packets with.

radiusd answers Access and Accounting requests with it and nas/ sends
RFC 5176 CoA and Disconnect requests with it, so it lives here, where both
may import it. The dictionary files are in ``raddb/`` at the top of the
repository, so nothing depends on a FreeRADIUS installation. Parsing them
takes a while and the result is never changed, so it is loaded once per
process.
"""

from functools import cache
from pathlib import Path

from pyrad.dictionary import Dictionary

RADDB = Path(__file__).resolve().parent.parent / "raddb"


@cache
def load_dictionary() -> Dictionary:
    """Return the pyrad Dictionary read from ``raddb/dictionary``."""
    return Dictionary(str(RADDB / "dictionary"))
