"""Accounting records from packets, and how a session evolves: pure, no socket, no database."""

import hashlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad.packet import AcctPacket

from radiusd.accounting.record import AccountingError, AccountingRecord, merge_session
from radiusd.codec import attributes
from schema.dictionary import load_dictionary
from tests.accounting_helpers import T0, accounting_packet, make_record, record_of


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# acctuniqueid as FreeRADIUS 3.2.1 (Debian 12) computed it for the same requests: its stock
# preprocess + acct_unique policy, logged by linelog, the requests sent with radclient from 127.0.0.1.
FREERADIUS_UNIQUE_IDS = [
    (
        dict(
            Acct_Status_Type="Start",
            User_Name="Demo",
            Acct_Session_Id="81f00001",
            NAS_IP_Address="10.0.0.1",
            NAS_Identifier="core-1",
            NAS_Port_Id="ether1",
            NAS_Port=15728641,
        ),
        "306a70a100d92b2739cbab22fde3d637",
    ),
    (
        dict(Acct_Status_Type="Interim-Update", User_Name="u", Acct_Session_Id="s"),
        "e7b2a0922fe8f54dc9b006dd9f9f3991",
    ),
    (
        dict(
            Acct_Status_Type="Stop",
            User_Name="u",
            Acct_Session_Id="s",
            NAS_IP_Address="10.0.0.1",
            NAS_IPv6_Address="2001:db8::1",
        ),
        "1176aa2d61d3863c1a8677c9ecc158c2",
    ),
    (
        dict(
            Acct_Status_Type="Stop",
            User_Name="u",
            Acct_Session_Id="s1",
            NAS_IP_Address="10.0.0.1",
            Class=b"ai:0123456789abcdef0123456789ABCDEF",
        ),
        "71505ce6bc92517831b339d0a82ce1cf",
    ),
    (
        dict(Acct_Status_Type="Start", User_Name="aa:bb:cc:dd:ee:ff", Acct_Session_Id="0x1234", NAS_Port=0),
        "5e75df7763f7efa3f27774d3e2cd758a",
    ),
]


@pytest.mark.parametrize("attributes, freeradius", FREERADIUS_UNIQUE_IDS)
def test_unique_id_is_the_one_freeradius_computes(attributes, freeradius):
    assert record_of(accounting_packet(**attributes), source_ip="127.0.0.1").acct_unique_id == freeradius


def test_unique_id_policy_fields():
    """The acct_unique policy: md5 of User-Name, Acct-Session-Id, NAS address, NAS-Identifier, NAS-Port-Id, NAS-Port."""
    packet = accounting_packet(
        Acct_Status_Type="Start",
        User_Name="Demo",
        Acct_Session_Id="81f00001",
        NAS_IP_Address="10.0.0.1",
        NAS_Identifier="core-1",
        NAS_Port_Id="ether1",
        NAS_Port=15728641,
    )
    assert record_of(packet).acct_unique_id == md5("Demo,81f00001,10.0.0.1,core-1,ether1,15728641")
    bare = record_of(
        accounting_packet(Acct_Status_Type="Start", User_Name="u", Acct_Session_Id="s"), source_ip="192.0.2.7"
    )
    assert bare.acct_unique_id == md5("u,s,192.0.2.7,,,") and bare.nas_ip_address == "192.0.2.7"
    token = "0123456789abcdef0123456789ABCDEF"
    other = accounting_packet(
        Acct_Status_Type="Stop",
        User_Name="u",
        Acct_Session_Id="s1",
        NAS_IP_Address="10.0.0.1",
        Class=b"xx:" + token.encode(),
    )
    assert record_of(other).acct_unique_id == md5("u,s1,10.0.0.1,,,")


def test_octets_include_gigawords_and_input_is_the_upload():
    packet = accounting_packet(
        Acct_Status_Type="Interim-Update",
        User_Name="u",
        Acct_Session_Id="s",
        Acct_Input_Octets=5,
        Acct_Input_Gigawords=2,
        Acct_Output_Octets=7,
        Acct_Output_Gigawords=1,
    )
    record = record_of(packet)
    assert record.upload_bytes == (2 << 32) + 5
    assert record.download_bytes == (1 << 32) + 7


def test_no_counters_means_none_not_zero():
    record = record_of(accounting_packet(Acct_Status_Type="Stop", User_Name="u", Acct_Session_Id="s"))
    assert record.upload_bytes is None and record.download_bytes is None


def test_event_timestamp_wins_else_arrival_less_delay():
    stamped = record_of(
        accounting_packet(
            Acct_Status_Type="Start",
            User_Name="u",
            Acct_Session_Id="s",
            Event_Timestamp=int(T0.timestamp()) - 100,
            Acct_Delay_Time=30,
        )
    )
    assert stamped.event_time == T0 - timedelta(seconds=100)
    delayed = record_of(
        accounting_packet(Acct_Status_Type="Start", User_Name="u", Acct_Session_Id="s", Acct_Delay_Time=30)
    )
    assert delayed.event_time == T0 - timedelta(seconds=30)


def test_session_record_needs_a_session_id_and_status():
    with pytest.raises(AccountingError):
        record_of(accounting_packet(Acct_Status_Type="Start", User_Name="u"))
    with pytest.raises(AccountingError):
        record_of(accounting_packet(User_Name="u", Acct_Session_Id="s"))
    assert record_of(accounting_packet(Acct_Status_Type="Failed", User_Name="u", Acct_Session_Id="s")) is None


def test_accounting_on_keeps_nas_and_cause():
    record = record_of(
        accounting_packet(Acct_Status_Type="Accounting-On", NAS_IP_Address="10.0.0.9"), nas_id=3
    )
    assert (record.status, record.nas_ip_address, record.nas_id, record.acct_unique_id) == (
        "Accounting-On",
        "10.0.0.9",
        3,
        "",
    )


def test_record_survives_the_spool_format():
    record = record_of(
        accounting_packet(
            Acct_Status_Type="Stop",
            User_Name="u",
            Acct_Session_Id="s",
            Acct_Input_Octets=9,
            Framed_IP_Address="100.64.0.2",
            Acct_Terminate_Cause="User-Request",
            Class=b"\x01\x02",
        )
    )
    assert AccountingRecord.from_json(record.to_json()) == record
    assert record.class_ == "0x0102" and record.terminate_cause == "User-Request"


# Every attribute record_from_packet reads, decoded as pyrad would (an enumerated value's
# name, else by type; a string that is not UTF-8 with replacement characters, as always stored).
READ_ATTRIBUTES = [
    "Acct-Status-Type",
    "Acct-Session-Id",
    "Class",
    "User-Name",
    "NAS-Identifier",
    "NAS-Port-Id",
    "NAS-Port",
    "NAS-IPv6-Address",
    "NAS-IP-Address",
    "Event-Timestamp",
    "Acct-Delay-Time",
    "Acct-Terminate-Cause",
    "Acct-Session-Time",
    "NAS-Port-Type",
    "Framed-IP-Address",
    "Framed-IPv6-Address",
    "Framed-IPv6-Prefix",
    "Framed-Interface-Id",
    "Delegated-IPv6-Prefix",
    "Calling-Station-Id",
    "Called-Station-Id",
    "Service-Type",
    "Framed-Protocol",
    "Acct-Authentic",
    "Connect-Info",
    "Acct-Input-Octets",
    "Acct-Input-Gigawords",
    "Acct-Output-Octets",
    "Acct-Output-Gigawords",
]


def _pyrad_value(name: str, raw: bytes):
    dictionary = load_dictionary()
    attribute = dictionary.attributes[name]
    try:
        value = AcctPacket(dict=dictionary)._DecodeValue(attribute, raw)
    except Exception:
        return "refused"
    return (
        value.decode("utf-8", "replace") if attribute.type == "string" and isinstance(value, bytes) else value
    )


@given(
    st.sampled_from(READ_ATTRIBUTES),
    st.binary(max_size=20) | st.integers(0, 40).map(lambda number: number.to_bytes(4, "big")),
)
def test_values_decode_as_pyrad_decodes_them(name, raw):
    try:
        value = attributes.first({load_dictionary().attributes[name].code: [raw]}, name)
    except ValueError:
        value = "refused"
    assert value == _pyrad_value(name, raw)


def test_decoded_values_of_a_mikrotik_interim():
    packet = accounting_packet(
        Acct_Status_Type="Interim-Update",
        User_Name="u\u00e9",
        Acct_Session_Id="81f00001",
        NAS_Port_Type="Ethernet",
        Service_Type="Framed-User",
        Framed_IP_Address="100.64.0.2",
        Acct_Terminate_Cause="User-Request",
        Acct_Session_Time=300,
        NAS_Port=15728641,
        NAS_IPv6_Address="2001:db8::1",
        Framed_IPv6_Prefix="2001:db8:1::/48",
    )
    assert [
        attributes.first(packet, name)
        for name in (
            "Acct-Status-Type",
            "User-Name",
            "NAS-Port-Type",
            "Service-Type",
            "Framed-IP-Address",
            "Acct-Terminate-Cause",
            "Acct-Session-Time",
            "NAS-IPv6-Address",
            "Framed-IPv6-Prefix",
            "Connect-Info",
        )
    ] == [
        "Interim-Update",
        "u\u00e9",
        "Ethernet",
        "Framed-User",
        "100.64.0.2",
        "User-Request",
        300,
        "2001:db8::1",
        "2001:db8:1::/48",
        None,
    ]
    assert attributes.first({44: [b"ab\xff"]}, "Acct-Session-Id") == "ab\ufffd"


# --- the session state machine ------------------------------------------------------


def test_start_interim_stop():
    state = merge_session(None, make_record("Start", at=T0))
    assert state.started_at == T0 and state.is_open
    state = merge_session(
        state, make_record("Interim-Update", at=T0 + timedelta(minutes=5), upload=10, download=20)
    )
    assert (state.upload_bytes, state.download_bytes, state.interval) == (10, 20, 300)
    state = merge_session(
        state,
        make_record(
            "Stop",
            at=T0 + timedelta(minutes=7),
            upload=15,
            download=30,
            session_time=420,
            cause="User-Request",
        ),
    )
    assert not state.is_open and state.terminate_cause == "User-Request" and state.session_time == 420
    assert (state.upload_bytes, state.download_bytes) == (15, 30)


def test_stop_without_octets_keeps_last_values():
    state = merge_session(None, make_record("Interim-Update", upload=100, download=200))
    state = merge_session(state, make_record("Stop", at=T0 + timedelta(seconds=60)))
    assert (state.upload_bytes, state.download_bytes) == (100, 200) and not state.is_open


def test_interim_for_unknown_session_creates_it_started_at_event_less_session_time():
    state = merge_session(None, make_record("Interim-Update", session_time=600, upload=1))
    assert state.is_open and state.started_at == T0 - timedelta(seconds=600)


def test_stop_without_start_is_recorded_closed():
    state = merge_session(None, make_record("Stop", session_time=60, upload=5, download=6))
    assert not state.is_open and state.started_at == T0 - timedelta(seconds=60) and state.upload_bytes == 5


def test_interim_after_stop_does_not_reopen():
    stopped = merge_session(None, make_record("Stop", at=T0, session_time=60, upload=5))
    late = merge_session(stopped, make_record("Interim-Update", at=T0 - timedelta(seconds=10), upload=4))
    assert not late.is_open and late.stopped_at == T0 and late.upload_bytes == 5


def test_late_start_fixes_the_start_time_but_never_reopens():
    stopped = merge_session(None, make_record("Stop", at=T0, session_time=60))
    started = merge_session(stopped, make_record("Start", at=T0 - timedelta(seconds=65)))
    assert started.started_at == T0 - timedelta(seconds=65) and not started.is_open


_STATUS = st.sampled_from(["Start", "Interim-Update", "Stop"])
_COUNTER = st.one_of(st.none(), st.integers(0, 1 << 40))


@given(st.lists(st.tuples(_STATUS, _COUNTER, _COUNTER, st.integers(0, 3600)), min_size=1, max_size=8))
def test_counters_never_go_down_and_replaying_changes_nothing(events):
    state = None
    for status, upload, download, offset in events:
        record = make_record(status, at=T0 + timedelta(seconds=offset), upload=upload, download=download)
        before = state
        state = merge_session(state, record)
        if before is not None:
            assert state.upload_bytes >= before.upload_bytes and state.download_bytes >= before.download_bytes
        assert merge_session(state, record) == state
