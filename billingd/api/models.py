"""The typed shapes of requests and answers: they are the OpenAPI document.

Amounts are integer minor units with a formatted string beside them
(``wallet_balance`` 49950, ``wallet_balance_text`` "499.50"); instants are
UTC ISO 8601.
"""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from billingd.prices import format_amount


class ErrorDetail(BaseModel):
    code: str = Field(
        description="not_found, forbidden, unauthenticated, throttled, bad_request, conflict..."
    )
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


def money(amount: int | None) -> str | None:
    return None if amount is None else format_amount(amount)


class Model(BaseModel):
    """Instants always go out in UTC with an offset."""

    model_config = ConfigDict(extra="forbid")

    @field_serializer("*", when_used="json")
    def _utc(self, value):
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        return value


# --- auth --------------------------------------------------------------------


class OperatorLogin(Model):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SubscriberLogin(Model):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(Model):
    refresh_token: str = Field(min_length=1, max_length=200)


class LoginAsIn(Model):
    login: str = Field(min_length=1, max_length=64, description="A descendant operator to act as")


class TokenOut(Model):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token lives")
    expires_at: datetime
    refresh_token: str = Field(description="Shown once; rotated on every refresh")


class MeOut(Model):
    kind: str = Field(description="operator or subscriber")
    login: str
    role: str | None = None
    acting_for: str | None = Field(None, description="Under login-as: the operator who really logged in")
    permissions: list[str] = []


class ApiTokenIn(Model):
    name: str = Field(min_length=1, max_length=100, description="What uses the token")
    days: int | None = Field(None, ge=1, le=3650, description="Lifetime; none: until revoked")


class ApiTokenOut(Model):
    id: int
    name: str
    operator: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiTokenOut(ApiTokenOut):
    token: str = Field(description="Shown once: store it now")


class PasswordIn(Model):
    password: str | None = Field(
        None,
        min_length=10,
        max_length=1024,
        description="The new password; none: a generated one, returned once",
    )


class PasswordOut(Model):
    password: str | None = Field(None, description="The generated password, shown once")


class AuditOut(Model):
    id: int
    created_at: datetime
    action: str
    actor: str | None
    acting_as: str | None
    target_type: str | None
    target_id: int | None
    details: dict
