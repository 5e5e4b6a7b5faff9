"""Authentication: the handler the protocol calls for each new Access-Request.

It verifies the Message-Authenticator per the NAS's policy, reads the
request, asks the pure policy (radiusd.auth.policy.authorize) with the
subscriber's state from the view, and encodes the answer. Nothing here
waits: the "auto" Message-Authenticator state and the radpostauth row are
written later on a database thread.
"""

import logging
from dataclasses import replace
from datetime import UTC, datetime

from radiusd import metrics
from radiusd.auth.facts import request_facts
from radiusd.auth.policy import PolicySettings, authorize
from radiusd.codec.packets import ACCESS_REQUEST, STATUS_SERVER, Drop, decode, message_authenticator_valid
from radiusd.codec.replies import ACCESS_ACCEPT, encode_access_reply, encode_reply
from radiusd.view.model import NasClient
from radiusd.view.view import SubscriberView
from schema.identity import canonical_username

log = logging.getLogger(__name__)
_ACCEPTS = metrics.LabelCache(metrics.ACCEPTS)
_REJECTS = metrics.LabelCache(metrics.REJECTS)


class AccessHandler:
    codes = (ACCESS_REQUEST, STATUS_SERVER)

    def __init__(
        self,
        view: SubscriberView,
        settings: PolicySettings,
        clock,
        *,
        record_attempt=lambda attempt: None,
        message_authenticator_seen=lambda client: None,
        take_over=None,
    ):
        """``take_over(subscriber, client, calling_station_id, now)``, when given, is asked
        before a login is refused for simultaneous use: it closes the sessions the login
        shows to be stale and returns (a Deferred of) how many it closed."""
        self.view = view
        self.settings = settings
        self.clock = clock
        self._record_attempt = record_attempt
        self._message_authenticator_seen = message_authenticator_seen
        self._take_over = take_over

    def handle(self, data: bytes, client: NasClient, address) -> bytes:
        request = decode(data, client.secret)
        if request.code == STATUS_SERVER:
            return self.status(request, client)
        self.check_message_authenticator(request, client)
        facts = request_facts(request)
        username = canonical_username(facts.username)
        now = datetime.fromtimestamp(self.clock.seconds(), UTC)
        subscriber = self.view.subscriber(username)
        decision = authorize(facts, subscriber, now, self.settings)
        if decision.reason == "simultaneous_use" and self._take_over is not None:
            d = self._take_over(subscriber, client, facts.calling_station_id, now)
            d.addCallback(self._taken_over, request, facts, subscriber, client, username, now)
            d.addErrback(self._not_taken_over, request, facts, decision, client, username, now)
            return d
        return self._answer(request, facts, decision, client, username, now)

    def _taken_over(self, taken: int, request, facts, subscriber, client, username, now) -> bytes:
        """Decide again without the sessions just closed."""
        if taken:
            subscriber = replace(subscriber, open_sessions=max(0, subscriber.open_sessions - taken))
        decision = authorize(facts, subscriber, now, self.settings)
        return self._answer(request, facts, decision, client, username, now)

    def _not_taken_over(self, failure, request, facts, decision, client, username, now) -> bytes:
        log.warning("stale-session takeover for %s failed: %s", username, failure.getErrorMessage())
        return self._answer(request, facts, decision, client, username, now)

    def _answer(self, request, facts, decision, client, username: str, now) -> bytes:
        reply = encode_access_reply(request, decision.accept, decision.attributes, decision.mppe_keys)
        if decision.accept:
            _ACCEPTS(decision.reason, client.name).inc()
            log.debug("Access-Accept for %s from NAS %s (%s)", username, client.name, decision.reason)
        else:
            _REJECTS(decision.reason, client.name).inc()
            log.info("Access-Reject for %s from NAS %s: %s", username, client.name, decision.reason)
        self._record_attempt(
            {
                "username": username,
                "reply": "Access-Accept" if decision.accept else "Access-Reject",
                "reason": decision.reason,
                "nasipaddress": client.ip_address,
                "callingstationid": facts.calling_station_id,
                "authdate": now,
            }
        )
        return reply

    @staticmethod
    def status(request, client: NasClient) -> bytes:
        """RFC 5997: a Status-Server on the authentication port gets an
        Access-Accept, if it carries a valid Message-Authenticator (which it
        must, section 3)."""
        if not request.message_authenticator or not message_authenticator_valid(request):
            raise Drop(
                "bad_message_authenticator",
                f"Status-Server from NAS {client.name} without a valid Message-Authenticator",
            )
        return encode_reply(request, ACCESS_ACCEPT)

    def check_message_authenticator(self, request, client: NasClient) -> None:
        """RFC 3579 section 3.2 and the BlastRADIUS rules: a present
        Message-Authenticator must be right; an absent one is refused when the
        NAS's policy requires it ("yes", or "auto" once it has sent one)."""
        if request.message_authenticator:
            if not message_authenticator_valid(request):
                raise Drop(
                    "bad_message_authenticator",
                    f"wrong Message-Authenticator from NAS {client.name}: is the shared secret right?",
                )
            if client.require_message_authenticator == "auto" and not client.message_authenticator_seen:
                self.view.mark_message_authenticator_seen(client)
                self._message_authenticator_seen(client)
        elif client.requires_message_authenticator():
            raise Drop(
                "missing_message_authenticator",
                f"NAS {client.name} must send a Message-Authenticator and did not",
            )
