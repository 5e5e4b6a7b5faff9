"""The RFC 5176 client against a fake NAS on 127.0.0.1: real UDP, real pyrad packets."""

import subprocess

import pytest
import pytest_twisted
from pyrad.packet import CoAACK, CoANAK, DisconnectACK, DisconnectRequest
from twisted.internet import reactor, task, threads

from nas.coa import CoaTimeout, DynamicAuthorizationClient, SessionIdentity, coa_request, disconnect_request
from tests.fakes.nas import ACK, SECRET, SILENT, FakeNas, nak
from tests.fakes.reactor import wait_until

pytestmark = pytest.mark.daemon

SESSION = SessionIdentity(
    user_name="Alice", acct_session_id="81a0002f", nas_ip_address="10.0.0.1", framed_ip_address="100.64.0.7"
)


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def client(clock):
    client = DynamicAuthorizationClient(reactor, clock, timeout=3, retries=2, interface="127.0.0.1")
    yield client
    client.stop()


def test_requests_name_the_session_as_accounting_did_and_sign_it():
    packet = disconnect_request(SESSION, SECRET)
    raw = packet.RequestPacket()
    assert raw[0] == DisconnectRequest
    # Message-Authenticator first (attribute 80), so routers find it at once.
    assert raw[20] == 80
    assert packet["User-Name"] == ["Alice"] and packet["Acct-Session-Id"] == ["81a0002f"]
    assert packet["NAS-IP-Address"] == ["10.0.0.1"] and packet["Framed-IP-Address"] == ["100.64.0.7"]
    coa = coa_request(SessionIdentity("bob", "x1", "2001:db8::1"), SECRET, "10M/20M")
    coa.RequestPacket()
    assert coa["NAS-IPv6-Address"] == ["2001:db8::1"] and "Framed-IP-Address" not in coa
    assert coa["Mikrotik-Rate-Limit"] == ["10M/20M"]


@pytest_twisted.ensureDeferred
async def test_disconnect_is_acked_and_the_nas_verified_both_authenticators(fake_nas, client):
    reply = await client.send("127.0.0.1", fake_nas.port_number, disconnect_request(SESSION, SECRET))
    assert reply.acked and reply.code == DisconnectACK and reply.error_cause is None
    (seen,) = fake_nas.received
    assert seen.authenticator_ok and seen.message_authenticator_ok
    assert seen.attributes == {
        "NAS-IP-Address": ["10.0.0.1"],
        "User-Name": ["Alice"],
        "Acct-Session-Id": ["81a0002f"],
        "Framed-IP-Address": ["100.64.0.7"],
    }


@pytest_twisted.ensureDeferred
async def test_a_nas_on_ipv6_is_reached_from_an_ipv6_socket(clock):
    nas = FakeNas(SECRET)
    port = nas.listen(reactor, interface="::1")
    client = DynamicAuthorizationClient(reactor, clock, interface="127.0.0.1", interface6="::1")
    try:
        session = SessionIdentity("alice", "81a0002f", "2001:db8::1")
        reply = await client.send("::1", port, disconnect_request(session, SECRET))
    finally:
        await client.stop()
        await nas.port.stopListening()
    assert reply.acked
    assert nas.received[0].attributes["NAS-IPv6-Address"] == ["2001:db8::1"]


@pytest_twisted.ensureDeferred
async def test_coa_nak_carries_the_error_cause(fake_nas, client):
    fake_nas.script = [nak(503), ACK]
    refused = await client.send("127.0.0.1", fake_nas.port_number, coa_request(SESSION, SECRET, "5M/5M"))
    assert not refused.acked and refused.code == CoANAK and refused.error_cause == 503
    assert refused.describe() == "CoA-NAK Session-Context-Not-Found (503)"
    accepted = await client.send("127.0.0.1", fake_nas.port_number, coa_request(SESSION, SECRET, "5M/5M"))
    assert accepted.code == CoAACK
    assert fake_nas.received[0].attributes["Mikrotik-Rate-Limit"] == ["5M/5M"]


@pytest_twisted.ensureDeferred
async def test_silence_is_retransmitted_unchanged_then_times_out(fake_nas, client, clock):
    fake_nas.default = SILENT
    result = client.send("127.0.0.1", fake_nas.port_number, disconnect_request(SESSION, SECRET))
    failures = []
    result.addErrback(failures.append)
    for transmissions in (1, 2, 3):
        await wait_until(
            lambda: len(fake_nas.received) == transmissions, what=f"transmission {transmissions}"
        )
        assert not failures
        clock.advance(3)
    assert failures and failures[0].check(CoaTimeout)
    assert "no answer after 3 transmissions 3s apart" in str(failures[0].value)
    assert len({seen.raw for seen in fake_nas.received}) == 1, "a retransmission must be the same packet"


@pytest_twisted.ensureDeferred
async def test_a_reply_signed_with_another_secret_is_dropped(fake_nas, client, clock):
    fake_nas.reply_secret = b"not-the-secret"
    result = client.send("127.0.0.1", fake_nas.port_number, disconnect_request(SESSION, SECRET))
    failures = []
    result.addErrback(failures.append)
    await wait_until(lambda: len(fake_nas.received) == 1)
    await task.deferLater(reactor, 0.05, lambda: None)  # the forged reply arrives and is dropped
    clock.advance(3)
    await wait_until(lambda: len(fake_nas.received) == 2)
    clock.advance(3)
    await wait_until(lambda: len(fake_nas.received) == 3)
    clock.advance(3)
    assert failures and failures[0].check(CoaTimeout)


@pytest_twisted.ensureDeferred
async def test_the_nas_drops_a_request_signed_with_the_wrong_secret(fake_nas, client, clock):
    result = client.send("127.0.0.1", fake_nas.port_number, disconnect_request(SESSION, b"wrong"))
    result.addErrback(lambda failure: failure.trap(CoaTimeout))
    await wait_until(lambda: len(fake_nas.received) == 1)
    assert fake_nas.received[0].answered == "dropped"
    assert not fake_nas.received[0].authenticator_ok and not fake_nas.received[0].message_authenticator_ok
    clock.advance(10)
    clock.advance(10)
    clock.advance(10)
    await result


@pytest.mark.parametrize(
    ("behaviour", "answer"),
    [(ACK, "Received Disconnect-ACK"), (nak(503), "Error-Cause = Session-Context-Not-Found")],
)
@pytest.mark.interop
@pytest_twisted.ensureDeferred
async def test_the_fake_nas_agrees_with_freeradius_radclient(fake_nas, behaviour, answer):
    """radclient (FreeRADIUS) signs the request and checks the reply, so the
    fake NAS is held to an implementation other than pyrad's."""
    fake_nas.script = [behaviour]
    attributes = 'User-Name = "Alice"\nAcct-Session-Id = "81a0002f"\nNAS-IP-Address = 10.0.0.1\nMessage-Authenticator = 0x00\n'
    command = [
        "radclient",
        "-x",
        "-r",
        "1",
        "-t",
        "2",
        f"127.0.0.1:{fake_nas.port_number}",
        "disconnect",
        SECRET.decode(),
    ]
    result = await threads.deferToThread(
        subprocess.run, command, input=attributes, capture_output=True, text=True
    )
    assert answer in result.stdout, result.stdout + result.stderr
    (seen,) = fake_nas.received
    assert seen.authenticator_ok and seen.message_authenticator_ok
    assert seen.attributes["Acct-Session-Id"] == ["81a0002f"]
