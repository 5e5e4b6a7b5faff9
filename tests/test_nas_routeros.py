"""The RouterOS adapter, driven through the real librouteros client against a fake router."""

import ssl

import pytest
from librouteros.exceptions import LibRouterosError, TrapError

from nas.registry import Nas
from nas.routeros import ApiEndpoint, FingerprintMismatch, RouterApi, queue_properties

pytestmark = pytest.mark.daemon


def endpoint(router, password="api-s3cret") -> ApiEndpoint:
    return ApiEndpoint("127.0.0.1", router.port, "radbill", password, tls=False)


def test_remove_active_drops_ppp_and_hotspot_sessions_of_that_user_only(fake_router):
    fake_router.add(
        "/ppp/active", name="alice", service="pppoe", address="100.64.0.7", caller_id="AA:BB:CC:00:00:01"
    )
    fake_router.add("/ppp/active", name="bob", service="pppoe", address="100.64.0.8")
    fake_router.add("/ip/hotspot/active", user="alice", address="10.5.0.9")
    with RouterApi(endpoint(fake_router)) as api:
        assert api.remove_active("alice") == 2
        assert api.remove_active("alice") == 0
    assert [row["name"] for row in fake_router.menus["/ppp/active"]] == ["bob"]
    assert fake_router.menus["/ip/hotspot/active"] == []
    assert fake_router.commands[0] == ["/login", "=name=radbill", "=password=api-s3cret"]
    assert ["/ppp/active/print", "=.proplist=.id", "?=name=alice"] in fake_router.commands
    assert ["/ppp/active/remove", "=.id=*1"] in fake_router.commands


def test_wrong_password_is_a_trap(fake_router):
    with pytest.raises(TrapError, match="invalid user name or password"):
        RouterApi(endpoint(fake_router, password="nope")).__enter__()


def test_set_queue_rate_changes_the_users_dynamic_queue(fake_router):
    fake_router.add(
        "/queue/simple",
        name="<pppoe-alice>",
        target="<pppoe-alice>",
        max_limit="10000000/10000000",
        dynamic="true",
    )
    fake_router.add(
        "/queue/simple",
        name="<pppoe-bob>",
        target="<pppoe-bob>",
        max_limit="10000000/10000000",
        dynamic="true",
    )
    with RouterApi(endpoint(fake_router)) as api:
        assert api.set_queue_rate("alice", "1M/2M 2M/4M 768k/1500k 8/8 5 512k/1M") == 1
    alice, bob = fake_router.menus["/queue/simple"]
    assert {key: alice[key] for key in QUEUE_KEYS} == {
        "max-limit": "1M/2M",
        "burst-limit": "2M/4M",
        "burst-threshold": "768k/1500k",
        "burst-time": "8/8",
        "priority": "5/5",
        "limit-at": "512k/1M",
    }
    assert bob["max-limit"] == "10000000/10000000"


QUEUE_KEYS = ("max-limit", "burst-limit", "burst-threshold", "burst-time", "priority", "limit-at")


def test_queue_properties_skip_unset_groups():
    assert queue_properties("10M") == {"max-limit": "10M/10M"}
    assert queue_properties("1M/2M 0/0 0/0 0/0 3") == {"max-limit": "1M/2M", "priority": "3/3"}


def test_block_and_unblock_a_static_address(fake_router):
    with RouterApi(endpoint(fake_router)) as api:
        api.block_address("203.0.113.9", "radbill-disabled", "customer 42")
        api.block_address("203.0.113.9", "radbill-disabled", "customer 42")
        assert [(r["list"], r["address"]) for r in fake_router.menus["/ip/firewall/address-list"]] == [
            ("radbill-disabled", "203.0.113.9")
        ]
        assert api.unblock_address("203.0.113.9", "radbill-disabled") == 1
    assert fake_router.menus["/ip/firewall/address-list"] == []


def test_a_static_customers_queue_is_disabled_and_enabled_by_its_target(fake_router):
    fake_router.add("/queue/simple", name="shop", target="203.0.113.9/32", disabled="no")
    fake_router.add("/queue/simple", name="other", target="203.0.113.10/32", disabled="no")
    with RouterApi(endpoint(fake_router)) as api:
        assert api.set_static_queue_disabled("203.0.113.9", True) == 1
        assert [row["disabled"] for row in fake_router.menus["/queue/simple"]] == ["yes", "no"]
        assert api.set_static_queue_disabled("203.0.113.9", False) == 1
    assert [row["disabled"] for row in fake_router.menus["/queue/simple"]] == ["no", "no"]


def test_endpoint_of_a_nas_defaults_to_its_ip_and_the_api_ports():
    fields = dict(
        id=1,
        name="core",
        ip_address="10.0.0.1",
        secret="s",
        coa_port=3799,
        require_message_authenticator="auto",
        message_authenticator_seen=False,
        api_host=None,
        api_port=None,
        api_user="radbill",
        api_password="pw",
        api_tls=False,
        description="",
    )
    assert ApiEndpoint.of(Nas(**fields)) == ApiEndpoint("10.0.0.1", 8728, "radbill", "pw", False)
    assert ApiEndpoint.of(Nas(**{**fields, "api_tls": True})).port == 8729
    assert ApiEndpoint.of(Nas(**{**fields, "api_user": None})) is None


def tls_endpoint(router, **check) -> ApiEndpoint:
    return ApiEndpoint("127.0.0.1", router.port, "radbill", "api-s3cret", tls=True, **check)


@pytest.mark.interop  # openssl makes the router's certificate
@pytest.mark.parametrize(
    "check",
    [
        {"ca_file": "certificate"},
        {"fingerprint": "fingerprint"},
        {"verify": False},
    ],
    ids=["ca-file", "fingerprint", "opted-out"],
)
def test_api_over_tls_with_the_certificate_checked_or_an_explicit_opt_out(tls_router, check):
    check = {
        key: getattr(tls_router, value) if isinstance(value, str) else value for key, value in check.items()
    }
    tls_router.add("/ppp/active", name="alice")
    with RouterApi(tls_endpoint(tls_router, **check)) as api:
        assert api.remove_active("alice") == 1


@pytest.mark.interop  # openssl makes the router's certificate
def test_api_over_tls_refuses_a_certificate_it_cannot_check(tls_router):
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        RouterApi(tls_endpoint(tls_router), timeout=2).__enter__()  # by default: the system's CAs
    with pytest.raises(FingerprintMismatch, match="not the pinned"):
        RouterApi(tls_endpoint(tls_router, fingerprint="0" * 64), timeout=2).__enter__()
    assert not any(command[0] == "/login" for command in tls_router.commands), "no password was sent"


@pytest.mark.interop  # openssl makes the router's certificate
def test_a_plain_client_cannot_talk_to_api_ssl(tls_router):
    with pytest.raises((LibRouterosError, OSError)):
        RouterApi(
            ApiEndpoint("127.0.0.1", tls_router.port, "radbill", "api-s3cret", tls=False), timeout=1
        ).__enter__()
