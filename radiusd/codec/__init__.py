"""The RADIUS wire: packet checks, authenticators, attribute decoding, reply encoding, CHAP and MS-CHAP.

It knows no policy: auth/ and accounting/ build on it, never the other way round."""
