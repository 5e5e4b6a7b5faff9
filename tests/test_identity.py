"""schema.identity: one spelling per address, user name and MAC."""

import pytest

from schema.errors import RadbillError
from schema.identity import canonical_ip, canonical_username


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        (" 10.0.0.1 ", "10.0.0.1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),  # a dual-stack socket's view of an IPv4 router
    ],
)
def test_one_spelling_per_address(written, canonical):
    assert canonical_ip(written) == canonical


def test_a_bad_address_is_one_clear_error():
    with pytest.raises(RadbillError, match="invalid IP address 'router'"):
        canonical_ip("router")


def test_user_names_and_mac_names():
    assert canonical_username(" Alice ") == "alice"
    assert canonical_username("AA-BB-CC-DD-EE-FF") == "aa:bb:cc:dd:ee:ff"
