"""radiusd's configuration keys: defaults, checks, and the expired-subscriber rate."""

import pytest

from cli.config import ConfigError, settings_from_mapping


def test_defaults():
    settings = settings_from_mapping({}).radiusd
    assert (settings.interim_interval, settings.expired_policy, settings.workers) == (300, "reject", 1)
    assert settings.receive_buffer == 4 * 1024 * 1024
    assert settings.expired_rate == ""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"expired_policy": "allow"}, '\'radiusd.expired_policy\' must be "reject" or "restrict"'),
        ({"interim_interval": 5}, "'radiusd.interim_interval' must be 10..86400 seconds"),
        ({"workers": 0}, "'radiusd.workers' must be 1..64"),
        ({"receive_buffer": 1024}, "'radiusd.receive_buffer' must be at least 65536 bytes"),
        ({"workers": "2"}, "'radiusd.workers' must be an integer"),
    ],
)
def test_bad_values_are_refused_by_name(values, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        settings_from_mapping({"radiusd": values})


def test_expired_rate_is_validated_and_made_canonical():
    settings = settings_from_mapping(
        {"radiusd": {"expired_policy": "restrict", "expired_rate": "512000/256k"}}
    )
    assert settings.radiusd.expired_rate == "512k/256k"
    with pytest.raises(ConfigError, match=r"'radiusd\.expired_rate' rate limit 'fast'"):
        settings_from_mapping({"radiusd": {"expired_rate": "fast"}})
