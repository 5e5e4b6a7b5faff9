"""What every ``radbill`` command gets: settings, the engine, who is calling."""

import os
from datetime import UTC, datetime
from functools import cached_property, partial

from sqlalchemy import Engine

from billingd.cards import load_pin_key
from billingd.customers import Calendar
from cli.config import load_settings
from schema.engine import make_engine
from schema.settings import Settings
from schema.tenancy import resolve_actor


def radius_answer(settings: Settings):
    """What radiusd would answer a subscriber's next login now, by radiusd's own policy.

    billingd's ``why`` takes it as ``decide`` (billingd may not import radiusd;
    this composition root may): ``radbill why`` and ``radbill api`` (the panel's
    customer page, ``GET /customers/{username}/why``) get the same one.
    """
    from radiusd.service import next_answer

    return partial(next_answer, settings=settings.radiusd)


class Context:
    """What every command gets: settings, the engine, the caller's choices."""

    def __init__(self, config_file: str | None, act_as: str | None, as_json: bool):
        self.config_file = config_file
        self.act_as = act_as
        self.as_json = as_json

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file)

    def reload_settings(self) -> Settings:
        """The configuration read again from where it came from (a daemon's SIGHUP)."""
        return load_settings(self.config_file)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database.url)

    @property
    def caller(self) -> str:
        """Who runs the command: $RADBILL_OPERATOR, else [cli] operator (default: the admin)."""
        return os.environ.get("RADBILL_OPERATOR") or self.settings.cli.operator

    def actor(self, connection):
        """The operator the command acts as, checked (and --as audited) by the domain layer."""
        return resolve_actor(connection, self.caller, self.act_as)

    def calendar(self) -> Calendar:
        return Calendar(
            datetime.now(UTC), self.settings.billingd.zone, self.settings.billingd.invoice_due_days
        )

    def card_pin_key(self) -> bytes:
        """The key recharge-card PINs are hashed with, from ``[api] state_dir`` (shared with the API)."""
        return load_pin_key(self.settings.api.state_dir)
