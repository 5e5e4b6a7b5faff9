"""The accounting handler without sockets: authenticators, bad values, the answer after the writer."""

import hashlib
from collections import OrderedDict

import pytest
from pyrad.packet import AccountingResponse, AcctPacket
from twisted.internet import defer, task

from radiusd.accounting.handler import AccountingHandler
from radiusd.accounting.writer import QueueFull
from radiusd.codec.attributes import attribute_map
from radiusd.codec.packets import Drop, accounting_authenticator_valid, received_packet
from radiusd.codec.replies import encode_accounting_response
from radiusd.view.model import NasClient
from schema.dictionary import load_dictionary
from tests.accounting_helpers import SECRET

CLIENT = NasClient(
    id=1, name="core-1", ip_address="127.0.0.1", secret=SECRET, require_message_authenticator="auto"
)
ADDRESS = ("127.0.0.1", 40000)


class Writer:
    def __init__(self):
        self.pending: list[tuple] = []

    def submit(self, record):
        d = defer.Deferred()
        self.pending.append((record, d))
        return d


def request(secret=SECRET, message_authenticator=False, **attributes):
    attributes = {
        "Acct-Status-Type": "Start",
        "User-Name": "demo",
        "Acct-Session-Id": "a1",
        **{key.replace("_", "-"): value for key, value in attributes.items()},
    }
    packet = AcctPacket(
        dict=load_dictionary(), secret=secret, id=9, message_authenticator=message_authenticator, **attributes
    )
    return packet, packet.RequestPacket()


@pytest.fixture
def handler():
    return AccountingHandler(Writer(), task.Clock())


def test_answer_only_once_the_writer_says_durable(handler):
    packet, data = request(Acct_Input_Octets=5)
    answer = handler.handle(data, CLIENT, ADDRESS)
    replies = []
    answer.addCallback(replies.append)
    [(record, stored)] = handler.writer.pending
    assert record.upload_bytes == 5 and record.nas_id == 1 and replies == []
    stored.callback(None)
    reply = AcctPacket(packet=replies[0], secret=SECRET, dict=load_dictionary())
    assert reply.code == AccountingResponse and reply.id == 9 and packet.VerifyReply(reply, replies[0])


def test_no_answer_when_the_writer_refuses(handler):
    _, data = request()
    answer = handler.handle(data, CLIENT, ADDRESS)
    failures = []
    answer.addErrback(failures.append)
    handler.writer.pending[0][1].errback(QueueFull("full"))
    assert failures[0].check(Drop) and failures[0].value.cause == "accounting_queue_full"


def test_wrong_secret_is_dropped(handler):
    _, data = request(secret=b"not-the-secret")
    with pytest.raises(Drop) as dropped:
        handler.handle(data, CLIENT, ADDRESS)
    assert dropped.value.cause == "bad_authenticator" and handler.writer.pending == []


def test_message_authenticator_is_checked_when_present(handler):
    _, data = request(message_authenticator=True)
    handler.handle(data, CLIENT, ADDRESS)
    assert len(handler.writer.pending) == 1
    tampered = bytearray(data)
    tampered[-1] ^= 1  # the last octet of the Message-Authenticator, which pyrad adds last
    with pytest.raises(Drop) as dropped:
        handler.handle(_resign(bytes(tampered)), CLIENT, ADDRESS)
    assert dropped.value.cause == "bad_message_authenticator"


def test_undecodable_value_and_missing_session_id_are_dropped(handler):
    _, data = request()
    raw = bytearray(data)
    raw += bytes([42, 5, 1, 2, 3])  # Acct-Input-Octets of three octets
    raw[2:4] = len(raw).to_bytes(2, "big")
    resigned = _resign(bytes(raw))
    with pytest.raises(Drop) as dropped:
        handler.handle(resigned, CLIENT, ADDRESS)
    assert dropped.value.cause == "bad_attribute"
    _, data = request()
    del_session = data[:20] + data[20:].replace(bytes([44, 4]) + b"a1", b"")
    del_session = del_session[:2] + len(del_session).to_bytes(2, "big") + del_session[4:]
    with pytest.raises(Drop) as dropped:
        handler.handle(_resign(del_session), CLIENT, ADDRESS)
    assert dropped.value.cause == "bad_accounting"


def test_status_radbill_does_not_store_is_answered_at_once(handler):
    _, data = request(Acct_Status_Type="Failed")
    assert isinstance(handler.handle(data, CLIENT, ADDRESS), bytes) and handler.writer.pending == []


def _resign(data: bytes) -> bytes:
    """Recompute the Request Authenticator (RFC 2866 §3) of hand-edited bytes."""
    zeroed = data[:4] + bytes(16) + data[20:]
    return data[:4] + hashlib.md5(zeroed + SECRET).digest() + data[20:]


# --- the accounting wire without pyrad Packet objects --------------------------------


def test_accounting_authenticator_is_the_one_pyrad_signs():
    packet, data = request(Acct_Input_Octets=5)
    raw = received_packet(data + bytes(7))  # padding beyond the Length field is not signed
    assert raw == data and accounting_authenticator_valid(raw, SECRET)
    assert not accounting_authenticator_valid(raw, b"not-the-secret")
    tampered = bytearray(raw)
    tampered[-1] ^= 1
    assert not accounting_authenticator_valid(bytes(tampered), SECRET)


@pytest.mark.parametrize("proxy_states", [[], [b"first"], [b"first", b"\x00second" * 20]])
def test_accounting_response_is_the_one_pyrad_encodes(proxy_states):
    packet, _ = request()
    for state in proxy_states:
        packet.AddAttribute("Proxy-State", state)
    data = packet.RequestPacket()
    received = AcctPacket(packet=data, secret=SECRET, dict=load_dictionary())
    expected = received.CreateReply().ReplyPacket()
    response = encode_accounting_response(data, attribute_map(data), SECRET)
    assert response == expected and response[0] == AccountingResponse and response[1] == 9
    assert packet.VerifyReply(AcctPacket(packet=response, secret=SECRET, dict=load_dictionary()), response)


def test_attribute_map_is_what_pyrad_decodes():
    packet, _ = request(Acct_Input_Octets=5, Framed_IP_Address="100.64.0.2", Class=b"\x01\x02")
    packet.AddAttribute("Mikrotik-Rate-Limit", "10M/10M")
    packet.AddAttribute("Proxy-State", b"a")
    packet.AddAttribute("Proxy-State", b"b")
    data = packet.RequestPacket()
    decoded = AcctPacket(packet=data, secret=SECRET, dict=load_dictionary())
    attributes = attribute_map(data)
    assert attributes == dict(OrderedDict.items(decoded))
    assert (
        attributes[33] == [b"a", b"b"]
        and attributes[(14988, 8)] == [b"10M/10M"]
        and attributes[8] == [bytes([100, 64, 0, 2])]
    )


def test_counters_reaching_2_to_the_64_are_clamped_answered_and_counted(handler):
    """Issue 11: Gigawords 2^32-1 make a counter of 2^64-1, which no 64-bit column takes:
    the record is stored clamped (and answered once durable), and counted."""
    from radiusd import metrics
    from radiusd.accounting.record import MAX_OCTETS

    clamped = metrics.COUNTERS_CLAMPED.labels(CLIENT.name)
    before = clamped._value.get()
    _, data = request(
        Acct_Status_Type="Stop",
        Acct_Input_Octets=2**32 - 1,
        Acct_Input_Gigawords=2**32 - 1,
        Acct_Output_Octets=7,
    )
    answer = handler.handle(data, CLIENT, ADDRESS)
    replies = []
    answer.addCallback(replies.append)
    [(record, stored)] = handler.writer.pending
    assert (record.upload_bytes, record.download_bytes) == (MAX_OCTETS, 7) and record.counters_clamped
    assert clamped._value.get() == before + 1
    stored.callback(None)
    assert len(replies) == 1
