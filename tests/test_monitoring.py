"""The Grafana dashboard and the Prometheus alert rules: valid, and made of metrics the daemons
(radiusd, billingd with its router worker, radbill api) really export."""

import json
import os
import re
import shutil
import subprocess
import time
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api_server import ApiServer
from tests.conftest import RADBILL, REPOSITORY, free_port
from tests.radius import RadiusdProcess, write_config

pytestmark = pytest.mark.interop

RULES = REPOSITORY / "systemd" / "prometheus-alerts.yml"
DASHBOARD = REPOSITORY / "systemd" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def used_metrics() -> set[str]:
    expressions = [RULES.read_text()]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        expressions += [target["expr"] for target in panel["targets"]]
    return set(re.findall(r"\b(radbill_[a-z0-9_]+)", "\n".join(expressions)))


def exported(port: int) -> set[str]:
    """Every series name /metrics offers, including those of labelled metrics nothing has counted yet."""
    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_alert_rules_pass_promtool():
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found (apt-get install prometheus)")
        pytest.skip("promtool not found")
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_the_dashboard_is_grafana_json_with_a_query_in_every_panel():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "radbill" and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_every_metric_the_dashboard_and_rules_use_is_exported_by_the_running_daemons(cli, tmp_path):
    cli("demo")
    database_url = cli.env["RADBILL_DATABASE_URL"]
    config, values = write_config(tmp_path, database_url)
    billingd_port = free_port()
    config.write_text(config.read_text() + f"[billingd]\nmetrics_port = {billingd_port}\n")
    env = {**os.environ, "RADBILL_CONFIG": str(config)}
    env.pop("RADBILL_DATABASE_URL", None)
    billingd = subprocess.Popen(
        RADBILL + ["billingd"], env=env, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    (tmp_path / "api").mkdir()
    try:
        with (
            RadiusdProcess(config, tmp_path / "radiusd.log"),
            ApiServer(database_url, tmp_path / "api") as api,
        ):
            available = exported(values["metrics_port"]) | exported(api.metrics_port)
            deadline = time.monotonic() + 30
            while "radbill_billingd_sessions_open" not in available:  # billingd's first look at the database
                assert time.monotonic() < deadline, "billingd did not publish its health"
                time.sleep(0.2)
                try:
                    available |= exported(billingd_port)
                except OSError:
                    continue
    finally:
        billingd.terminate()
        billingd.wait(15)
    used = used_metrics()
    missing = sorted(used - available)
    assert not missing, f"used by the dashboard or the rules but exported by no daemon: {missing}"
    assert len(used) > 30
    for daemon in ("radiusd", "billingd", "nas", "api"):
        assert any(name.startswith(f"radbill_{daemon}_") for name in used), f"nothing of {daemon} is watched"
    assert {"radbill_api_requests_total", "radbill_api_logins_total"} <= used
