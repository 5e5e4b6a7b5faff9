"""RFC 5176 Dynamic Authorization client: Disconnect-Request and CoA-Request.

radbill tells a router to drop a session (Disconnect-Request) or to change
it in place (CoA-Request with a new Mikrotik-Rate-Limit, so a speed change
does not drop PPPoE). RouterOS listens on UDP 3799 (``/radius incoming``).

What makes a router actually act (FIELD-NOTES 12): the session is named by
User-Name and Acct-Session-Id exactly as the router sent them in
accounting, plus Framed-IP-Address and NAS-IP-Address. Each request
carries a Message-Authenticator (RFC 5176 §3.4; RouterOS 7.15+ expects one
everywhere), and the Request Authenticator is the MD5 over the packet with
a zero authenticator and the shared secret (RFC 5176 §2.3, as for an
Accounting-Request). A reply is believed only when its Response
Authenticator (and Message-Authenticator, if present) verify with the
secret and its code answers the request (§2.1, §2.2: Disconnect-ACK/NAK
for a Disconnect-Request, CoA-ACK/NAK for a CoA-Request); anything else is
dropped silently, as RFC 2865 §3 asks, and the request keeps waiting.

A request is retransmitted unchanged (same Identifier and authenticator,
RFC 5080 §2.2.1) after ``timeout`` seconds, ``retries`` times, then fails
with CoaTimeout. Timers run on an injectable clock.
"""

import ipaddress
import logging
import random
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from pyrad.packet import (
    CoAACK,
    CoANAK,
    CoAPacket,
    CoARequest,
    DisconnectACK,
    DisconnectNAK,
    DisconnectRequest,
    PacketError,
)
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from schema.dictionary import load_dictionary

log = logging.getLogger(__name__)

ERROR_CAUSE = 101
# RFC 5176 §3.5: "the session is not there" - for a Disconnect, the goal.
SESSION_CONTEXT_NOT_FOUND = 503

_ANSWERS = {DisconnectRequest: (DisconnectACK, DisconnectNAK), CoARequest: (CoAACK, CoANAK)}
_NAMES = {
    DisconnectRequest: "Disconnect-Request",
    CoARequest: "CoA-Request",
    DisconnectACK: "Disconnect-ACK",
    DisconnectNAK: "Disconnect-NAK",
    CoAACK: "CoA-ACK",
    CoANAK: "CoA-NAK",
}

REQUESTS = Counter(
    "radbill_nas_coa_requests_total",
    "RFC 5176 requests sent to routers, by request and result (ack, nak, timeout).",
    ["request", "result"],
)
ROUND_TRIP = Histogram(
    "radbill_nas_coa_round_trip_seconds",
    "Time from the first transmission of a CoA or Disconnect request to its answer.",
    ["request"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class CoaTimeout(Exception):
    """The NAS never answered (or only with replies that did not verify)."""


@dataclass(frozen=True)
class SessionIdentity:
    """The attributes that name one session on its NAS (RFC 5176 §3)."""

    user_name: str
    acct_session_id: str
    nas_ip_address: str
    framed_ip_address: str | None = None


@dataclass(frozen=True)
class CoaReply:
    """A verified answer: ACK, or NAK with the Error-Cause the NAS gave."""

    code: int
    error_cause: int | None = None

    @property
    def acked(self) -> bool:
        return self.code in (DisconnectACK, CoAACK)

    @property
    def name(self) -> str:
        return _NAMES[self.code]

    def describe(self) -> str:
        """``Disconnect-NAK Session-Context-Not-Found (503)``, for logs and last_error."""
        if self.error_cause is None:
            return self.name
        causes = load_dictionary().attributes["Error-Cause"].values
        encoded = struct.pack("!I", self.error_cause)
        label = causes.GetBackward(encoded) if causes.HasBackward(encoded) else "unknown"
        return f"{self.name} {label} ({self.error_cause})"


def disconnect_request(session: SessionIdentity, secret: bytes) -> CoAPacket:
    """A Disconnect-Request for one session (RFC 5176 §2.1)."""
    return _request(DisconnectRequest, session, secret)


def coa_request(
    session: SessionIdentity, secret: bytes, rate_limit: str, address_list: str | None = None
) -> CoAPacket:
    """A CoA-Request that gives one session a new Mikrotik-Rate-Limit (RFC 5176 §2.2),
    and the address list its package puts it on, if any."""
    packet = _request(CoARequest, session, secret)
    packet["Mikrotik-Rate-Limit"] = rate_limit
    if address_list:
        packet["Mikrotik-Address-List"] = address_list
    return packet


def _request(code: int, session: SessionIdentity, secret: bytes) -> CoAPacket:
    packet = CoAPacket(code=code, id=0, secret=secret, dict=load_dictionary())
    packet.add_message_authenticator()
    nas_address = ipaddress.ip_address(session.nas_ip_address)
    packet["NAS-IPv6-Address" if nas_address.version == 6 else "NAS-IP-Address"] = str(nas_address)
    packet["User-Name"] = session.user_name
    packet["Acct-Session-Id"] = session.acct_session_id
    if session.framed_ip_address and ipaddress.ip_address(session.framed_ip_address).version == 4:
        packet["Framed-IP-Address"] = session.framed_ip_address
    return packet


@dataclass
class _Pending:
    packet: CoAPacket
    raw: bytes
    socket: "_Socket"
    destination: tuple[str, int]
    started: float
    result: defer.Deferred
    sent: int = 1
    timer: object = field(default=None, repr=False)


class _Socket(DatagramProtocol):
    """One UDP socket of the client; there is one per address family."""

    def __init__(self, receive):
        self._receive = receive

    def datagramReceived(self, data: bytes, address) -> None:
        self._receive(data, address)


class DynamicAuthorizationClient:
    """Sends CoA and Disconnect requests and matches the answers.

    ``send`` returns a Deferred that fires with a verified CoaReply (ACK or
    NAK) or fails with CoaTimeout. Requests to one NAS get distinct
    Identifiers, so up to 256 can be in flight per NAS. Requests go out
    from an ephemeral port on ``interface`` (IPv4) or ``interface6`` (IPv6,
    bound when the first IPv6 NAS is addressed).
    """

    def __init__(
        self,
        reactor,
        clock=None,
        *,
        timeout: float = 3.0,
        retries: int = 2,
        interface: str = "0.0.0.0",
        interface6: str = "::",
    ):
        self._reactor = reactor
        self._clock = clock or reactor
        self.timeout = timeout
        self.retries = retries
        self._interfaces = {4: interface, 6: interface6}
        self._sockets: dict[int, _Socket] = {}
        self._pending: dict[tuple[str, int], _Pending] = {}

    def start(self) -> None:
        """Bind the IPv4 socket now, so a bad interface shows at start-up."""
        self._socket(4)

    def _socket(self, version: int) -> _Socket:
        if version not in self._sockets:
            socket = _Socket(self._received)
            self._reactor.listenUDP(0, socket, interface=self._interfaces[version])
            self._sockets[version] = socket
        return self._sockets[version]

    def stop(self) -> defer.Deferred:
        """Close the sockets; requests still in flight fail with CoaTimeout."""
        for key in list(self._pending):
            self._give_up(key, "the client was stopped")
        sockets, self._sockets = list(self._sockets.values()), {}
        return defer.gatherResults(
            [defer.maybeDeferred(socket.transport.stopListening) for socket in sockets]
        )

    def send(self, host: str, port: int, packet: CoAPacket) -> defer.Deferred:
        """Send a request built by disconnect_request/coa_request to host:port."""
        address = ipaddress.ip_address(host)
        host = str(address)
        packet.id = self._free_identifier(host)
        raw = packet.RequestPacket()
        key = (host, packet.id)
        socket = self._socket(address.version)
        pending = _Pending(packet, raw, socket, (host, port), self._clock.seconds(), defer.Deferred())
        self._pending[key] = pending
        socket.transport.write(raw, pending.destination)
        pending.timer = self._clock.callLater(self.timeout, self._retransmit, key)
        return pending.result

    def _free_identifier(self, host: str) -> int:
        start = random.randrange(256)
        for offset in range(256):
            identifier = (start + offset) % 256
            if (host, identifier) not in self._pending:
                return identifier
        raise RuntimeError(f"256 requests already in flight to {host}")

    def _retransmit(self, key: tuple[str, int]) -> None:
        pending = self._pending[key]
        if pending.sent > self.retries:
            self._give_up(key, f"no answer after {pending.sent} transmissions {self.timeout:g}s apart")
            return
        pending.sent += 1
        pending.socket.transport.write(pending.raw, pending.destination)
        pending.timer = self._clock.callLater(self.timeout, self._retransmit, key)

    def _give_up(self, key: tuple[str, int], why: str) -> None:
        pending = self._pending.pop(key)
        if pending.timer.active():
            pending.timer.cancel()
        request = _NAMES[pending.packet.code]
        REQUESTS.labels(request, "timeout").inc()
        host, port = pending.destination
        pending.result.errback(CoaTimeout(f"{request} to {host}:{port}: {why}"))

    def _received(self, data: bytes, address) -> None:
        host = str(ipaddress.ip_address(address[0]))
        if len(data) < 20:
            log.warning("dropped a %d-byte datagram from %s: shorter than a RADIUS header", len(data), host)
            return
        key = (host, data[1])
        pending = self._pending.get(key)
        if pending is None:
            log.warning(
                "dropped a reply from %s with Identifier %d: no request of ours is waiting for it",
                host,
                data[1],
            )
            return
        request = pending.packet
        try:
            reply = CoAPacket(packet=data, secret=request.secret, dict=request.dict)
        except PacketError as error:
            log.warning("dropped a malformed reply from %s: %s", host, error)
            return
        if reply.code not in _ANSWERS[request.code]:
            log.warning(
                "dropped a reply with code %d from %s: it does not answer a %s",
                reply.code,
                host,
                _NAMES[request.code],
            )
            return
        if not request.VerifyReply(reply, data):
            log.warning(
                "dropped a %s from %s: its authenticators do not verify (wrong secret?)",
                _NAMES[reply.code],
                host,
            )
            return
        del self._pending[key]
        pending.timer.cancel()
        answer = CoaReply(reply.code, error_cause(reply))
        REQUESTS.labels(_NAMES[request.code], "ack" if answer.acked else "nak").inc()
        ROUND_TRIP.labels(_NAMES[request.code]).observe(self._clock.seconds() - pending.started)
        pending.result.callback(answer)


def error_cause(reply: CoAPacket) -> int | None:
    """The Error-Cause (RFC 5176 §3.5) of a verified reply, if it has one."""
    values = OrderedDict.get(reply, ERROR_CAUSE)
    if not values or len(values[0]) != 4:
        return None
    return struct.unpack("!I", values[0])[0]
