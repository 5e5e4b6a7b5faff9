"""Accounting-Requests: the handler, the record, the group-commit writer, its spool, the store and the service."""
