"""Accounting: the handler the protocol calls for each new Accounting-Request.

The protocol (radiusd.protocol) has already found the NAS by source address,
checked the packet's structure and answered retransmissions from its
duplicate cache. Here the Request Authenticator is verified (RFC 2866 §3:
MD5 over the packet with a zeroed authenticator and the shared secret; a
mismatch is dropped silently, §2), the record is built and handed to the
writer, and the Accounting-Response (encoded at once, it depends on nothing
the writer does) is answered only when the writer says the record is durable.
"""

import logging

from radiusd import metrics
from radiusd.accounting.record import AccountingError, record_from_packet
from radiusd.accounting.writer import AccountingWriter, QueueFull
from radiusd.codec.attributes import attribute_map
from radiusd.codec.packets import (
    ACCOUNTING_REQUEST,
    MESSAGE_AUTHENTICATOR,
    ZERO_AUTHENTICATOR,
    Drop,
    accounting_authenticator_valid,
    message_authenticator_matches,
    received_packet,
)
from radiusd.codec.replies import encode_accounting_response
from radiusd.view.model import NasClient

log = logging.getLogger(__name__)


class AccountingHandler:
    codes = (ACCOUNTING_REQUEST,)

    def __init__(self, writer: AccountingWriter, clock):
        self.writer = writer
        self.clock = clock

    def handle(self, data: bytes, client: NasClient, address):
        """Works on the datagram's bytes and attribute map, no pyrad Packet: on
        the accounting port that object was a third of the reactor's time."""
        raw = received_packet(data)
        if not accounting_authenticator_valid(raw, client.secret):
            raise Drop(
                "bad_authenticator",
                f"wrong Request Authenticator from NAS {client.name}: is the shared secret right?",
            )
        attributes = attribute_map(raw)
        # RFC 3579 §3.2: in an Accounting-Request it is computed over a zeroed Request Authenticator.
        signed = attributes.get(MESSAGE_AUTHENTICATOR)
        if signed and not message_authenticator_matches(raw, client.secret, signed[0], ZERO_AUTHENTICATOR):
            raise Drop("bad_message_authenticator", f"wrong Message-Authenticator from NAS {client.name}")
        try:
            record = record_from_packet(attributes, client.id, address[0], self.clock.seconds())
        except AccountingError as error:
            raise Drop("bad_accounting", f"NAS {client.name}: {error}") from None
        except Exception as error:  # values are decoded as they are read: a bad one surfaces here
            raise Drop(
                "bad_attribute", f"NAS {client.name}: undecodable attribute value: {error!r}"
            ) from None
        response = encode_accounting_response(raw, attributes, client.secret)
        if record is None:
            return response
        if record.counters_clamped:
            metrics.COUNTERS_CLAMPED.labels(client.name).inc()
            log.info(
                "NAS %s sent byte counters above 2^60 for user %s session %s: stored clamped",
                client.name,
                record.username,
                record.acct_session_id,
            )
        stored = self.writer.submit(record)
        stored.addCallbacks(lambda _: response, self._not_stored, errbackArgs=(client,))
        return stored

    @staticmethod
    def _not_stored(failure, client: NasClient):
        """No answer: the NAS retransmits, and the retransmission is processed afresh."""
        if failure.check(QueueFull):
            raise Drop("accounting_queue_full", f"NAS {client.name}: {failure.getErrorMessage()}")
        raise Drop("accounting_not_stored", f"NAS {client.name}: {failure.getErrorMessage()}")
