"""The money and lifecycle domain, and the daemon that runs it every day."""
