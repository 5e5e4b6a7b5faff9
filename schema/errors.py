"""The exception types that mean "the user asked for something wrong"."""


class RadbillError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 1.

    Raised by domain code for bad input or refused operations, so that every
    front end (the CLI, the HTTP API) reports the same words. The subclasses
    below tell a front end which kind of refusal it is (the API's status code).
    """


def require_one_of(value: str, allowed: tuple[str, ...], what: str) -> None:
    """Refuse a value outside one of schema.tables' enumerations, naming the choices."""
    if value not in allowed:
        raise RadbillError(f"invalid {what} {value!r}: use {', '.join(allowed)}")


class NotFound(RadbillError):
    """No such thing, or not one the caller may see (which must look the same)."""


class Forbidden(RadbillError):
    """The caller is known and sees the thing, but its role or permissions do not allow this."""


class Unauthenticated(RadbillError):
    """The caller did not prove who it is: a wrong password, an expired or revoked token."""


class Throttled(RadbillError):
    """Too many failed logins: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
