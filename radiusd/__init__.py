"""The RADIUS server: codec checks, protocol, authorization policy, accounting."""
