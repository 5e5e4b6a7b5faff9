"""``radbill nas test``: can radbill reach a router's CoA port and its API, and if not, why.

Two harmless checks, each ending in a verdict an engineer can act on:

- a CoA-Request for a session that does not exist (User-Name
  ``radbill-probe``): a router that hears it and shares the secret answers
  CoA-NAK Session-Context-Not-Found (RFC 5176 §3.5), and nothing changes. The
  probe's socket is connected, so an ICMP port-unreachable (nothing listens:
  ``/radius incoming accept=no`` or another port) is told apart from silence
  (RouterOS drops a request it cannot verify: a wrong secret, or a firewall),
  and an answer signed with another secret is named as such;
- a RouterOS API login and a read of an empty slice of
  ``/ip/firewall/address-list``, whose failure names the service, the TLS
  certificate, the password or the user's rights.
"""

import secrets
import ssl
from dataclasses import dataclass

import librouteros
from librouteros.exceptions import ConnectionClosed, FatalError, ProtocolError, TrapError
from pyrad.packet import CoAPacket, PacketError
from twisted.internet import defer, task, threads
from twisted.internet.protocol import DatagramProtocol

from nas.coa import CoaReply, SessionIdentity, coa_request, error_cause
from nas.registry import Nas
from nas.routeros import ApiEndpoint, FingerprintMismatch, RouterApi
from schema.settings import NasSettings

PROBE_USER = "radbill-probe"


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


async def check_router(reactor, router: Nas, settings: NasSettings) -> list[Check]:
    """Both checks (the API one only when the NAS has an API user), with the worker's timeouts."""
    checks = [
        await probe_coa(
            reactor, reactor, router, timeout=settings.coa_timeout, tries=settings.coa_retries + 1
        )
    ]
    if router.api_user:
        checks.append(await threads.deferToThread(probe_api, router, timeout=settings.api_timeout))
    return checks


class _Probe(DatagramProtocol):
    """One connected UDP socket waiting for one answer (or an ICMP error)."""

    def __init__(self, request: CoAPacket, address: tuple[str, int]):
        self.request = request
        self.address = address
        self.raw = request.RequestPacket()
        self.result = defer.Deferred()
        self.closing = False

    def startProtocol(self) -> None:
        self.transport.connect(*self.address)
        self.transport.write(self.raw)

    def resend(self) -> None:
        if self.transport is not None:
            self.transport.write(self.raw)

    def datagramReceived(self, data: bytes, _address) -> None:
        if self.result.called:
            return
        try:
            reply = CoAPacket(packet=data, secret=self.request.secret, dict=self.request.dict)
        except PacketError as error:
            self.result.callback(("malformed", str(error)))
            return
        if reply.id != self.request.id:
            return
        if not self.request.VerifyReply(reply, data):
            self.result.callback(("bad_authenticator", reply.code))
            return
        self.result.callback(("reply", CoaReply(reply.code, error_cause(reply))))

    def connectionRefused(self) -> None:
        if not self.result.called:
            self.result.callback(("refused", None))

    def stopProtocol(self) -> None:
        # The epoll reactor closes a connected UDP port on the socket error
        # an ICMP port-unreachable leaves, instead of calling connectionRefused.
        if not self.closing:
            self.connectionRefused()


async def probe_coa(reactor, clock, router: Nas, *, timeout: float = 3.0, tries: int = 2) -> Check:
    """Send the probe CoA-Request ``tries`` times, ``timeout`` seconds apart, and read the answer."""
    target = f"CoA {router.ip_address}:{router.coa_port}"
    session = SessionIdentity(PROBE_USER, f"radbill-probe-{secrets.token_hex(4)}", router.ip_address)
    request = coa_request(session, router.secret.encode(), "1k/1k")
    request.id = secrets.randbelow(256)
    probe = _Probe(request, (router.ip_address, router.coa_port))
    port = reactor.listenUDP(0, probe, interface="::" if ":" in router.ip_address else "0.0.0.0")
    try:
        for attempt in range(tries):
            if attempt:
                probe.resend()
            later = task.deferLater(clock, timeout, lambda: None)
            await defer.DeferredList([probe.result, later], fireOnOneCallback=True, consumeErrors=True)
            later.cancel()
            if probe.result.called:
                break
        outcome = probe.result.result if probe.result.called else ("silent", None)
    finally:
        probe.closing = True
        await defer.maybeDeferred(port.stopListening)
    return _coa_verdict(target, router, outcome, timeout * tries)


def _coa_verdict(target: str, router: Nas, outcome: tuple, waited: float) -> Check:
    kind, value = outcome
    if kind == "reply":
        return Check(
            target,
            True,
            f"{value.describe()} to a probe for no session: the port and the secret are right",
        )
    if kind == "refused":
        return Check(
            target,
            False,
            f"nothing listens on UDP {router.coa_port} (ICMP port unreachable): on the router "
            f"/radius incoming set accept=yes port={router.coa_port}, or fix radbill nas set {router.name} --coa-port",
        )
    if kind == "bad_authenticator":
        return Check(
            target,
            False,
            "the router answers, but its reply does not verify: the secret differs "
            f"(/radius secret= on the router, radbill nas set {router.name} --secret)",
        )
    if kind == "malformed":
        return Check(target, False, f"the answer is not a RADIUS packet ({value}): is this the CoA port?")
    return Check(
        target,
        False,
        f"no answer within {waited:g}s: the secret is probably wrong (RouterOS drops a request it cannot "
        "verify without a word), or a firewall drops UDP to the router or its answers, "
        "or /radius incoming accept=no with the port still open",
    )


def probe_api(router: Nas, *, timeout: float = 10.0, connect=librouteros.connect) -> Check:
    """Log in to the RouterOS API and read an empty slice; blocking (run it in a thread)."""
    endpoint = ApiEndpoint.of(router)
    if endpoint is None:
        return Check(
            "API", False, f"no API user: radbill nas set {router.name} --api-user U --api-password P"
        )
    tls = " over TLS" if endpoint.tls else ""
    target = f"API {endpoint.host}:{endpoint.port}{tls}"
    try:
        with RouterApi(endpoint, timeout=timeout, connect=connect) as api:
            try:
                api.can_read()
            except TrapError as error:
                return Check(
                    target,
                    False,
                    f"logged in, but the user may not read ({error}): give its group the policies "
                    "read,write,api (see the README's router section)",
                )
    except TrapError as error:
        return Check(target, False, f"login refused ({error}): the API user or password is wrong")
    except ConnectionRefusedError:
        service = "api-ssl" if endpoint.tls else "api"
        return Check(
            target,
            False,
            f"connection refused: the {service} service is disabled or on another port "
            f"(/ip service enable {service}; /ip service print)",
        )
    except TimeoutError:
        return Check(
            target,
            False,
            f"no answer within {timeout:g}s: a firewall drops it, or /ip service's address= leaves this server out",
        )
    except (FingerprintMismatch, ssl.SSLCertVerificationError) as error:
        return Check(
            target,
            False,
            f"TLS: the router's certificate does not verify ({error}): radbill nas set {router.name} "
            "--api-tls-ca-file FILE or --api-tls-fingerprint SHA256 (or, knowingly, --api-tls-insecure)",
        )
    except ssl.SSLError as error:
        return Check(
            target,
            False,
            f"TLS handshake failed ({error}): is this the api-ssl port, and does the service have a "
            "certificate (/ip service set api-ssl certificate=...)?",
        )
    except (ConnectionClosed, ProtocolError, FatalError, ConnectionResetError, EOFError) as error:
        other = "api (8728)" if endpoint.tls else "api-ssl (8729)"
        return Check(
            target,
            False,
            f"the router closed the connection ({error or type(error).__name__}): is this port {other}? "
            "--api-tls must match the service",
        )
    except OSError as error:
        return Check(target, False, f"cannot connect: {error}")
    return Check(target, True, "logged in and read /ip/firewall/address-list")
