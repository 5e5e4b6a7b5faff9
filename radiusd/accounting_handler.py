"""Accounting: the handler the protocol calls for each new Accounting-Request.

The protocol (radiusd.protocol) has already found the NAS by source address,
checked the packet's structure and answered retransmissions from its
duplicate cache. Here the Request Authenticator is verified (RFC 2866 §3:
MD5 over the packet with a zeroed authenticator and the shared secret; a
mismatch is dropped silently, §2), the record is built and handed to the
writer, and the Accounting-Response is encoded only when the writer says the
record is durable.
"""

import logging

from pyrad.packet import AccountingResponse, AcctPacket

from radiusd.accounting import AccountingError, record_from_packet
from radiusd.accounting_writer import AccountingWriter, QueueFull
from radiusd.packets import ACCOUNTING_REQUEST, AccountingPacket, Drop, decode, message_authenticator_valid
from radiusd.view import NasClient

log = logging.getLogger(__name__)

_ZERO_AUTHENTICATOR = bytes(16)


class AccountingHandler:
    codes = (ACCOUNTING_REQUEST,)

    def __init__(self, writer: AccountingWriter, clock):
        self.writer = writer
        self.clock = clock

    def handle(self, data: bytes, client: NasClient, address):
        request = decode(data, client.secret, AccountingPacket)
        if not request.VerifyAcctRequest():
            raise Drop("bad_authenticator", f"wrong Request Authenticator from NAS {client.name}: is the shared secret right?")
        # RFC 3579 §3.2: in an Accounting-Request it is computed over a zeroed Request Authenticator.
        if request.message_authenticator and not message_authenticator_valid(request, _ZERO_AUTHENTICATOR):
            raise Drop("bad_message_authenticator", f"wrong Message-Authenticator from NAS {client.name}")
        try:
            record = record_from_packet(request, client.id, address[0], self.clock.seconds())
        except AccountingError as error:
            raise Drop("bad_accounting", f"NAS {client.name}: {error}") from None
        except Exception as error:  # pyrad decodes values lazily: a bad one surfaces here
            raise Drop("bad_attribute", f"NAS {client.name}: undecodable attribute value: {error!r}") from None
        if record is None:
            return self._response(request)
        stored = self.writer.submit(record)
        stored.addCallbacks(lambda _: self._response(request), self._not_stored, errbackArgs=(client,))
        return stored

    @staticmethod
    def _response(request: AcctPacket) -> bytes:
        reply = request.CreateReply()
        reply.code = AccountingResponse
        return reply.ReplyPacket()

    @staticmethod
    def _not_stored(failure, client: NasClient):
        """No answer: the NAS retransmits, and the retransmission is processed afresh."""
        if failure.check(QueueFull):
            raise Drop("accounting_queue_full", f"NAS {client.name}: {failure.getErrorMessage()}")
        raise Drop("accounting_not_stored", f"NAS {client.name}: {failure.getErrorMessage()}")
