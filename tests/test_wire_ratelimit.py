"""Mikrotik-Rate-Limit parsing, validation and the canonical string."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.ratelimit import RateLimit


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10M/10M", "10M/10M"),
        ("512k", "512k/512k"),
        ("1500k/2M", "1500k/2M"),
        ("1024000", "1024k/1024k"),
        ("1234/5678", "1234/5678"),
        ("10M/10M 20M/20M 8M/8M 16/16 8 1M/1M", "10M/10M 20M/20M 8M/8M 16/16 8 1M/1M"),
        ("2M/4M 4M/8M 1M/2M 10/20", "2M/4M 4M/8M 1M/2M 10/20"),
        ("2M/2M 0/0 0/0 0/0 8 512k/512k", "2M/2M 0/0 0/0 0/0 8 512k/512k"),
        ("2M/2M 0/0 0/0 0/0 3", "2M/2M 0/0 0/0 0/0 3"),
        ("2M/2M 0/0 0/0 0/0 8", "2M/2M"),
        ("2M/2M 4M 2M 30 8 0/0", "2M/2M 4M/4M 2M/2M 30/30"),
        ("1000k/1000000", "1M/1M"),
    ],
)
def test_parse_gives_canonical_string(text, canonical):
    assert RateLimit.parse(text).to_mikrotik() == canonical


def test_parse_reads_every_field_in_bits_per_second():
    limit = RateLimit.parse("10M/5M 20M/10M 8M/4M 16/12 4 1M/512k")
    assert limit == RateLimit(
        rx_rate=10_000_000,
        tx_rate=5_000_000,
        burst_rx=20_000_000,
        burst_tx=10_000_000,
        threshold_rx=8_000_000,
        threshold_tx=4_000_000,
        burst_time_rx=16,
        burst_time_tx=12,
        priority=4,
        min_rx=1_000_000,
        min_tx=512_000,
    )


def test_single_rate_applies_to_both_directions():
    limit = RateLimit.parse("512k")
    assert (limit.rx_rate, limit.tx_rate) == (512_000, 512_000)
    assert limit.burst_rx is None and limit.min_rx is None and limit.priority == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "1 to 6 fields"),
        ("1M 2M 1M 10 8 1M 1M", "1 to 6 fields"),
        ("10x", "not a rate"),
        ("10M/", "not a rate"),
        ("-1M", "not a rate"),
        ("0/1M", "rx rate must be positive"),
        ("1M/0", "tx rate must be positive"),
        ("10M 20M", "burst needs its rate, threshold and burst time"),
        ("10M 20M 8M", "burst needs its rate, threshold and burst time"),
        ("10M 5M 8M 16", "burst rate 5000000 must exceed the rate"),
        ("10M 10M 8M 16", "must exceed the rate"),
        ("10M 20M 11M 16", "threshold 11000000 must be 1..10000000"),
        ("10M 20M 0 16", "threshold 0 must be"),
        ("10M 20M 8M 0", "burst time must be positive"),
        ("10M 20M 8M 1.5", "whole seconds"),
        ("10M 20M/0 8M/0 16/0", "tx burst rate 0 must exceed"),
        ("10M 20M 8M 16 0", "priority must be 1..8"),
        ("10M 20M 8M 16 9", "priority must be 1..8"),
        ("10M 20M 8M 16 high", "not a priority"),
        ("10M 0/0 0/0 0/0 8 11M", "minimum rate 11000000 must be 1..10000000"),
        ("10M/1M 0/0 0/0 0/0 8 1M/2M", "tx minimum rate 2000000"),
    ],
)
def test_invalid_strings_are_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message) as raised:
        RateLimit.parse(text)
    assert repr(text) in str(raised.value)


def test_partial_burst_is_refused():
    with pytest.raises(ValueError, match="burst needs a threshold"):
        RateLimit(1_000_000, 1_000_000, burst_rx=2_000_000, burst_tx=2_000_000)
    with pytest.raises(ValueError, match="need a burst rate"):
        RateLimit(1_000_000, 1_000_000, threshold_rx=500_000)


def test_burst_and_minimum_must_cover_both_directions():
    with pytest.raises(ValueError, match="both rx and tx"):
        RateLimit(1_000_000, 1_000_000, burst_rx=2_000_000, threshold_rx=1, burst_time_rx=1)
    with pytest.raises(ValueError, match="both rx and tx"):
        RateLimit(1_000_000, 1_000_000, min_rx=1)


_UNIT = st.sampled_from([1, 1_000, 1_000_000])


@st.composite
def _bits(draw, low, high):
    unit = draw(_UNIT)
    lowest = -(-low // unit)
    if lowest * unit <= high:
        return draw(st.integers(lowest, high // unit)) * unit
    return draw(st.integers(low, high))


@st.composite
def rate_limits(draw):
    rx = draw(_bits(1, 10**10))
    tx = draw(_bits(1, 10**10))
    fields = {"rx_rate": rx, "tx_rate": tx, "priority": draw(st.integers(1, 8))}
    if draw(st.booleans()):
        fields |= {
            "burst_rx": draw(_bits(rx + 1, 4 * rx + 1)),
            "burst_tx": draw(_bits(tx + 1, 4 * tx + 1)),
            "threshold_rx": draw(_bits(1, rx)),
            "threshold_tx": draw(_bits(1, tx)),
            "burst_time_rx": draw(st.integers(1, 3600)),
            "burst_time_tx": draw(st.integers(1, 3600)),
        }
    if draw(st.booleans()):
        fields |= {"min_rx": draw(_bits(1, rx)), "min_tx": draw(_bits(1, tx))}
    return RateLimit(**fields)


@given(rate_limits())
def test_parse_inverts_to_mikrotik(limit):
    assert RateLimit.parse(limit.to_mikrotik()) == limit


@given(rate_limits())
def test_canonical_string_is_stable(limit):
    text = limit.to_mikrotik()
    assert RateLimit.parse(text).to_mikrotik() == text
