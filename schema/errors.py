"""The one exception type that means "the user asked for something wrong"."""


class RadbillError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 1.

    Raised by domain code for bad input or refused operations, so that every
    front end (CLI today, an API later) reports the same words.
    """


def require_one_of(value: str, allowed: tuple[str, ...], what: str) -> None:
    """Refuse a value outside one of schema.tables' enumerations, naming the choices."""
    if value not in allowed:
        raise RadbillError(f"invalid {what} {value!r}: use {', '.join(allowed)}")
