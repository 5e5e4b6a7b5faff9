"""Access-Requests: the handler, the request facts, the pure policy and the post-auth log."""
