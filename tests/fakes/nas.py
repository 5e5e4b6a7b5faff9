"""A fake NAS that answers RFC 5176 CoA and Disconnect requests on 127.0.0.1.

Like RouterOS's ``/radius incoming``, it drops a request whose Request
Authenticator (RFC 5176 §2.3) or Message-Authenticator does not verify
with the shared secret, and answers the others as the test scripts it:
ACK, NAK with an Error-Cause, or silence (to force a timeout).
"""

from dataclasses import dataclass, field

import pytest
from pyrad.packet import CoANAK, CoAPacket, DisconnectNAK, DisconnectRequest
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol

from schema.dictionary import load_dictionary

SECRET = b"coa-s3cret"
ACK = "ack"
SILENT = "silent"


def nak(error_cause: int = 503) -> tuple[str, int]:
    return ("nak", error_cause)


@dataclass
class Received:
    """One request as the fake NAS saw it."""

    packet: CoAPacket
    raw: bytes
    authenticator_ok: bool
    message_authenticator_ok: bool
    answered: str

    @property
    def attributes(self) -> dict:
        return {
            name: self.packet[name]
            for name in self.packet.keys()
            if isinstance(name, str) and name != "Message-Authenticator"
        }


@dataclass(eq=False)
class FakeNas(DatagramProtocol):
    secret: bytes
    script: list = field(default_factory=list)
    default: object = ACK
    # Sign replies with another secret, to prove the client checks them.
    reply_secret: bytes | None = None
    received: list[Received] = field(default_factory=list)

    def listen(self, reactor, interface: str = "127.0.0.1") -> int:
        self.port = reactor.listenUDP(0, self, interface=interface)
        return self.port.getHost().port

    def datagramReceived(self, data: bytes, address) -> None:
        packet = CoAPacket(packet=data, secret=self.secret, dict=load_dictionary())
        authenticator_ok = packet.VerifyCoARequest()
        message_authenticator_ok = (
            bool(packet.message_authenticator) and packet.verify_message_authenticator()
        )
        if not (authenticator_ok and message_authenticator_ok):
            self.received.append(
                Received(packet, data, authenticator_ok, message_authenticator_ok, "dropped")
            )
            return
        behaviour = self.script.pop(0) if self.script else self.default
        self.received.append(
            Received(packet, data, True, True, behaviour if isinstance(behaviour, str) else "nak")
        )
        if behaviour == SILENT:
            return
        reply = packet.CreateReply()
        reply.secret = self.reply_secret or self.secret
        if behaviour != ACK:
            reply.code = DisconnectNAK if packet.code == DisconnectRequest else CoANAK
            reply["Error-Cause"] = behaviour[1]
        reply.add_message_authenticator()
        self.transport.write(reply.ReplyPacket(), address)


@pytest.fixture
def fake_nas():
    """A FakeNas with secret SECRET on 127.0.0.1; its port is ``port_number``."""
    nas = FakeNas(SECRET)
    nas.port_number = nas.listen(reactor)
    yield nas
    nas.port.stopListening()
