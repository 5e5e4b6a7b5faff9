"""The RADIUS dictionary radiusd encodes and decodes packets with.

The loader lives in ``schema.dictionary`` because nas/ needs the same
dictionary for CoA and Disconnect requests; radiusd keeps importing it
from here.
"""

from schema.dictionary import RADDB, load_dictionary

__all__ = ["RADDB", "load_dictionary"]
