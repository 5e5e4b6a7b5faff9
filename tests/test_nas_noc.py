"""The NOC's tools: ``radbill nas test`` (which check failed, and the likely cause)
and ``radbill customer disconnect`` (through the outbox, with the outcome),
against the fake NAS and the fake router; the commands run as processes."""

import os
import socket

import pytest
import pytest_twisted
from pyrad.packet import CoARequest, DisconnectRequest
from twisted.internet import reactor, utils

from billingd import operators
from nas.probe import PROBE_USER, check_router
from nas.registry import add_nas, get_nas, update_nas
from schema.settings import NasSettings
from tests.conftest import RADBILL, REPOSITORY, free_port
from tests.fakes.nas import SECRET, SILENT
from tests.test_enforcement_e2e import online
from tests.test_nas_worker import add_customer

pytestmark = pytest.mark.daemon

QUICK = NasSettings(coa_timeout=0.3, coa_retries=1, api_timeout=2.0)


def router(engine, fake_nas_port: int, secret: bytes = SECRET, **api):
    with engine.begin() as connection:
        add_nas(connection, "core1", "127.0.0.1", secret.decode(), coa_port=fake_nas_port, **api)
        return get_nas(connection, "core1")


def api_of(fake_router, **override) -> dict:
    return (
        dict(
            api_host="127.0.0.1",
            api_port=fake_router.port,
            api_user=fake_router.user,
            api_password=fake_router.password,
        )
        | override
    )


def verdicts(checks) -> list[tuple[bool, str]]:
    return [(check.ok, check.detail) for check in checks]


@pytest_twisted.ensureDeferred
async def test_a_healthy_router_answers_the_probe_without_any_change(engine, fake_nas, fake_router):
    nas = router(engine, fake_nas.port_number, **api_of(fake_router))
    fake_nas.default = ("nak", 503)
    coa, api = await check_router(reactor, nas, QUICK)
    assert coa.ok and "CoA-NAK Session-Context-Not-Found (503)" in coa.detail
    assert api.ok and api.what == f"API 127.0.0.1:{fake_router.port}"
    (probe,) = fake_nas.received
    assert probe.packet.code == CoARequest and probe.authenticator_ok and probe.message_authenticator_ok
    assert probe.attributes["User-Name"] == [PROBE_USER]
    assert fake_router.menus["/ip/firewall/address-list"] == [], "the API check only reads"


@pytest_twisted.ensureDeferred
async def test_each_failure_names_its_likely_cause(engine, fake_nas, fake_router, tls_router):
    closed_udp = free_port(socket.SOCK_DGRAM)
    nas = router(engine, closed_udp, **api_of(fake_router, api_port=free_port()))
    coa, api = await check_router(reactor, nas, QUICK)
    assert (
        not coa.ok
        and "nothing listens on UDP" in coa.detail
        and "/radius incoming set accept=yes" in coa.detail
    )
    assert not api.ok and "the api service is disabled" in api.detail

    router_with(engine, coa_port=fake_nas.port_number, secret="not-the-secret")
    coa, api = await check_router(reactor, get(engine), QUICK)
    assert not coa.ok and "the secret is probably wrong" in coa.detail
    assert [seen.answered for seen in fake_nas.received] == ["dropped", "dropped"], (
        "the NAS drops what it cannot verify"
    )

    fake_nas.reply_secret = b"another-secret"
    router_with(engine, secret=SECRET.decode(), api_port=fake_router.port, api_password="nope")
    coa, api = await check_router(reactor, get(engine), QUICK)
    assert not coa.ok and "its reply does not verify: the secret differs" in coa.detail
    assert not api.ok and "login refused" in api.detail

    router_with(engine, api_port=tls_router.port, api_tls=True, api_password=tls_router.password)
    coa, api = await check_router(reactor, get(engine), QUICK)
    assert not api.ok and "TLS: the router's certificate does not verify" in api.detail
    assert "--api-tls-fingerprint" in api.detail
    router_with(engine, api_tls_fingerprint=tls_router.fingerprint)
    coa, api = await check_router(reactor, get(engine), QUICK)
    assert api.ok and api.what.endswith("over TLS")


def router_with(engine, **changes) -> None:
    with engine.begin() as connection:
        update_nas(connection, "core1", **changes)


def get(engine):
    with engine.connect() as connection:
        return get_nas(connection, "core1")


def config(tmp_path, database_url: str) -> dict:
    path = tmp_path / "radbill.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        "[nas]\ncoa_timeout = 0.3\ncoa_retries = 1\napi_timeout = 2\nstop_deadline = 0.3\nlease = 10\n"
    )
    env = {**os.environ, "RADBILL_CONFIG": str(path)}
    env.pop("RADBILL_DATABASE_URL", None)
    return env


async def radbill(env: dict, *args: str) -> tuple[int, str]:
    out, err, code = await utils.getProcessOutputAndValue(
        RADBILL[0], RADBILL[1:] + list(args), env=env, path=str(REPOSITORY)
    )
    return code, (out + err).decode()


@pytest.mark.interop  # radbill as a process
@pytest_twisted.ensureDeferred
async def test_nas_test_says_which_check_failed_and_exits_non_zero(
    engine, database_url, fake_nas, fake_router, tmp_path
):
    router(engine, fake_nas.port_number, **api_of(fake_router, api_password="nope"))
    with engine.begin() as connection:
        operators.add_operator(connection, None, "admin", "admin")  # who runs `radbill nas test`
    fake_nas.default = ("nak", 503)
    code, output = await radbill(config(tmp_path, database_url), "nas", "test", "core1")
    assert code == 1, output
    lines = output.splitlines()
    assert lines[0].startswith("CoA 127.0.0.1:") and ": ok: CoA-NAK Session-Context-Not-Found" in lines[0]
    assert lines[1].startswith(f"API 127.0.0.1:{fake_router.port}: FAILED: login refused")
    assert lines[-1] == "radbill: error: NAS core1: API 127.0.0.1:%d failed" % fake_router.port


@pytest.mark.interop  # radbill as a process
@pytest_twisted.ensureDeferred
async def test_customer_disconnect_goes_through_the_outbox_and_reports_the_outcome(
    engine, database_url, fake_nas, fake_router, tmp_path
):
    router(engine, fake_nas.port_number, **api_of(fake_router))
    with engine.begin() as connection:
        add_customer(connection, "alice")
    online(engine, "alice", "81a0000a")
    fake_router.add("/ppp/active", name="alice", service="pppoe", address="100.64.0.7")
    env = config(tmp_path, database_url)
    code, output = await radbill(env, "customer", "disconnect", "alice")
    assert (code, output) == (0, "disconnected alice: enforcement job 1 done\n")
    (seen,) = fake_nas.received
    assert seen.packet.code == DisconnectRequest and seen.attributes["Acct-Session-Id"] == ["81a0000a"]
    assert fake_router.menus["/ppp/active"] == [], "no Stop came: the API check removed it"
    code, output = await radbill(env, "online")
    assert code == 0 and "81a0000a" not in output, "the API's word closed the session"

    online(engine, "alice", "81a0000b")
    router_with(engine, api_user="")  # RADIUS only, and the NAS does not answer
    fake_nas.default = SILENT
    code, output = await radbill(env, "customer", "disconnect", "alice", "--wait", "5")
    assert code == 1
    assert output == (
        "radbill: error: alice is not disconnected yet: alice session 81a0000b on 127.0.0.1: Disconnect-Request "
        f"to 127.0.0.1:{fake_nas.port_number}: no answer after 2 transmissions 0.3s apart; "
        "billingd goes on with enforcement job 2 (radbill enforcement list)\n"
    )
