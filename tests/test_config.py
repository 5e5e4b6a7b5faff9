"""Configuration: where it is found, what overrides it, and how mistakes are reported."""

import subprocess

import pytest

from cli.config import ConfigError, load_settings, settings_from_mapping
from tests.conftest import RADBILL


def test_defaults_run_the_demo_locally(monkeypatch, tmp_path):
    monkeypatch.delenv("RADBILL_CONFIG", raising=False)
    monkeypatch.delenv("RADBILL_DATABASE_URL", raising=False)
    monkeypatch.setattr("cli.config.SYSTEM_CONFIG", tmp_path / "absent.toml")
    settings = load_settings()
    assert settings.database.url.startswith("sqlite:///")
    assert (settings.radiusd.bind, settings.radiusd.auth_port, settings.radiusd.acct_port) == (
        "127.0.0.1",
        1812,
        1813,
    )
    assert settings.billingd.run_at == "00:05"


def test_precedence_explicit_then_environment_then_system(monkeypatch, tmp_path):
    system, env, explicit = (tmp_path / name for name in ("system.toml", "env.toml", "explicit.toml"))
    for path, port in ((system, 1), (env, 2), (explicit, 3)):
        path.write_text(f"[radiusd]\nauth_port = {port}\n")
    monkeypatch.setattr("cli.config.SYSTEM_CONFIG", system)
    monkeypatch.delenv("RADBILL_CONFIG", raising=False)
    assert load_settings().radiusd.auth_port == 1
    monkeypatch.setenv("RADBILL_CONFIG", str(env))
    assert load_settings().radiusd.auth_port == 2
    assert load_settings(str(explicit)).radiusd.auth_port == 3


def test_database_url_environment_overrides_the_file(monkeypatch, tmp_path):
    path = tmp_path / "radbill.toml"
    path.write_text('[database]\nurl = "sqlite:///from-file.sqlite"\n')
    monkeypatch.setenv("RADBILL_DATABASE_URL", "postgresql://radbill@db/radbill")
    assert load_settings(str(path)).database.url == "postgresql://radbill@db/radbill"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"radius": {}}, "unknown configuration key 'radius'"),
        ({"radiusd": {"auth-port": 1812}}, "unknown configuration key 'radiusd.auth-port'"),
        ({"radiusd": {"auth_port": "1812"}}, "'radiusd.auth_port' must be an integer"),
        ({"radiusd": {"acct_port": True}}, "'radiusd.acct_port' must be an integer"),
        ({"radiusd": {"metrics_port": 70000}}, "'radiusd.metrics_port' must be a port number"),
        ({"database": "sqlite://"}, "'database' must be a table"),
        ({"billingd": {"timezone": "Asia/Nowhere"}}, "'billingd.timezone' unknown time zone"),
        ({"billingd": {"run_at": "24:61"}}, "'billingd.run_at' must be a time of day"),
    ],
)
def test_mistakes_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        settings_from_mapping(raw)


@pytest.mark.interop
def test_a_bad_file_is_one_line_on_stderr(tmp_path):
    path = tmp_path / "radbill.toml"
    path.write_text("[radiusd]\nauth_port = 'x'\n")
    result = subprocess.run(RADBILL + ["--config", str(path), "nas", "list"], capture_output=True, text=True)
    assert result.returncode == 1
    assert (
        result.stderr == "radbill: error: configuration key 'radiusd.auth_port' must be an integer, got 'x'\n"
    )
    assert result.stdout == ""


@pytest.mark.interop
def test_a_missing_file_is_reported(tmp_path):
    result = subprocess.run(
        RADBILL + ["--config", str(tmp_path / "nope.toml"), "db", "current"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "cannot read configuration" in result.stderr and "Traceback" not in result.stderr


def test_the_enforcement_workers_knobs_are_nas_keys():
    nas = settings_from_mapping(
        {"nas": {"poll_interval": 2, "coa_timeout": 1.5, "max_attempts": 4, "blocked_address_list": "unpaid"}}
    ).nas
    assert (nas.poll_interval, nas.coa_timeout, nas.max_attempts) == (2.0, 1.5, 4), (
        "10 is a number of seconds"
    )
    assert nas.blocked_address_list == "unpaid" and nas.lease == 120.0
    for raw, message in [
        ({"lease": 5}, "configuration key 'nas.lease' must be longer than one attempt"),
        ({"coa_retries": 11}, "configuration key 'nas.coa_retries' must be 0..10, got 11"),
        ({"poll_interval": 0}, "configuration key 'nas.poll_interval' must be more than 0 seconds"),
        ({"blocked_address_list": ""}, "configuration key 'nas.blocked_address_list' must not be empty"),
        ({"max_attempts": 1.5}, "configuration key 'nas.max_attempts' must be an integer"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            settings_from_mapping({"nas": raw})
