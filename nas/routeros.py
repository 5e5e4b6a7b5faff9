"""RouterOS API adapter (librouteros): the fallback when RADIUS is not enough.

A router that NAKs or ignores a Disconnect-Request still obeys its API
(FIELD-NOTES 12): radbill logs in (plain login, RouterOS 6.43+), finds the
subscriber in ``/ppp/active`` (by ``name``) and ``/ip/hotspot/active`` (by
``user``) and removes the entries, which drops the session. A rate change
goes to the subscriber's dynamic queue in ``/queue/simple`` (it holds until
the next login, which gets the package rate from radiusd anyway). A static-IP
subscriber has no session to drop, so disabling one puts its address on a
firewall address list (the router's filter rules drop or redirect that
list), and enabling removes it again.

Over TLS (api-ssl) the router's certificate is checked (see tls_wrapper):
the API password and the power to cut customers off are worth a
certificate; a NAS must opt out explicitly (``--api-tls-insecure``).

librouteros is blocking: every method here runs in a thread, never on the
reactor (the worker uses deferToThreadPool).
"""

import hashlib
import hmac
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import librouteros
from librouteros.query import Key

from nas.registry import Nas

API_PORT = 8728
API_TLS_PORT = 8729
# Where each kind of session shows up, and the property that holds its user.
ACTIVE_MENUS = (("ppp", "active", "name"), ("ip", "hotspot", "active", "user"))
# RouterOS names a session's dynamic queue "<service-user>".
QUEUE_PREFIXES = ("pppoe", "hotspot", "l2tp", "pptp", "sstp", "ovpn")
# Mikrotik-Rate-Limit fields in order, and the /queue/simple property of each.
QUEUE_PROPERTIES = ("max-limit", "burst-limit", "burst-threshold", "burst-time", "priority", "limit-at")


@dataclass(frozen=True)
class ApiEndpoint:
    host: str
    port: int
    user: str
    password: str
    tls: bool
    verify: bool = True
    ca_file: str | None = None
    fingerprint: str | None = None

    @classmethod
    def of(cls, router: Nas) -> "ApiEndpoint | None":
        """The API endpoint of a NAS, or None when it has no API user."""
        if not router.api_user:
            return None
        port = router.api_port or (API_TLS_PORT if router.api_tls else API_PORT)
        return cls(
            router.api_host or router.ip_address,
            port,
            router.api_user,
            router.api_password or "",
            router.api_tls,
            router.api_tls_verify,
            router.api_tls_ca_file,
            router.api_tls_fingerprint,
        )


def queue_properties(rate_limit: str) -> dict[str, str]:
    """Turn a Mikrotik-Rate-Limit into /queue/simple properties.

    Both use rx/tx = the subscriber's upload/download (a queue's "target
    upload"); a field given once applies to both directions, and "0/0"
    means "not set", so it is skipped.
    """
    properties = {}
    for name, field in zip(QUEUE_PROPERTIES, rate_limit.split()):
        rx, _, tx = field.partition("/")
        tx = tx or rx
        if name != "max-limit" and rx == tx == "0":
            continue
        properties[name] = f"{rx}/{tx}"
    return properties


class RouterApi:
    """One logged-in API session; a context manager. Blocking: call in a thread."""

    def __init__(self, endpoint: ApiEndpoint, *, timeout: float = 10.0, connect=librouteros.connect):
        self.endpoint = endpoint
        self._timeout = timeout
        self._connect = connect
        self._api = None

    def __enter__(self) -> "RouterApi":
        endpoint = self.endpoint
        self._api = self._connect(
            endpoint.host,
            endpoint.user,
            endpoint.password,
            port=endpoint.port,
            timeout=self._timeout,
            ssl_wrapper=tls_wrapper(endpoint) if endpoint.tls else None,
        )
        return self

    def __exit__(self, *_exc) -> None:
        self._api.close()

    def remove_active(self, username: str) -> int:
        """Drop every PPP and Hotspot session of a user; return how many there were."""
        removed = 0
        for *menu, property_name in ACTIVE_MENUS:
            path = self._api.path(*menu)
            ids = [row[".id"] for row in path.select(Key(".id")).where(Key(property_name) == username)]
            if ids:
                path.remove(*ids)
                removed += len(ids)
        return removed

    def set_queue_rate(self, username: str, rate_limit: str) -> int:
        """Give a user's dynamic queues a new rate; return how many were changed."""
        queues = self._api.path("queue", "simple")
        names = [f"<{prefix}-{username}>" for prefix in QUEUE_PREFIXES]
        ids = [row[".id"] for row in queues.select(Key(".id")).where(Key("name").In(*names))]
        for queue_id in ids:
            queues.update(**{".id": queue_id}, **queue_properties(rate_limit))
        return len(ids)

    def block_address(self, address: str, address_list: str, comment: str) -> None:
        """Put an address on a firewall address list, once."""
        lists = self._api.path("ip", "firewall", "address-list")
        if not self._list_entries(address, address_list):
            lists.add(list=address_list, address=address, comment=comment)

    def unblock_address(self, address: str, address_list: str) -> int:
        """Take an address off a firewall address list; return how many entries went."""
        ids = self._list_entries(address, address_list)
        if ids:
            self._api.path("ip", "firewall", "address-list").remove(*ids)
        return len(ids)

    def set_static_queue_disabled(self, address: str, disabled: bool) -> int:
        """Disable (or enable) the static queues that shape one address; return how many there were.

        For ISPs whose static lines pass only through their queue (a
        disabled queue plus a ``queue=no-queue`` drop rule); the address
        list is the usual block."""
        queues = self._api.path("queue", "simple")
        targets = (address, f"{address}/32")
        ids = [row[".id"] for row in queues.select(Key(".id")).where(Key("target").In(*targets))]
        for queue_id in ids:
            queues.update(**{".id": queue_id, "disabled": "yes" if disabled else "no"})
        return len(ids)

    def can_read(self) -> None:
        """A harmless read that needs the API user's ``read`` policy (``radbill nas test``)."""
        lists = self._api.path("ip", "firewall", "address-list")
        list(lists.select(Key(".id")).where(Key("list") == "radbill-probe"))

    def _list_entries(self, address: str, address_list: str) -> list[str]:
        lists = self._api.path("ip", "firewall", "address-list")
        query = lists.select(Key(".id")).where(Key("list") == address_list, Key("address") == address)
        return [row[".id"] for row in query]


class FingerprintMismatch(ssl.SSLError):
    """The router showed another certificate than the one pinned for it."""


def tls_wrapper(endpoint: ApiEndpoint) -> Callable[[socket.socket], socket.socket]:
    """How to wrap the API socket in TLS for this NAS.

    - a pinned SHA-256 fingerprint: the certificate must be that one
      (RouterOS's self-signed certificates have no CA to check against);
    - otherwise the chain must verify against the NAS's CA file (or the
      system's CAs) and name the API host (``subject-alt-name=IP:...``);
    - ``verify`` false (an explicit opt-out per NAS): no check at all, and
      anonymous Diffie-Hellman is allowed, as RouterOS offers it without a
      certificate; the TLS then only hides the password from a passive eye.
    """
    if not endpoint.verify:
        return _unchecked_context().wrap_socket
    if endpoint.fingerprint:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def pinned(plain: socket.socket) -> socket.socket:
            wrapped = context.wrap_socket(plain)
            seen = hashlib.sha256(wrapped.getpeercert(binary_form=True) or b"").hexdigest()
            if not hmac.compare_digest(seen, endpoint.fingerprint):
                wrapped.close()
                raise FingerprintMismatch(
                    f"certificate fingerprint {seen} is not the pinned {endpoint.fingerprint}"
                )
            return wrapped

        return pinned
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    return lambda plain: context.wrap_socket(plain, server_hostname=endpoint.host)


def _unchecked_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:ADH-AES256-GCM-SHA384:ADH-AES128-GCM-SHA256:@SECLEVEL=0")
    return context
