"""UDP sockets for radiusd, made by hand so they get what Twisted's listenUDP
cannot set: a large receive buffer (FIELD-NOTES 19: the default overflows at
a few hundred requests in flight, and every lost packet costs the NAS a
3-second retry) and SO_REUSEPORT, so several worker processes share a port."""

import logging
import socket

log = logging.getLogger(__name__)


def udp_socket(bind: str, port: int, *, receive_buffer: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        _set_receive_buffer(sock, receive_buffer)
        sock.bind((bind, port))
    except OSError:
        sock.close()
        raise
    return sock


def _set_receive_buffer(sock: socket.socket, size: int) -> None:
    """SO_RCVBUFFORCE passes net.core.rmem_max when we may (root, CAP_NET_ADMIN)."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
        except OSError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    if granted < size:
        log.warning("receive buffer capped at %d bytes (asked %d): raise net.core.rmem_max", granted, size)


def listen_udp(reactor, protocol, bind: str, port: int, *, receive_buffer: int, reuse_port: bool):
    """Start ``protocol`` on a socket from udp_socket; returns the listening port."""
    sock = udp_socket(bind, port, receive_buffer=receive_buffer, reuse_port=reuse_port)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), sock.family, protocol)
    finally:
        sock.close()  # Twisted keeps its own duplicate of the descriptor
