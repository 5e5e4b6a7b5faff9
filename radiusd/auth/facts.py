"""What an Access-Request says, read once into plain data for the policy.

Named tuples, not dataclasses: two are built for every request, and a
frozen dataclass costs several times as much to build.
"""

from typing import NamedTuple

from radiusd.codec.attributes import first_raw, integer
from radiusd.codec.packets import AccessRequest, MalformedPacket

# Keys of the attributes read from an Access-Request in its attribute map.
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
SERVICE_TYPE = 6
FRAMED_PROTOCOL = 7
CALLING_STATION_ID = 31
CHAP_CHALLENGE = 60
NAS_PORT_TYPE = 61
MS_CHAP_RESPONSE = (311, 1)
MS_CHAP_CHALLENGE = (311, 11)
MS_CHAP2_RESPONSE = (311, 25)


class Credentials(NamedTuple):
    """What the request proves the password with (RFC 2865 5.2/5.3, RFC 2548).

    ``method`` is pap, chap, mschap2, mschap1 or None (nothing we support).
    """

    method: str | None
    password: str | None = None
    chap_password: bytes | None = None
    chap_challenge: bytes | None = None
    request_authenticator: bytes = b""
    ms_challenge: bytes | None = None
    ms_response: bytes | None = None


class RequestFacts(NamedTuple):
    """The parts of an Access-Request the policy looks at."""

    username: str
    credentials: Credentials
    calling_station_id: str | None = None
    service_type: int | None = None
    framed_protocol: int | None = None
    nas_port_type: int | None = None


def _credentials(packet: AccessRequest) -> Credentials:
    attributes = packet.attributes
    encrypted = first_raw(attributes, USER_PASSWORD)
    if encrypted is not None:
        if not encrypted or len(encrypted) % 16:
            raise MalformedPacket("bad_attribute", f"User-Password of {len(encrypted)} octets")
        return Credentials("pap", password=packet.password(encrypted))
    if (chap_password := first_raw(attributes, CHAP_PASSWORD)) is not None:
        return Credentials(
            "chap",
            chap_password=chap_password,
            chap_challenge=first_raw(attributes, CHAP_CHALLENGE),
            request_authenticator=packet.authenticator,
        )
    if (ms_challenge := first_raw(attributes, MS_CHAP_CHALLENGE)) is not None:
        if (response := first_raw(attributes, MS_CHAP2_RESPONSE)) is not None:
            return Credentials("mschap2", ms_challenge=ms_challenge, ms_response=response)
        if (response := first_raw(attributes, MS_CHAP_RESPONSE)) is not None:
            return Credentials("mschap1", ms_challenge=ms_challenge, ms_response=response)
    return Credentials(None)


def request_facts(packet: AccessRequest) -> RequestFacts:
    """Read what the policy needs from a decoded Access-Request.

    Raises MalformedPacket for a request without User-Name or with a
    User-Password that is not a multiple of 16 octets.
    """
    attributes = packet.attributes
    raw_name = first_raw(attributes, USER_NAME)
    if not raw_name:
        raise MalformedPacket("no_user_name", "Access-Request without User-Name")
    calling = first_raw(attributes, CALLING_STATION_ID)
    return RequestFacts(
        username=raw_name.decode("utf-8", errors="replace"),
        credentials=_credentials(packet),
        calling_station_id=calling.decode("utf-8", errors="replace") if calling else None,
        service_type=integer(first_raw(attributes, SERVICE_TYPE)),
        framed_protocol=integer(first_raw(attributes, FRAMED_PROTOCOL)),
        nas_port_type=integer(first_raw(attributes, NAS_PORT_TYPE)),
    )
