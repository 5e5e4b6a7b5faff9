"""The authorization policy, rule by rule, without sockets or a database."""

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radiusd.auth.facts import Credentials, RequestFacts
from radiusd.auth.policy import (
    MESSAGES,
    REASONS,
    PackageState,
    PolicySettings,
    Subscriber,
    authorize,
    service_of,
)
from radiusd.codec import mschap
from radiusd.codec.chap import chap_response
from schema.identity import canonical_mac, canonical_username

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SETTINGS = PolicySettings(interim_interval=120)
PACKAGE = PackageState(id=1, billing_type="daily", rate_limit="10M/10M")


def subscriber(**changes) -> Subscriber:
    base = Subscriber(
        id=7,
        username="alice",
        password="secret",
        status="active",
        customer_type="pppoe",
        package=PACKAGE,
        expires_at=NOW + timedelta(days=3),
        wallet_balance=50_000,
    )
    return replace(base, **changes)


def pap(password="secret", username="alice", **facts) -> RequestFacts:
    return RequestFacts(username=username, credentials=Credentials("pap", password=password), **facts)


def decide(request=None, state=None, settings=SETTINGS, now=NOW):
    return authorize(request or pap(), subscriber() if state is None else state, now, settings)


def attributes(decision) -> dict:
    return dict(decision.attributes)


# --- credentials ---------------------------------------------------------------


def test_pap_accepts_the_right_password_and_rejects_a_wrong_one():
    assert decide().accept
    wrong = decide(pap("nope"))
    assert (wrong.accept, wrong.reason) == (False, "wrong_password")
    assert attributes(wrong)["Reply-Message"] == MESSAGES["wrong_password"]


def test_unknown_user_gets_the_same_message_as_a_wrong_password():
    decision = authorize(pap(), None, NOW, SETTINGS)
    assert (decision.accept, decision.reason) == (False, "unknown_user")
    assert decision.message == MESSAGES["wrong_password"]


def test_request_without_supported_credentials_is_rejected_with_a_reason():
    request = RequestFacts(username="alice", credentials=Credentials(None))
    decision = decide(request)
    assert (decision.accept, decision.reason) == (False, "unsupported_auth_method")


def test_chap_with_and_without_chap_challenge():
    authenticator = os.urandom(16)
    response = bytes([9]) + chap_response(9, "secret", authenticator)
    via_authenticator = RequestFacts(
        "alice", Credentials("chap", chap_password=response, request_authenticator=authenticator)
    )
    assert decide(via_authenticator).accept
    challenge = os.urandom(16)
    response = bytes([3]) + chap_response(3, "secret", challenge)
    via_challenge = RequestFacts(
        "alice",
        Credentials(
            "chap", chap_password=response, chap_challenge=challenge, request_authenticator=authenticator
        ),
    )
    assert decide(via_challenge).accept
    bad = RequestFacts(
        "alice",
        Credentials(
            "chap",
            chap_password=bytes([3]) + chap_response(3, "other", challenge),
            chap_challenge=challenge,
            request_authenticator=authenticator,
        ),
    )
    assert decide(bad).reason == "wrong_password"


def test_malformed_chap_password_is_a_wrong_password_not_a_crash():
    request = RequestFacts(
        "alice", Credentials("chap", chap_password=b"short", request_authenticator=bytes(16))
    )
    assert decide(request).reason == "wrong_password"


def mschap2_request(password: str, username: str = "alice") -> RequestFacts:
    challenge, peer = os.urandom(16), os.urandom(16)
    nt = mschap.generate_nt_response(challenge, peer, username, mschap.nt_password_hash(password))
    response = bytes([1, 0]) + peer + bytes(8) + nt
    return RequestFacts(username, Credentials("mschap2", ms_challenge=challenge, ms_response=response))


def test_mschap2_accept_carries_success_and_mppe_keys():
    decision = decide(mschap2_request("secret"))
    assert decision.accept and decision.auth_method == "mschap2"
    success = attributes(decision)["MS-CHAP2-Success"]
    assert success[0] == 1 and success[1:3] == b"S=" and len(success) == 43
    assert attributes(decision)["MS-MPPE-Encryption-Policy"] == 1
    send, recv = decision.mppe_keys
    assert len(send) == len(recv) == 16 and send != recv
    assert decide(mschap2_request("wrong")).reason == "wrong_password"


def test_mschap1_accept_carries_the_nt_key():
    challenge = os.urandom(8)
    nt = mschap.challenge_response(challenge, mschap.nt_password_hash("secret"))
    response = bytes([1, 1]) + bytes(24) + nt
    decision = decide(
        RequestFacts("alice", Credentials("mschap1", ms_challenge=challenge, ms_response=response))
    )
    assert decision.accept and len(decision.mppe_keys) == 1


# --- account state -------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (dict(deleted=True), "deleted"),
        (dict(status="disabled"), "disabled"),
        (dict(status="suspended"), "suspended"),
        (dict(operator_blocked=True), "operator_blocked"),
        (dict(expires_at=NOW), "expired"),
        (dict(expires_at=NOW - timedelta(seconds=1)), "expired"),
        (dict(expires_at=NOW, wallet_balance=0), "balance_exhausted"),
        (dict(expires_at=NOW - timedelta(hours=1), wallet_balance=-1), "balance_exhausted"),
        (dict(open_sessions=1), "simultaneous_use"),
        (dict(mac_binding="AA:BB:CC:DD:EE:FF"), "mac_mismatch"),
    ],
)
def test_each_reject_reason(state, reason):
    decision = decide(state=subscriber(**state))
    assert (decision.accept, decision.reason) == (False, reason)
    assert attributes(decision) == {"Reply-Message": MESSAGES[reason]}


def test_every_reason_has_a_message_and_the_policy_can_give_each():
    assert set(MESSAGES) == set(REASONS)


def test_state_is_hidden_from_someone_without_the_password():
    decision = decide(pap("nope"), subscriber(status="suspended"))
    assert decision.reason == "wrong_password"


def test_operator_states_come_before_what_the_subscriber_can_fix():
    state = subscriber(status="suspended", expires_at=NOW - timedelta(days=1), wallet_balance=0)
    assert decide(state=replace(state, status="active")).reason == "balance_exhausted"
    assert decide(state=state).reason == "suspended"
    assert decide(state=replace(state, status="disabled", deleted=True)).reason == "deleted"


def test_a_paid_period_is_served_whatever_the_wallet_says():
    """A renewal may spend the whole wallet: expires_at says what is paid."""
    assert decide(state=subscriber(wallet_balance=0)).accept
    assert decide(state=subscriber(wallet_balance=-5)).accept


def test_expired_with_money_left_is_told_to_renew_not_to_recharge():
    assert decide(state=subscriber(expires_at=NOW, wallet_balance=1)).reason == "expired"


def test_monthly_packages_are_not_gated_by_the_wallet():
    monthly = replace(PACKAGE, billing_type="monthly")
    assert decide(state=subscriber(package=monthly, wallet_balance=0)).accept
    assert decide(state=subscriber(package=monthly, wallet_balance=0, expires_at=NOW)).reason == "expired"


def test_simultaneous_use_limit_comes_from_the_package():
    two = replace(PACKAGE, simultaneous_use=2)
    assert decide(state=subscriber(package=two, open_sessions=1)).accept
    assert decide(state=subscriber(package=two, open_sessions=2)).reason == "simultaneous_use"


@pytest.mark.parametrize(
    "calling", ["aa-bb-cc-dd-ee-ff", "AA:BB:CC:DD:EE:FF", "aabb.ccdd.eeff", "aabbccddeeff"]
)
def test_mac_binding_matches_any_spelling(calling):
    state = subscriber(mac_binding="aa:bb:cc:dd:ee:ff")
    assert decide(pap(calling_station_id=calling), state).accept
    assert decide(pap(calling_station_id="aa-bb-cc-dd-ee-00"), state).reason == "mac_mismatch"
    assert decide(pap(), state).reason == "mac_mismatch"


# --- service type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer_type", "facts", "allowed"),
    [
        ("pppoe", dict(framed_protocol=1, service_type=2), True),
        ("pppoe", dict(service_type=1), False),
        ("pppoe", dict(), True),
        ("hotspot", dict(service_type=1), True),
        ("hotspot", dict(framed_protocol=1), False),
        ("hotspot", dict(service_type=2), False),
        ("static", dict(framed_protocol=1), True),
        ("static", dict(service_type=2), True),
        ("static", dict(service_type=1), False),
        ("other", dict(service_type=1), True),
        ("other", dict(framed_protocol=1), True),
    ],
)
def test_service_must_fit_the_customer_type(customer_type, facts, allowed):
    decision = decide(pap(**facts), subscriber(customer_type=customer_type))
    assert decision.accept is allowed
    if not allowed:
        assert decision.reason == "wrong_service"


def test_service_of_reads_framed_protocol_first():
    assert service_of(pap(framed_protocol=1, service_type=1)) == "ppp"
    assert service_of(pap()) is None


# --- accept attributes ----------------------------------------------------------


def test_plain_accept_attributes():
    decision = decide()
    assert (decision.accept, decision.reason) == (True, "ok")
    assert attributes(decision) == {
        "Mikrotik-Rate-Limit": "10M/10M",
        "Session-Timeout": 3 * 86_400,
        "Acct-Interim-Interval": 120,
    }


def test_no_expiry_means_no_session_timeout():
    assert "Session-Timeout" not in attributes(decide(state=subscriber(expires_at=None)))


def test_static_ip_pool_group_and_address_list():
    package = replace(PACKAGE, ip_pool="pool-10m", profile="gold", address_list="paying")
    with_pool = attributes(decide(state=subscriber(package=package)))
    assert (with_pool["Framed-Pool"], with_pool["Mikrotik-Group"], with_pool["Mikrotik-Address-List"]) == (
        "pool-10m",
        "gold",
        "paying",
    )
    static = attributes(
        decide(state=subscriber(package=package, customer_type="static", static_ip="10.9.8.7"))
    )
    assert static["Framed-IP-Address"] == "10.9.8.7" and "Framed-Pool" not in static


def test_remaining_quota_is_split_into_limit_and_gigawords():
    quota = replace(PACKAGE, quota_bytes=100 * 2**32 + 5)
    decision = attributes(decide(state=subscriber(package=quota, used_bytes=2**32)))
    assert decision["Mikrotik-Total-Limit-Gigawords"] == 99
    assert decision["Mikrotik-Total-Limit"] == 5


@given(quota=st.integers(1, 2**50), used=st.integers(0, 2**50))
def test_quota_split_always_adds_up(quota, used):
    state = subscriber(package=replace(PACKAGE, quota_bytes=quota), used_bytes=used)
    decision = decide(state=state)
    if used >= quota:
        assert decision.reason == "quota_exhausted"
    else:
        values = attributes(decision)
        assert (values["Mikrotik-Total-Limit-Gigawords"] << 32) + values[
            "Mikrotik-Total-Limit"
        ] == quota - used


def test_over_quota_without_fair_usage_is_rejected():
    state = subscriber(package=replace(PACKAGE, quota_bytes=1000), used_bytes=1000)
    assert decide(state=state).reason == "quota_exhausted"


def test_over_quota_with_fair_usage_gets_the_fup_rate_and_no_limit():
    package = replace(PACKAGE, quota_bytes=1000, fup_rate_limit="1M/1M")
    decision = decide(state=subscriber(package=package, used_bytes=5000))
    values = attributes(decision)
    assert (decision.accept, decision.reason, values["Mikrotik-Rate-Limit"]) == (True, "fup", "1M/1M")
    assert "Mikrotik-Total-Limit" not in values


def test_session_timeout_is_capped_at_32_bits():
    state = subscriber(expires_at=NOW + timedelta(days=365 * 200))
    assert attributes(decide(state=state))["Session-Timeout"] == 0xFFFFFFFF


def test_expired_restrict_policy_accepts_into_the_captive_profile():
    settings = PolicySettings(
        interim_interval=60,
        expired_policy="restrict",
        expired_pool="expired",
        expired_address_list="captive",
        expired_rate="256k/256k",
    )
    decision = decide(
        state=subscriber(expires_at=NOW - timedelta(days=1), wallet_balance=0), settings=settings
    )
    assert (decision.accept, decision.reason) == (True, "expired_restricted")
    assert attributes(decision) == {
        "Mikrotik-Rate-Limit": "256k/256k",
        "Framed-Pool": "expired",
        "Mikrotik-Address-List": "captive",
        "Reply-Message": MESSAGES["expired"],
        "Acct-Interim-Interval": 60,
    }
    # still no way in for a suspended or wrong-password subscriber
    assert decide(pap("x"), subscriber(expires_at=NOW), settings).reason == "wrong_password"
    assert (
        decide(state=subscriber(expires_at=NOW, status="suspended"), settings=settings).reason == "suspended"
    )


def test_a_customer_billing_suspended_for_not_paying_is_expired_not_suspended():
    restrict = PolicySettings(interim_interval=60, expired_policy="restrict", expired_rate="256k/256k")
    # the daily run could not take the day from the wallet: told to recharge, not "suspended"
    unpaid_daily = subscriber(
        status="suspended", unpaid=True, expires_at=NOW - timedelta(hours=1), wallet_balance=0
    )
    assert decide(state=unpaid_daily).reason == "balance_exhausted"
    assert (
        decide(state=unpaid_daily, settings=restrict).accept,
        decide(state=unpaid_daily, settings=restrict).reason,
    ) == (True, "expired_restricted")
    # a postpaid invoice overdue past its grace: expired, even with paid-up time left on the clock
    monthly = PackageState(id=2, billing_type="monthly", rate_limit="10M/10M")
    overdue = subscriber(status="suspended", unpaid=True, package=monthly, expires_at=None, wallet_balance=0)
    assert decide(state=overdue).reason == "expired"
    assert decide(state=overdue, settings=restrict).accept
    # suspended by an operator (or because an operator above could not pay): a plain suspension
    assert decide(state=subscriber(status="suspended"), settings=restrict).reason == "suspended"


# --- names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Alice", "alice"),
        (" BOB ", "bob"),
        ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"),
        ("aabbccddeeff", "aa:bb:cc:dd:ee:ff"),
    ],
)
def test_usernames_are_one_case_insensitive_namespace(raw, name):
    assert canonical_username(raw) == name


def test_canonical_mac_refuses_non_macs():
    assert canonical_mac("not-a-mac") is None
    assert canonical_mac("aa:bb:cc:dd:ee") is None


# --- stale-session takeover (issue 15) ---


def test_takeover_reason_same_nas_and_device_or_a_silent_nas():
    from radiusd.auth.policy import TAKEOVER_SILENT_INTERIMS, OpenSession, takeover_reason

    interval = 300
    fresh = NOW - timedelta(seconds=interval)
    mac = "aa:bb:cc:00:00:01"
    assert takeover_reason(OpenSession(1, mac, fresh), 1, mac, NOW, interval) == "same_station"
    assert takeover_reason(OpenSession(2, mac, fresh), 1, mac, NOW, interval) is None  # another NAS
    assert takeover_reason(OpenSession(1, "aa:bb:cc:00:00:02", fresh), 1, mac, NOW, interval) is None
    assert takeover_reason(OpenSession(1, None, fresh), 1, None, NOW, interval) is None  # nothing to match
    silent = NOW - timedelta(seconds=TAKEOVER_SILENT_INTERIMS * interval + 1)
    assert takeover_reason(OpenSession(2, "other", silent), 1, mac, NOW, interval) == "nas_silent"
    just_in_time = NOW - timedelta(seconds=TAKEOVER_SILENT_INTERIMS * interval)
    assert takeover_reason(OpenSession(2, "other", just_in_time), 1, mac, NOW, interval) is None


def test_over_quota_action_is_one_rule_for_logins_and_accounting():
    from radiusd.auth.policy import over_quota_action

    assert over_quota_action(99, 100, "1M/1M") is None and over_quota_action(10**15, None, None) is None
    assert over_quota_action(100, 100, "1M/1M") == ("coa", "1M/1M")
    assert over_quota_action(101, 100, None) == ("disconnect", None)
