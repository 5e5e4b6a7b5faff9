"""Talking to routers: the NAS registry, RFC 5176 CoA/Disconnect, RouterOS API."""
