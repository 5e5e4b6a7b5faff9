"""The UDP protocol and the packet checks, with a fake transport and clock."""

import os
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pyrad.packet import AccessAccept, AccessReject, AccessRequest, AcctPacket, AuthPacket
from twisted.internet.task import Clock

from radiusd.auth.handler import AccessHandler
from radiusd.auth.policy import PackageState, PolicySettings
from radiusd.codec import mschap
from radiusd.codec.packets import MalformedPacket, check_datagram
from radiusd.protocol import RadiusServerProtocol
from radiusd.view.model import CustomerRow, NasClient, Snapshot
from radiusd.view.view import SubscriberView
from schema.dictionary import load_dictionary

SECRET = b"s3cret"
NAS_ADDRESS = ("192.0.2.1", 40000)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class FakeTransport:
    def __init__(self):
        self.sent: list[tuple[bytes, tuple]] = []

    def write(self, data, address):
        self.sent.append((data, address))


def make_view(policy: str = "no") -> SubscriberView:
    view = SubscriberView()
    package = PackageState(id=1, billing_type="daily", rate_limit="10M/10M")
    view.apply(
        Snapshot(
            customers=[
                CustomerRow(
                    1,
                    "alice",
                    "secret",
                    "active",
                    1,
                    1,
                    NOW + timedelta(days=1),
                    100,
                    None,
                    None,
                    False,
                    False,
                )
            ],
            nas=[NasClient(1, "edge-1", "192.0.2.1", SECRET, policy)],
            packages={1: ("pppoe", package)},
            operators={},
            full=True,
        )
    )
    return view


class Harness:
    def __init__(self, policy: str = "no"):
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        self.view = make_view(policy)
        self.attempts: list[dict] = []
        self.seen: list[NasClient] = []
        self.handler = AccessHandler(
            self.view,
            PolicySettings(),
            self.clock,
            record_attempt=self.attempts.append,
            message_authenticator_seen=self.seen.append,
        )
        self.protocol = RadiusServerProtocol(self.view, self.handler, self.clock)
        self.transport = FakeTransport()
        self.protocol.transport = self.transport

    def send(self, data: bytes, address=NAS_ADDRESS) -> bytes | None:
        before = len(self.transport.sent)
        self.protocol.datagramReceived(data, address)
        replies = self.transport.sent[before:]
        assert len(replies) <= 1
        return replies[0][0] if replies else None


def request(username="alice", password="secret", *, sign=True, secret=SECRET, **attributes) -> AuthPacket:
    packet = AuthPacket(code=AccessRequest, secret=secret, dict=load_dictionary(), User_Name=username)
    packet["User-Password"] = packet.PwCrypt(password)
    for name, value in attributes.items():
        packet[name.replace("_", "-")] = value
    if sign:
        packet.add_message_authenticator()
    return packet


def decode_reply(packet: AuthPacket, raw: bytes) -> AuthPacket:
    reply = packet.CreateReply(packet=raw)
    assert packet.VerifyReply(reply, raw, enforce_ma=True)
    return reply


def drops(cause: str) -> float:
    return REGISTRY.get_sample_value("radbill_radiusd_drops_total", {"cause": cause}) or 0.0


def test_accept_is_signed_with_message_authenticator_first():
    harness = Harness()
    packet = request()
    raw = harness.send(packet.RequestPacket())
    reply = decode_reply(packet, raw)
    assert reply.code == AccessAccept
    assert raw[20] == 80 and raw[21] == 18  # the first attribute
    assert reply["Mikrotik-Rate-Limit"] == ["10M/10M"]
    assert harness.attempts[0]["reason"] == "ok" and harness.attempts[0]["username"] == "alice"


def test_reject_is_signed_too_and_says_why():
    harness = Harness()
    packet = request(password="wrong")
    raw = harness.send(packet.RequestPacket())
    reply = decode_reply(packet, raw)
    assert reply.code == AccessReject and raw[20] == 80
    assert reply["Reply-Message"] == ["Wrong user name or password"]


def test_user_names_are_case_insensitive():
    harness = Harness()
    packet = request("ALICE")
    assert decode_reply(packet, harness.send(packet.RequestPacket())).code == AccessAccept


def test_proxy_state_is_echoed_in_order():
    harness = Harness()
    packet = request()
    packet.AddAttribute("Proxy-State", b"first")
    packet.AddAttribute("Proxy-State", b"second")
    reply = decode_reply(packet, harness.send(packet.RequestPacket()))
    assert reply[33] == [b"first", b"second"]


def test_unknown_source_is_dropped_counted_and_logged_once_a_minute(caplog):
    harness = Harness()
    before = drops("unknown_nas")
    for _ in range(3):
        assert harness.send(request().RequestPacket(), ("198.51.100.9", 1812)) is None
    assert drops("unknown_nas") == before + 3
    assert len([r for r in caplog.records if "198.51.100.9" in r.getMessage()]) == 1
    harness.clock.advance(61)
    harness.send(request().RequestPacket(), ("198.51.100.9", 1812))
    assert len([r for r in caplog.records if "198.51.100.9" in r.getMessage()]) == 2


def test_ipv4_mapped_source_finds_the_ipv4_nas():
    harness = Harness()
    packet = request()
    assert harness.send(packet.RequestPacket(), ("::ffff:192.0.2.1", 1812)) is not None


def test_retransmission_gets_the_cached_reply_and_is_not_processed_twice():
    harness = Harness()
    raw = request().RequestPacket()
    first = harness.send(raw)
    second = harness.send(raw)
    assert first == second
    assert len(harness.attempts) == 1
    other_port = harness.send(raw, (NAS_ADDRESS[0], NAS_ADDRESS[1] + 1))
    assert other_port is not None and len(harness.attempts) == 2
    harness.clock.advance(31)
    harness.send(raw)
    assert len(harness.attempts) == 3


def test_wrong_secret_gets_no_answer_when_signed():
    harness = Harness()
    before = drops("bad_message_authenticator")
    assert harness.send(request(secret=b"other").RequestPacket()) is None
    assert drops("bad_message_authenticator") == before + 1


def test_policy_yes_refuses_an_unsigned_request():
    harness = Harness("yes")
    assert harness.send(request(sign=False).RequestPacket()) is None
    assert harness.send(request().RequestPacket()) is not None


def test_policy_no_answers_an_unsigned_request():
    harness = Harness("no")
    packet = request(sign=False)
    assert decode_reply(packet, harness.send(packet.RequestPacket())).code == AccessAccept
    assert harness.seen == []


def test_policy_auto_requires_it_once_seen_and_reports_it_once():
    harness = Harness("auto")
    assert harness.send(request(sign=False).RequestPacket()) is not None
    assert harness.send(request().RequestPacket()) is not None
    assert harness.send(request().RequestPacket()) is not None
    assert [client.name for client in harness.seen] == ["edge-1"]
    assert harness.view.nas_for("192.0.2.1").message_authenticator_seen
    assert harness.send(request(sign=False).RequestPacket()) is None


def test_mschap2_reply_carries_keys_the_nas_can_decrypt():
    harness = Harness()
    challenge, peer = os.urandom(16), os.urandom(16)
    password_hash = mschap.nt_password_hash("secret")
    nt = mschap.generate_nt_response(challenge, peer, "alice", password_hash)
    packet = AuthPacket(code=AccessRequest, secret=SECRET, dict=load_dictionary(), User_Name="alice")
    packet["MS-CHAP-Challenge"] = challenge
    packet["MS-CHAP2-Response"] = bytes([7, 0]) + peer + bytes(8) + nt
    packet.add_message_authenticator()
    reply = decode_reply(packet, harness.send(packet.RequestPacket()))
    assert reply.code == AccessAccept
    expected = mschap.generate_authenticator_response(password_hash, nt, peer, challenge, "alice")
    assert reply["MS-CHAP2-Success"] == [bytes([7]) + expected]
    send = reply["MS-MPPE-Send-Key"][0]
    recv = reply["MS-MPPE-Recv-Key"][0]
    assert send[:2] != recv[:2]
    master = mschap.master_key(mschap.MD4.new(password_hash).digest(), nt)
    assert mschap.decrypt_mppe_key(send, SECRET, packet.authenticator) == mschap.asymmetric_start_key(
        master, 16, is_send=True, is_server=True
    )
    assert mschap.decrypt_mppe_key(recv, SECRET, packet.authenticator) == mschap.asymmetric_start_key(
        master, 16, is_send=False, is_server=True
    )


def test_request_without_credentials_is_rejected_as_unsupported():
    harness = Harness()
    packet = AuthPacket(code=AccessRequest, secret=SECRET, dict=load_dictionary(), User_Name="alice")
    packet.add_message_authenticator()
    reply = decode_reply(packet, harness.send(packet.RequestPacket()))
    assert reply.code == AccessReject
    assert harness.attempts[-1]["reason"] == "unsupported_auth_method"


# --- malformed input ----------------------------------------------------------------


def valid_bytes() -> bytes:
    return request().RequestPacket()


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (b"\x01\x02", "short"),
        (b"\x04" + valid_bytes()[1:], "bad_code"),
        (valid_bytes()[:4] + valid_bytes()[4:30], "bad_length"),
        (valid_bytes()[:2] + struct.pack("!H", 5000) + valid_bytes()[4:], "bad_length"),
        (valid_bytes()[:2] + struct.pack("!H", 19) + valid_bytes()[4:], "bad_length"),
    ],
)
def test_malformed_headers(data, cause):
    with pytest.raises(MalformedPacket) as raised:
        check_datagram(data, frozenset({1}))
    assert raised.value.cause == cause


def with_attribute(attribute: bytes) -> bytes:
    base = request(sign=False).RequestPacket()
    data = base + attribute
    return data[:2] + struct.pack("!H", len(data)) + data[4:]


@pytest.mark.parametrize(
    "attribute", [b"\x01", b"\x01\x00", b"\x01\x01", b"\x01\x09abc", bytes([80, 10]) + bytes(8)]
)
def test_malformed_attributes(attribute):
    with pytest.raises(MalformedPacket) as raised:
        check_datagram(with_attribute(attribute), frozenset({1}))
    assert raised.value.cause == "bad_attribute"


def test_padding_after_the_length_is_ignored():
    harness = Harness()
    packet = request()
    assert decode_reply(packet, harness.send(packet.RequestPacket() + b"\x00" * 7)).code == AccessAccept


def test_accounting_on_the_auth_port_is_dropped():
    harness = Harness()
    accounting = AcctPacket(secret=SECRET, dict=load_dictionary(), User_Name="alice")
    before = drops("bad_code")
    assert harness.send(accounting.RequestPacket()) is None
    assert drops("bad_code") == before + 1


def test_user_password_of_a_wrong_length_is_dropped():
    harness = Harness()
    packet = AuthPacket(code=AccessRequest, secret=SECRET, dict=load_dictionary(), User_Name="alice")
    packet[2] = [b"x" * 5]
    assert harness.send(packet.RequestPacket()) is None


def test_missing_user_name_is_dropped():
    harness = Harness()
    packet = AuthPacket(code=AccessRequest, secret=SECRET, dict=load_dictionary())
    packet.add_message_authenticator()
    before = drops("no_user_name")
    assert harness.send(packet.RequestPacket()) is None
    assert drops("no_user_name") == before + 1


def mutations(data: bytes):
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)).map(
            lambda change: data[: change[0]] + bytes([change[1]]) + data[change[0] + 1 :]
        ),
        st.integers(0, len(data)).map(lambda cut: data[:cut]),
        st.binary(max_size=40).map(lambda tail: data + tail),
        st.binary(min_size=1, max_size=40).map(
            lambda tail: data[:2] + struct.pack("!H", len(data) + len(tail)) + data[4:] + tail
        ),
    )


HARNESS = Harness()
VALID = request().RequestPacket()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.lists(mutations(VALID), min_size=1, max_size=5))
def test_fuzzed_packets_never_break_the_server(garbage):
    for data in garbage:
        HARNESS.protocol.datagramReceived(data, NAS_ADDRESS)
    HARNESS.clock.advance(60)  # let the duplicate cache forget
    packet = request()
    before = len(HARNESS.transport.sent)
    HARNESS.protocol.datagramReceived(packet.RequestPacket(), (NAS_ADDRESS[0], 50000))
    assert len(HARNESS.transport.sent) == before + 1
    assert decode_reply(packet, HARNESS.transport.sent[-1][0]).code == AccessAccept
    assert REGISTRY.get_sample_value("radbill_radiusd_drops_total", {"cause": "internal_error"}) in (
        None,
        0.0,
    )


def test_a_wrong_secret_is_warned_once_a_minute(caplog):
    harness = Harness()
    for _ in range(3):
        harness.send(request(secret=b"other").RequestPacket())
    warnings = [r for r in caplog.records if "is the shared secret right" in r.getMessage()]
    assert len(warnings) == 1 and "edge-1" in warnings[0].getMessage()


def test_the_dictionary_has_no_tlv_attributes_as_the_fast_decoder_assumes():
    assert [name for name, attribute in load_dictionary().attributes.items() if attribute.type == "tlv"] == []


def test_fast_decoding_matches_pyrads_own():
    packet = request(Calling_Station_Id="aa:bb", Framed_Protocol="PPP")
    packet.AddAttribute("Proxy-State", b"x")
    packet["MS-CHAP-Challenge"] = bytes(16)
    raw = packet.RequestPacket()
    from radiusd.codec.packets import decode

    ours = decode(raw, SECRET)
    theirs = AuthPacket(packet=raw, secret=SECRET, dict=load_dictionary())
    assert list(ours.attributes.items()) == list(theirs.items())
    assert ours.message_authenticator and ours.authenticator == theirs.authenticator


def test_status_server_gets_an_accept_only_when_signed():
    harness = Harness()
    packet = AuthPacket(code=12, secret=SECRET, dict=load_dictionary())
    packet.add_message_authenticator()
    raw = harness.send(packet.RequestPacket())
    reply = decode_reply(packet, raw)
    assert reply.code == AccessAccept and raw[20] == 80
    unsigned = AuthPacket(code=12, secret=SECRET, dict=load_dictionary())
    assert harness.send(unsigned.RequestPacket()) is None
    assert harness.attempts == []


def test_spoofed_sources_cannot_flood_the_log(caplog):
    """Issue 11: a warning a minute per address is no limit when every packet has a new
    source: at most UNKNOWN_SOURCE_WARNINGS a minute in all, then one line with the count."""
    from radiusd.protocol import UNKNOWN_SOURCE_WARNINGS

    harness = Harness()
    raw = request().RequestPacket()
    before = drops("unknown_nas")
    for i in range(500):
        harness.send(raw, (f"198.18.{i // 250}.{i % 250}", 1812))
    assert drops("unknown_nas") == before + 500

    def warnings():
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    assert len(warnings()) == UNKNOWN_SOURCE_WARNINGS
    harness.clock.advance(61)
    harness.send(raw, ("198.18.9.9", 1812))
    assert len(warnings()) == UNKNOWN_SOURCE_WARNINGS + 2
    assert f"{500 - UNKNOWN_SOURCE_WARNINGS} more unknown sources" in warnings()[-2]
