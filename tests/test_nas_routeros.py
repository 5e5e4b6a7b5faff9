"""The RouterOS adapter, driven through the real librouteros client against a fake router."""

import ssl
import subprocess

import pytest
from librouteros.exceptions import LibRouterosError, TrapError

from nas.registry import Nas
from nas.routeros import ApiEndpoint, RouterApi, queue_properties
from tests.fakes.routeros import FakeRouter

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


@pytest.mark.interop
def test_api_over_tls_with_a_self_signed_certificate(tmp_path):
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=router",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate, key)
    router = FakeRouter(tls=server_context)
    port = router.start()
    try:
        router.add("/ppp/active", name="alice")
        with RouterApi(ApiEndpoint("127.0.0.1", port, "radbill", "api-s3cret", tls=True)) as api:
            assert api.remove_active("alice") == 1
        with pytest.raises((LibRouterosError, OSError)):  # a plain client cannot talk to api-ssl
            RouterApi(
                ApiEndpoint("127.0.0.1", port, "radbill", "api-s3cret", tls=False), timeout=1
            ).__enter__()
    finally:
        router.stop()
