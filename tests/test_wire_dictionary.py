"""The raddb dictionaries: numbers, names, and a pyrad encode/decode round trip."""

import re
from pathlib import Path

import pytest
from pyrad.packet import AccessAccept, AccessRequest, AuthPacket

from radiusd.codec import mschap
from schema.dictionary import RADDB, load_dictionary

SECRET = b"testing123"
FREERADIUS = Path("/usr/share/freeradius")


def test_loads_every_attribute_and_is_cached():
    dictionary = load_dictionary()
    assert load_dictionary() is dictionary
    assert dictionary.skipped_attributes == set()
    assert RADDB.name == "raddb" and (RADDB / "dictionary").is_file()


@pytest.mark.parametrize(
    ("name", "key", "datatype"),
    [
        ("User-Name", 1, "string"),
        ("CHAP-Password", 3, "octets"),
        ("Framed-IP-Address", 8, "ipaddr"),
        ("Session-Timeout", 27, "integer"),
        ("Proxy-State", 33, "octets"),
        ("CHAP-Challenge", 60, "octets"),
        ("Acct-Status-Type", 40, "integer"),
        ("Acct-Input-Gigawords", 52, "integer"),
        ("Event-Timestamp", 55, "date"),
        ("Message-Authenticator", 80, "octets"),
        ("Acct-Interim-Interval", 85, "integer"),
        ("NAS-Port-Id", 87, "string"),
        ("Framed-IPv6-Prefix", 97, "ipv6prefix"),
        ("Error-Cause", 101, "integer"),
        ("Delegated-IPv6-Prefix", 123, "ipv6prefix"),
        ("MS-CHAP-Response", (311, 1), "octets"),
        ("MS-CHAP-Error", (311, 2), "string"),
        ("MS-CHAP-NT-Enc-PW", (311, 6), "octets"),
        ("MS-MPPE-Encryption-Policy", (311, 7), "integer"),
        ("MS-MPPE-Encryption-Types", (311, 8), "integer"),
        ("MS-CHAP-Challenge", (311, 11), "octets"),
        ("MS-CHAP-MPPE-Keys", (311, 12), "octets"),
        ("MS-MPPE-Send-Key", (311, 16), "octets"),
        ("MS-MPPE-Recv-Key", (311, 17), "octets"),
        ("MS-CHAP2-Response", (311, 25), "octets"),
        ("MS-CHAP2-Success", (311, 26), "octets"),
        ("Mikrotik-Recv-Limit", (14988, 1), "integer"),
        ("Mikrotik-Rate-Limit", (14988, 8), "string"),
        ("Mikrotik-Host-IP", (14988, 10), "ipaddr"),
        ("Mikrotik-Total-Limit", (14988, 17), "integer"),
        ("Mikrotik-Total-Limit-Gigawords", (14988, 18), "integer"),
        ("Mikrotik-Address-List", (14988, 19), "string"),
        ("Mikrotik-Delegated-IPv6-Pool", (14988, 22), "string"),
    ],
)
def test_attribute_numbers_and_types(name, key, datatype):
    dictionary = load_dictionary()
    assert dictionary.attrindex.GetForward(name) == key
    assert dictionary[name].type == datatype


@pytest.mark.parametrize(
    ("attribute", "value", "number"),
    [
        ("Service-Type", "Framed-User", 2),
        ("Service-Type", "Authorize-Only", 17),
        ("Framed-Protocol", "PPP", 1),
        ("NAS-Port-Type", "Ethernet", 15),
        ("NAS-Port-Type", "Wireless-802.11", 19),
        ("Acct-Status-Type", "Interim-Update", 3),
        ("Acct-Status-Type", "Accounting-On", 7),
        ("Acct-Status-Type", "Accounting-Off", 8),
        ("Acct-Terminate-Cause", "Session-Timeout", 5),
        ("Acct-Terminate-Cause", "Admin-Reset", 6),
        ("Acct-Terminate-Cause", "NAS-Request", 10),
        ("Error-Cause", "Session-Context-Not-Found", 503),
        ("Error-Cause", "Missing-Attribute", 402),
        ("MS-MPPE-Encryption-Policy", "Encryption-Required", 2),
        ("MS-MPPE-Encryption-Types", "RC4-40or128-bit-Allowed", 6),
    ],
)
def test_named_values(attribute, value, number):
    encoded = load_dictionary()[attribute].values.GetForward(value)
    assert int.from_bytes(encoded, "big") == number


def test_password_attributes_keep_their_encryption_flags():
    dictionary = load_dictionary()
    assert dictionary["User-Password"].encrypt == 1
    assert dictionary["Tunnel-Password"].encrypt == 2
    assert dictionary["Tunnel-Password"].has_tag
    # radiusd.codec.mschap encrypts these itself, with salts unique in the packet
    assert dictionary["MS-MPPE-Send-Key"].encrypt == 0
    assert dictionary["MS-MPPE-Recv-Key"].encrypt == 0


def _freeradius_codes(path):
    vendor = ""
    codes = {}
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields[:1] == ["BEGIN-VENDOR"]:
            vendor = fields[1]
        elif fields[:1] == ["END-VENDOR"]:
            vendor = ""
        elif fields[:1] == ["ATTRIBUTE"] and re.fullmatch(r"\d+", fields[2]):
            codes[fields[1]] = (vendor, int(fields[2]), fields[3].split("[")[0])
    return codes


@pytest.mark.skipif(not FREERADIUS.is_dir(), reason="FreeRADIUS dictionaries not installed")
@pytest.mark.parametrize(
    "name",
    sorted(path.name for path in RADDB.glob("dictionary.*")),
)
def test_agrees_with_freeradius(name):
    """Every name FreeRADIUS also defines has the same vendor, number and type."""
    theirs = {}
    for path in FREERADIUS.glob(name):
        theirs |= _freeradius_codes(path)
    if name == "dictionary.rfc5176":
        theirs |= _freeradius_codes(FREERADIUS / "dictionary.rfc3576")
    if not theirs:
        pytest.skip(f"FreeRADIUS has no {name}")
    dictionary = load_dictionary()
    for attribute, (vendor, code, datatype) in _freeradius_codes(RADDB / name).items():
        assert attribute in theirs, f"{attribute} is not a FreeRADIUS name"
        their_vendor, their_code, their_type = theirs[attribute]
        assert (vendor, code) == (their_vendor, their_code), attribute
        assert datatype == their_type, attribute
        assert attribute in dictionary


def test_access_request_and_accept_with_vendor_attributes_round_trip():
    dictionary = load_dictionary()
    challenge = bytes(range(16))
    response = bytes((7, 0)) + bytes(range(16, 32)) + bytes(8) + bytes(range(24))
    request = AuthPacket(code=AccessRequest, id=42, secret=SECRET, dict=dictionary)
    request["User-Name"] = "alice"
    request["NAS-Port-Type"] = "Ethernet"
    request["Service-Type"] = "Framed-User"
    request["MS-CHAP-Challenge"] = challenge
    request["MS-CHAP2-Response"] = response
    request["Mikrotik-Host-IP"] = "10.0.0.7"
    request.add_message_authenticator()
    raw_request = request.RequestPacket()

    received = AuthPacket(secret=SECRET, dict=dictionary, packet=raw_request)
    assert received.verify_message_authenticator()
    assert received["User-Name"] == ["alice"]
    assert received["NAS-Port-Type"] == ["Ethernet"]
    assert received["MS-CHAP-Challenge"] == [challenge]
    assert received["MS-CHAP2-Response"] == [response]
    assert received["Mikrotik-Host-IP"] == ["10.0.0.7"]

    send_key, recv_key = bytes(range(100, 116)), bytes(range(200, 216))
    send_value, recv_value = mschap.mppe_key_attributes(send_key, recv_key, SECRET, received.authenticator)
    quota = 5 * 2**32 + 1234
    reply = received.CreateReply()
    reply.code = AccessAccept
    reply.add_message_authenticator()
    reply["MS-CHAP2-Success"] = b"\x07S=" + b"A" * 40
    reply["MS-MPPE-Send-Key"] = send_value
    reply["MS-MPPE-Recv-Key"] = recv_value
    reply["MS-MPPE-Encryption-Policy"] = "Encryption-Allowed"
    reply["MS-MPPE-Encryption-Types"] = "RC4-40or128-bit-Allowed"
    reply["Mikrotik-Rate-Limit"] = "10M/10M 20M/20M 8M/8M 16/16 8 1M/1M"
    reply["Mikrotik-Total-Limit"] = quota & 0xFFFFFFFF
    reply["Mikrotik-Total-Limit-Gigawords"] = quota >> 32
    reply["Mikrotik-Address-List"] = "active"
    reply["Session-Timeout"] = 3600
    reply["Acct-Interim-Interval"] = 300
    raw_reply = reply.ReplyPacket()

    answer = AuthPacket(secret=SECRET, dict=dictionary, packet=raw_reply)
    assert request.VerifyReply(answer, raw_reply, enforce_ma=True)
    assert answer.code == AccessAccept
    assert answer["MS-CHAP2-Success"] == [b"\x07S=" + b"A" * 40]
    assert answer["MS-MPPE-Encryption-Policy"] == ["Encryption-Allowed"]
    assert answer["MS-MPPE-Encryption-Types"] == ["RC4-40or128-bit-Allowed"]
    assert answer["Mikrotik-Rate-Limit"] == ["10M/10M 20M/20M 8M/8M 16/16 8 1M/1M"]
    assert answer["Mikrotik-Total-Limit"] == [1234]
    assert answer["Mikrotik-Total-Limit-Gigawords"] == [5]
    assert answer["Mikrotik-Address-List"] == ["active"]
    assert answer["Session-Timeout"] == [3600]

    # pyrad's own RFC 2868 salt decryption, the same scheme as RFC 2548
    # section 2.4.2, recovers the keys: an independent check of ours.
    answer.request_authenticator = request.authenticator
    assert answer.SaltDecrypt(answer["MS-MPPE-Send-Key"][0]) == send_key
    assert answer.SaltDecrypt(answer["MS-MPPE-Recv-Key"][0]) == recv_key
