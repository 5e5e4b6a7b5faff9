"""Typed settings shared by the daemons; cli/config.py fills them from TOML.

Each dataclass is one TOML table; each field is one key. The defaults run the
demo on one machine. Validation that needs more than a type lives in
``__post_init__`` and raises ValueError with a message the loader prefixes
with the key's name.
"""

from dataclasses import dataclass, field
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from schema.ratelimit import RateLimit


def _port(value: int, lowest: int = 1) -> None:
    """A port is 1..65535; a metrics port may also be 0 (off)."""
    if not lowest <= value <= 65535:
        raise ValueError(f"must be a port number {lowest}..65535, got {value}")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/radbill.sqlite"

    def __post_init__(self) -> None:
        # The URL itself is never echoed: it may hold a password.
        try:
            backend = make_url(self.url).get_backend_name()
        except ArgumentError:
            backend = None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("url: must be a database URL: sqlite:///PATH or postgresql://USER@HOST/DBNAME")


@dataclass(frozen=True)
class PolicySettings:
    """The keys the access policy reads (radiusd's and the FreeRADIUS drop-in's answers)."""

    # Acct-Interim-Interval sent in every Access-Accept (seconds).
    interim_interval: int = 300
    # What an expired subscriber gets: "reject", or "restrict" (accepted into
    # the captive pool / address list / rate below, so a page can ask for payment).
    expired_policy: str = "reject"
    expired_pool: str = ""
    expired_address_list: str = ""
    # A Mikrotik-Rate-Limit; kept in its canonical form.
    expired_rate: str = ""

    def __post_init__(self) -> None:
        if not 10 <= self.interim_interval <= 86_400:
            raise ValueError(f"interim_interval: must be 10..86400 seconds, got {self.interim_interval}")
        if self.expired_policy not in ("reject", "restrict"):
            raise ValueError(f'expired_policy: must be "reject" or "restrict", got {self.expired_policy!r}')
        if self.expired_rate:
            try:
                canonical = RateLimit.parse(self.expired_rate).to_mikrotik()
            except ValueError as error:
                raise ValueError(f"expired_rate: {error}") from None
            object.__setattr__(self, "expired_rate", canonical)


@dataclass(frozen=True)
class RadiusdSettings(PolicySettings):
    bind: str = "127.0.0.1"
    auth_port: int = 1812
    acct_port: int = 1813
    metrics_port: int = 9812
    # Processes sharing the ports (SO_REUSEPORT), forked after the view is read once.
    workers: int = 1
    # SO_RCVBUF of the UDP sockets, in bytes (FIELD-NOTES 19).
    receive_buffer: int = 4 * 1024 * 1024
    # Where accounting records wait, fsync'd, while the database is down
    # (each worker uses its own subdirectory).
    spool_dir: str = "var/spool"
    # Accounting requests waiting for the database writer; beyond this they
    # are dropped (the NAS retransmits) rather than queued without bound.
    acct_queue_size: int = 10_000

    def __post_init__(self) -> None:
        super().__post_init__()
        for port in ("auth_port", "acct_port", "metrics_port"):
            try:
                _port(getattr(self, port), 0 if port == "metrics_port" else 1)
            except ValueError as error:
                raise ValueError(f"{port}: {error}") from None
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers: must be 1..64, got {self.workers}")
        if self.receive_buffer < 65_536:
            raise ValueError(f"receive_buffer: must be at least 65536 bytes, got {self.receive_buffer}")
        if self.acct_queue_size < 1:
            raise ValueError(f"acct_queue_size: must be at least 1, got {self.acct_queue_size}")


@dataclass(frozen=True)
class BillingdSettings:
    bind: str = "127.0.0.1"
    metrics_port: int = 9813
    run_at: str = "00:05"
    timezone: str = "Asia/Dhaka"
    invoice_due_days: int = 7
    grace_days: int = 3
    # Authentication attempts (radpostauth) older than this are deleted after each daily run.
    postauth_days: int = 90

    def __post_init__(self) -> None:
        try:
            _port(self.metrics_port, 0)
        except ValueError as error:
            raise ValueError(f"metrics_port: {error}") from None
        for key in ("invoice_due_days", "grace_days"):
            if not 0 <= getattr(self, key) <= 365:
                raise ValueError(f"{key}: must be 0..365 days, got {getattr(self, key)}")
        if not 1 <= self.postauth_days <= 3650:
            raise ValueError(f"postauth_days: must be 1..3650 days, got {self.postauth_days}")
        try:
            time.fromisoformat(self.run_at)
        except ValueError:
            raise ValueError(f"run_at: must be a time of day like 00:05, got {self.run_at!r}") from None
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None

    @property
    def run_time(self) -> time:
        return time.fromisoformat(self.run_at)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class NasSettings:
    """The enforcement worker that billingd runs (nas/worker.py): how it polls,
    waits for routers, retries, and how it blocks static-IP customers."""

    # Seconds between polls of the outbox when it is idle.
    poll_interval: float = 1.0
    # Jobs claimed per poll.
    batch_size: int = 20
    # Seconds before a CoA/Disconnect-Request is sent again, and how many times.
    coa_timeout: float = 3.0
    coa_retries: int = 2
    # Seconds to wait for the RouterOS API.
    api_timeout: float = 10.0
    # Attempts before a job is marked failed (its dead letter).
    max_attempts: int = 6
    # First retry delay in seconds; it doubles each attempt, up to retry_max.
    retry_delay: float = 10.0
    retry_max: float = 900.0
    # Seconds a claimed job stays hidden from other workers; longer than one attempt.
    lease: float = 120.0
    # After a Disconnect-ACK, seconds to wait for the Accounting-Stop before
    # asking the RouterOS API whether the session is gone.
    stop_deadline: float = 10.0
    # The firewall address list that blocked static-IP customers are put on.
    blocked_address_list: str = "radbill-blocked"
    # Also disable the static customer's /queue/simple entry (target = its address) while blocked.
    block_queue: bool = False

    def __post_init__(self) -> None:
        positive = (
            "poll_interval",
            "coa_timeout",
            "api_timeout",
            "retry_delay",
            "retry_max",
            "stop_deadline",
        )
        for key in positive:
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: must be more than 0 seconds, got {getattr(self, key)}")
        for key, low, high in (("batch_size", 1, 1000), ("coa_retries", 0, 10), ("max_attempts", 1, 100)):
            if not low <= getattr(self, key) <= high:
                raise ValueError(f"{key}: must be {low}..{high}, got {getattr(self, key)}")
        one_attempt = (
            self.coa_timeout * (self.coa_retries + 1) * 2 + self.stop_deadline + 2 * self.api_timeout
        )
        if self.lease <= one_attempt:
            raise ValueError(
                f"lease: must be longer than one attempt ({one_attempt:g} s with these timeouts), got {self.lease}"
            )
        if not self.blocked_address_list:
            raise ValueError("blocked_address_list: must not be empty")


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: the HTTP API daemon (`radbill api`)."""

    bind: str = "127.0.0.1"
    port: int = 8080
    metrics_port: int = 9814
    # Where the token signing key is created on first start (mode 0600).
    state_dir: str = "var"
    # The address people and scripts use (links in documentation pages); "" = http://bind:port.
    public_url: str = ""
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    # Login throttling: this many failures within the window lock the login
    # (or the client address) for lockout_seconds.
    login_failures: int = 5
    address_failures: int = 20
    failure_window_seconds: int = 900
    lockout_seconds: int = 900
    # Comma-separated proxy addresses whose X-Forwarded-For is believed ("" = none).
    trusted_proxies: str = ""
    # Serve HTTPS directly with these PEM files (both, or neither: behind a reverse proxy).
    tls_certificate: str = ""
    tls_key: str = ""
    # Largest request body accepted, in bytes.
    max_body_bytes: int = 65_536
    # Comma-separated browser origins allowed by CORS ("" = CORS off).
    cors_origins: str = ""

    def __post_init__(self) -> None:
        for port in ("port", "metrics_port"):
            try:
                _port(getattr(self, port))
            except ValueError as error:
                raise ValueError(f"{port}: {error}") from None
        limits = {
            "access_token_minutes": (1, 1440),
            "refresh_token_days": (1, 365),
            "login_failures": (1, 1000),
            "address_failures": (1, 100_000),
            "failure_window_seconds": (1, 86_400),
            "lockout_seconds": (1, 86_400),
            "max_body_bytes": (1024, 100 * 1024 * 1024),
        }
        for key, (low, high) in limits.items():
            if not low <= getattr(self, key) <= high:
                raise ValueError(f"{key}: must be {low}..{high}, got {getattr(self, key)}")
        if bool(self.tls_certificate) != bool(self.tls_key):
            raise ValueError("tls_key: give both tls_certificate and tls_key, or neither")

    @property
    def proxies(self) -> frozenset[str]:
        return frozenset(item.strip() for item in self.trusted_proxies.split(",") if item.strip())

    @property
    def origins(self) -> list[str]:
        return [item.strip() for item in self.cors_origins.split(",") if item.strip()]


@dataclass(frozen=True)
class CliSettings:
    # Who runs `radbill` when $RADBILL_OPERATOR is not set: the CLI runs on
    # the server, so the default caller is the admin.
    operator: str = "admin"


SMS_BODY_FORMATS = ("form", "json", "raw")


@dataclass(frozen=True)
class NoticeSettings:
    # Subscribers with a phone get a reminder this many days before their paid time ends (0: none).
    expiry_days: int = 3
    expiry_message: str = "Dear {name}, your {package} internet expires on {expires}. Please recharge."
    # Daily-billed subscribers whose wallet falls below this amount are told once per top-up ("": never).
    low_wallet: str = ""
    low_wallet_message: str = "Dear {name}, your internet balance is {balance}. Please recharge."
    # The SMS gateway as an HTTP request template; without sms_url notices are only logged.
    sms_url: str = ""
    sms_method: str = "POST"
    sms_headers: str = ""  # "Name: value" lines
    sms_body: str = ""  # with {phone} and {message} (other braces are kept, for JSON bodies)
    sms_body_format: str = "form"  # how {phone} and {message} are encoded in the body: form, json, raw

    def __post_init__(self) -> None:
        if not 0 <= self.expiry_days <= 60:
            raise ValueError(f"expiry_days: must be 0..60, got {self.expiry_days}")
        if self.sms_body_format not in SMS_BODY_FORMATS:
            raise ValueError(
                f"sms_body_format: must be one of {', '.join(SMS_BODY_FORMATS)}, got {self.sms_body_format!r}"
            )
        if self.sms_method not in ("GET", "POST", "PUT"):
            raise ValueError(f"sms_method: must be GET, POST or PUT, got {self.sms_method!r}")
        if self.sms_url and not self.sms_url.startswith(("http://", "https://")):
            raise ValueError(f"sms_url: must be an http:// or https:// URL, got {self.sms_url!r}")
        for key, names in (
            ("expiry_message", ("name", "package", "expires")),
            ("low_wallet_message", ("name", "balance")),
        ):
            try:
                getattr(self, key).format(**{name: "" for name in names})
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"{key}: placeholders are {', '.join('{' + n + '}' for n in names)} ({error})"
                ) from None


LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogSettings:
    # The daemons' log level; SIGHUP applies a change without a restart.
    level: str = "info"

    def __post_init__(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ValueError(f"level: must be one of {', '.join(LOG_LEVELS)}, got {self.level!r}")


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    radiusd: RadiusdSettings = field(default_factory=RadiusdSettings)
    billingd: BillingdSettings = field(default_factory=BillingdSettings)
    nas: NasSettings = field(default_factory=NasSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    cli: CliSettings = field(default_factory=CliSettings)
    log: LogSettings = field(default_factory=LogSettings)
    notices: NoticeSettings = field(default_factory=NoticeSettings)
