"""`radbill api` as users run it: a real uvicorn process on a free port, with its own config."""

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import RADBILL, REPOSITORY, free_port


class ApiServer:
    """Starts `radbill api` against a database; ``client`` talks to it over real HTTP."""

    def __init__(self, database_url: str, directory: Path, **api_settings):
        self.port, self.metrics_port = free_port(), free_port()
        self.directory = directory
        settings = {
            "bind": "127.0.0.1",
            "port": self.port,
            "metrics_port": self.metrics_port,
            "state_dir": str(directory / "state"),
            **api_settings,
        }
        lines = ["[billingd]", 'timezone = "Asia/Dhaka"', "[api]"]
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
        self.config = directory / "radbill.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {**os.environ, "RADBILL_CONFIG": str(self.config), "RADBILL_DATABASE_URL": database_url}
        self.log = directory / "api.log"
        self.process: subprocess.Popen | None = None
        scheme = "https" if api_settings.get("tls_certificate") else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> "ApiServer":
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                RADBILL + ["api"], env=self.env, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"radbill api exited:\n{self.log.read_text()}")
            try:
                httpx.get(f"{self.base}/api/v1/openapi.json", timeout=1, verify=False)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"radbill api did not start:\n{self.log.read_text()}")
        # A test certificate is self-signed: the tests check the TLS, not the certificate's chain.
        self.client = httpx.Client(base_url=self.base, timeout=10, verify=False)
        return self

    def __exit__(self, *_) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def key_mode(self) -> int:
        return stat.S_IMODE((self.directory / "state" / "api-signing.key").stat().st_mode)

    def login(self, who: str, password: str) -> dict:
        if who.startswith("subscriber:"):
            body, path = (
                {"username": who.split(":", 1)[1], "password": password},
                "/api/v1/auth/subscriber/token",
            )
        else:
            body, path = {"login": who, "password": password}, "/api/v1/auth/token"
        answer = self.client.post(path, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()
