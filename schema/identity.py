"""How subscribers are named, one way for radiusd and billingd alike.

User names are one global, case-insensitive namespace (FIELD-NOTES 6), and
routers spell MAC addresses many ways; both sides of radbill must agree on
the canonical form or MAC binding and simultaneous use can be bypassed.
"""

import ipaddress
import re

from schema.errors import RadbillError

_MAC = re.compile(r"[0-9a-f]{2}([:.-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}")
_CANONICAL_MAC = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}")


def canonical_mac(value: str) -> str | None:
    """``aa-bb-cc-dd-ee-ff``, ``AABB.CCDD.EEFF``, ``aabbccddeeff`` -> ``AA:BB:CC:DD:EE:FF``; None if not a MAC."""
    if _CANONICAL_MAC.fullmatch(value):
        return value  # as MikroTik sends it, on every request: one match instead of three
    cleaned = value.strip().lower()
    if not _MAC.fullmatch(cleaned):
        return None
    digits = re.sub(r"[^0-9a-f]", "", cleaned)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


def canonical_username(value: str) -> str:
    """Lower-cased; a MAC-style name is written ``aa:bb:cc:dd:ee:ff`` whatever separator the router used."""
    mac = canonical_mac(value)
    return mac.lower() if mac else value.strip().lower()


def canonical_ip(value: str) -> str:
    """One spelling per address (``2001:DB8::1`` and ``2001:db8:0::1`` are one NAS or static IP).

    An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, a dual-stack socket's
    view of an IPv4 peer) is the IPv4 address.
    """
    try:
        parsed = ipaddress.ip_address(value.strip())
    except ValueError:
        raise RadbillError(f"invalid IP address {value!r}") from None
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)
