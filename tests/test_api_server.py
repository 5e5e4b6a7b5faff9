"""The API over real HTTP: uvicorn on a free port, SQLite and PostgreSQL."""

import httpx
import pytest

from tests.api_server import ApiServer
from tests.api_world import PASSWORD, build_isp

pytestmark = pytest.mark.interop


def test_login_refresh_and_logout_over_http(engine, database_url, tmp_path):
    build_isp(engine)
    with ApiServer(database_url, tmp_path) as server:
        assert server.key_mode() == 0o600
        tokens = server.login("reseller1", PASSWORD)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = server.client.get("/api/v1/auth/me", headers=headers)
        assert me.json()["login"] == "reseller1"
        assert me.headers["x-frame-options"] == "DENY"
        assert "server" not in me.headers
        fresh = server.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert fresh.status_code == 200
        new = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
        assert server.client.post("/api/v1/auth/logout", headers=new).status_code == 204
        assert server.client.get("/api/v1/auth/me", headers=new).status_code == 401
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
        assert 'radbill_api_logins_total{kind="operator",result="ok"} 1.0' in metrics
        assert 'radbill_api_requests_total{method="GET",route="/auth/me",status="200"} 1.0' in metrics


def test_throttling_over_http_locks_the_address_too(engine, database_url, tmp_path):
    build_isp(engine)
    with ApiServer(database_url, tmp_path, login_failures=3, address_failures=5) as server:
        for login in ("reseller1", "reseller1", "reseller1"):
            answer = server.client.post("/api/v1/auth/token", json={"login": login, "password": "wrong one!"})
            assert answer.status_code == 401
        assert (
            server.client.post(
                "/api/v1/auth/token", json={"login": "reseller1", "password": PASSWORD}
            ).status_code
            == 429
        )
        # Other logins still work from this address until it has failed five times in all.
        server.login("reseller2", PASSWORD)
        for _ in range(2):
            server.client.post("/api/v1/auth/token", json={"login": "sub1", "password": "wrong one!"})
        refused = server.client.post("/api/v1/auth/token", json={"login": "reseller2", "password": PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


def test_a_too_large_body_is_refused(engine, database_url, tmp_path):
    build_isp(engine)
    with ApiServer(database_url, tmp_path) as server:
        answer = server.client.post(
            "/api/v1/auth/token",
            content=b"{" + b" " * 70_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413


def test_a_reseller_and_a_subscriber_over_http(engine, database_url, tmp_path):
    build_isp(engine)
    with ApiServer(database_url, tmp_path) as server:
        reseller = {"Authorization": f"Bearer {server.login('reseller1', PASSWORD)['access_token']}"}
        page = server.client.get("/api/v1/customers", params={"search": "a"}, headers=reseller).json()
        assert [c["username"] for c in page["items"]] == ["alice", "carol"]
        retry = {**reseller, "Idempotency-Key": "card-batch-1"}
        cards = server.client.post("/api/v1/cards/batches", json={"count": 1, "value": 20000}, headers=retry)
        assert cards.status_code == 201
        issued = cards.json()["cards"]
        assert len(issued) == 1 and len(issued[0]["pin"]) == 16
        replayed = server.client.post(
            "/api/v1/cards/batches", json={"count": 1, "value": 20000}, headers=retry
        )
        # The retry is the same batch, but its PIN was shown once: it is not kept, not even for retries.
        assert replayed.json() == {**cards.json(), "cards": [{**issued[0], "pin": None}]}
        listed = server.client.get("/api/v1/cards", headers=reseller).json()
        assert [card["serial"] for card in listed] == [issued[0]["serial"]] and "pin" not in listed[0]
        subscriber = {"Authorization": f"Bearer {server.login('subscriber:alice', 'pw')['access_token']}"}
        redeemed = server.client.post("/api/v1/me/redeem", json={"pin": issued[0]["pin"]}, headers=subscriber)
        assert redeemed.status_code == 200 and redeemed.json()["wallet_balance"] == 20000
        renewed = server.client.post("/api/v1/customers/alice/renew", json={"cash": True}, headers=reseller)
        assert renewed.status_code == 200 and renewed.json()["expires_at"] > redeemed.json()["expires_at"]


def test_https_by_configuration(engine, database_url, tmp_path):
    import subprocess

    build_isp(engine)
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    with ApiServer(database_url, tmp_path, tls_certificate=str(certificate), tls_key=str(key)) as server:
        assert server.base.startswith("https://")
        tokens = server.login("reseller1", PASSWORD)
        me = server.client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.json()["login"] == "reseller1"
        assert me.headers["strict-transport-security"] == "max-age=31536000"
        with pytest.raises(httpx.TransportError):
            httpx.get(server.base.replace("https://", "http://") + "/api/v1/openapi.json", timeout=2)


def test_under_systemd_it_notifies_pings_reloads_and_stops(engine, database_url, tmp_path):
    import os
    import signal
    import subprocess

    from tests.test_systemd import NotifySocket

    build_isp(engine)
    server = ApiServer(database_url, tmp_path, login_failures=3)
    notify = NotifySocket(tmp_path)
    env = {**server.env, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    process = subprocess.Popen(
        server_command(), env=env, cwd=server_cwd(), stdout=server.log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        ready = notify.wait_for("READY", "1")
        assert ready["STATUS"].startswith("serving on 127.0.0.1:")
        assert httpx.get(f"{server.base}/api/v1/openapi.json").status_code == 200
        notify.wait_for("WATCHDOG", "1")
        server.config.write_text(
            server.config.read_text()
            .replace("login_failures = 3", "login_failures = 7")
            .replace(f"port = {server.port}", f"port = {server.port + 1}")
        )
        os.kill(process.pid, signal.SIGHUP)
        reloaded = notify.wait_for("READY", "1")
        assert reloaded["STATUS"] == "reloaded; a restart is needed for api.port"
        process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        assert process.wait(20) in (0, -signal.SIGTERM)  # systemd counts both as a clean stop
    finally:
        if process.poll() is None:
            process.kill()
        notify.close()


def server_command():
    from tests.conftest import RADBILL

    return RADBILL + ["api"]


def server_cwd():
    from tests.conftest import REPOSITORY

    return REPOSITORY
