"""Mikrotik-Rate-Limit (vendor 14988, attribute 8): typed, validated, canonical.

RouterOS reads the attribute as::

    rx[/tx] [burst-rx[/tx] [threshold-rx[/tx] [burst-time-rx[/tx] [priority] [min-rx[/tx]]]]]

where rx is what the router receives from the client, i.e. the client's
upload, and tx its download. Rates are in bits per second with the units
``k`` (1000) and ``M`` (1000000); burst times are seconds; priority is 1
(highest) to 8 (the default). A ``0/0`` group means "not set", which is how
operators skip the burst to reach priority or min.

Packages store the typed fields; the string is built from them, so every
subscriber of a package gets the same canonical string and the CLI can show
it exactly.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

_UNITS = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}
# Bounds that keep every value a sane 64-bit integer in the database (and on the router).
MAX_RATE = 100 * 10**9  # bits per second
MAX_BURST_TIME = 86_400  # seconds
_RATE = re.compile(r"(\d+)([kKMG]?)")
_SECONDS = re.compile(r"\d+")
_DEFAULT_PRIORITY = 8


@dataclass(frozen=True)
class RateLimit:
    """A validated Mikrotik-Rate-Limit; rates in bit/s, burst times in seconds.

    The burst is all or nothing: burst rates, thresholds and burst times
    are given for both directions or not at all.
    """

    rx_rate: int
    tx_rate: int
    burst_rx: int | None = None
    burst_tx: int | None = None
    threshold_rx: int | None = None
    threshold_tx: int | None = None
    burst_time_rx: int | None = None
    burst_time_tx: int | None = None
    priority: int = _DEFAULT_PRIORITY
    min_rx: int | None = None
    min_tx: int | None = None

    def __post_init__(self) -> None:
        for direction in ("rx", "tx"):
            _validate_direction(
                direction,
                getattr(self, f"{direction}_rate"),
                getattr(self, f"burst_{direction}"),
                getattr(self, f"threshold_{direction}"),
                getattr(self, f"burst_time_{direction}"),
                getattr(self, f"min_{direction}"),
            )
        if (self.burst_rx is None) != (self.burst_tx is None):
            raise ValueError("a burst must be given for both rx and tx, or for neither")
        if (self.min_rx is None) != (self.min_tx is None):
            raise ValueError("a minimum rate must be given for both rx and tx, or for neither")
        if not 1 <= self.priority <= 8:
            raise ValueError(f"priority must be 1..8, got {self.priority}")

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """Read a Mikrotik-Rate-Limit string such as ``10M/10M 20M/20M 8M/8M 16/16 8 1M/1M``.

        A group without ``/`` applies to both directions. Raises ValueError
        naming the text and the problem.
        """
        fields = text.split()
        if not 1 <= len(fields) <= 6:
            raise ValueError(f"rate limit {text!r}: expected 1 to 6 fields, got {len(fields)}")
        try:
            rx_rate, tx_rate = _pair(fields[0], _rate)
            burst = [_pair(field, _rate) for field in fields[1:3]]
            burst_time = [_pair(field, _seconds) for field in fields[3:4]]
            priority = _priority(fields[4]) if len(fields) > 4 else _DEFAULT_PRIORITY
            minimum = [_pair(field, _rate) for field in fields[5:6]]
            burst_fields = burst + burst_time
            if len(burst_fields) not in (0, 3):
                raise ValueError("a burst needs its rate, threshold and burst time")
            if all(value == 0 for group in burst_fields for value in group):
                burst_fields = [(None, None)] * 3
            (burst_rx, burst_tx), (threshold_rx, threshold_tx), (time_rx, time_tx) = burst_fields
            min_rx, min_tx = minimum[0] if minimum and minimum[0] != (0, 0) else (None, None)
            return cls(
                rx_rate,
                tx_rate,
                burst_rx,
                burst_tx,
                threshold_rx,
                threshold_tx,
                time_rx,
                time_tx,
                priority,
                min_rx,
                min_tx,
            )
        except ValueError as error:
            raise ValueError(f"rate limit {text!r}: {error}") from None

    def to_mikrotik(self) -> str:
        """Return the canonical Mikrotik-Rate-Limit string.

        Every group is written as ``rx/tx`` in the largest unit that divides
        the rate exactly; trailing defaults are left out, and ``0/0``
        stands for an absent burst when priority or minimum follow.
        """
        groups = [_format_pair(self.rx_rate, self.tx_rate, _format_rate)]
        if self.burst_rx is not None:
            groups += [
                _format_pair(self.burst_rx, self.burst_tx, _format_rate),
                _format_pair(self.threshold_rx, self.threshold_tx, _format_rate),
                _format_pair(self.burst_time_rx, self.burst_time_tx, str),
            ]
        if self.priority != _DEFAULT_PRIORITY or self.min_rx is not None:
            if self.burst_rx is None:
                groups += ["0/0", "0/0", "0/0"]
            groups.append(str(self.priority))
        if self.min_rx is not None:
            groups.append(_format_pair(self.min_rx, self.min_tx, _format_rate))
        return " ".join(groups)


def _validate_direction(
    direction: str,
    rate: int,
    burst: int | None,
    threshold: int | None,
    burst_time: int | None,
    minimum: int | None,
) -> None:
    if rate <= 0:
        raise ValueError(f"{direction} rate must be positive, got {rate}")
    if burst is None:
        if threshold is not None or burst_time is not None:
            raise ValueError(f"{direction} burst threshold and time need a burst rate")
    else:
        if threshold is None or burst_time is None:
            raise ValueError(f"{direction} burst needs a threshold and a burst time")
        if not rate < burst:
            raise ValueError(f"{direction} burst rate {burst} must exceed the rate {rate}")
        if not 0 < threshold <= rate:
            raise ValueError(f"{direction} burst threshold {threshold} must be 1..{rate}")
        if burst_time <= 0:
            raise ValueError(f"{direction} burst time must be positive, got {burst_time}")
    if minimum is not None and not 0 < minimum <= rate:
        raise ValueError(f"{direction} minimum rate {minimum} must be 1..{rate}")


def _pair(field: str, convert: Callable[[str], int]) -> tuple[int, int]:
    rx, slash, tx = field.partition("/")
    rx_value = convert(rx)
    return rx_value, (convert(tx) if slash else rx_value)


def _rate(text: str) -> int:
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate (digits with an optional k or M)")
    bits = int(match[1]) * _UNITS[match[2]]
    if bits > MAX_RATE:
        raise ValueError(f"rate {text!r} is above the largest one, {MAX_RATE // 10**9}G bits/s")
    return bits


def _seconds(text: str) -> int:
    if _SECONDS.fullmatch(text) is None or int(text) > MAX_BURST_TIME:
        raise ValueError(f"{text!r} is not a burst time in whole seconds (at most {MAX_BURST_TIME})")
    return int(text)


def _priority(text: str) -> int:
    if _SECONDS.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a priority 1..8")
    return int(text)


def _format_rate(bits: int) -> str:
    for suffix, factor in (("M", 1_000_000), ("k", 1_000)):
        if bits and bits % factor == 0:
            return f"{bits // factor}{suffix}"
    return str(bits)


def _format_pair(rx: int, tx: int, fmt: Callable[[int], str]) -> str:
    return f"{fmt(rx)}/{fmt(tx)}"


# The master package columns package_rate_limits reads.
RATE_COLUMNS = (
    "rate_rx",
    "rate_tx",
    "burst_rx",
    "burst_tx",
    "burst_threshold_rx",
    "burst_threshold_tx",
    "burst_time_rx",
    "burst_time_tx",
    "priority",
    "min_rx",
    "min_tx",
    "fup_rx",
    "fup_tx",
)


def package_rate_limits(row) -> tuple[str, str | None]:
    """A master package row's Mikrotik-Rate-Limit and its fair-usage one (None
    without a fair-usage rate); ValueError if its rates are invalid."""
    rate = RateLimit(
        rx_rate=row["rate_rx"],
        tx_rate=row["rate_tx"],
        burst_rx=row["burst_rx"],
        burst_tx=row["burst_tx"],
        threshold_rx=row["burst_threshold_rx"],
        threshold_tx=row["burst_threshold_tx"],
        burst_time_rx=row["burst_time_rx"],
        burst_time_tx=row["burst_time_tx"],
        priority=row["priority"] or _DEFAULT_PRIORITY,
        min_rx=row["min_rx"],
        min_tx=row["min_tx"],
    )
    fair_usage = None
    if row["fup_rx"] and row["fup_tx"]:
        fair_usage = RateLimit(row["fup_rx"], row["fup_tx"]).to_mikrotik()
    return rate.to_mikrotik(), fair_usage
