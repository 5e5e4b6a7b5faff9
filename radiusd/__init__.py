"""radiusd: the radbill RADIUS server.

It answers MikroTik routers directly from the subscriber database:
authentication (PAP, CHAP, MS-CHAPv1, MS-CHAPv2) and accounting. The wire
pieces (dictionary, CHAP, MS-CHAP, Mikrotik-Rate-Limit) are pure and know
nothing of sockets.
"""
