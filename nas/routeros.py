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

librouteros is blocking: every method here runs in a thread, never on the
reactor (the worker uses deferToThreadPool).
"""

import ssl
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
            ssl_wrapper=_tls_context().wrap_socket if endpoint.tls else None,
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

    def _list_entries(self, address: str, address_list: str) -> list[str]:
        lists = self._api.path("ip", "firewall", "address-list")
        query = lists.select(Key(".id")).where(Key("list") == address_list, Key("address") == address)
        return [row[".id"] for row in query]


def _tls_context() -> ssl.SSLContext:
    """TLS for api-ssl (8729). RouterOS serves a self-signed certificate, or
    none at all (anonymous Diffie-Hellman), so the certificate is not checked:
    the TLS protects the password on the wire, the API user's rights and the
    router's firewall limit who may connect."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:ADH-AES256-GCM-SHA384:ADH-AES128-GCM-SHA256:@SECLEVEL=0")
    return context
