"""The typed shapes of requests and answers: they are the OpenAPI document.

Amounts are integer minor units with a formatted string beside them
(``wallet_balance`` 49950, ``wallet_balance_text`` "499.50"); instants are
UTC ISO 8601.
"""

from dataclasses import fields
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field, create_model, field_serializer

from billingd.money import format_amount
from billingd.reports import PendingJob
from nas.outbox import JobRow


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


# --- money in and out ---------------------------------------------------------


class PaymentIn(Model):
    amount: int = Field(gt=0, description="Minor units (poisha, cents)")
    method: str = Field("cash", min_length=1, max_length=20, description="cash, bank, bkash, ...")
    reference: str | None = Field(None, max_length=100, description="Receipt or transaction reference")


# --- operators --------------------------------------------------------------------


class OperatorIn(Model):
    login: str = Field(min_length=1, max_length=64)
    role: str = Field(description="manager, reseller, sub_reseller, noc or card_distributor")
    parent: str | None = Field(None, description="Parent operator (default: you)")
    billing_mode: str = "prepaid"
    credit_limit: int = Field(0, ge=0)
    id_format: str | None = None
    refund_policy: str = "prorated"
    name: str = Field("", max_length=200)


class OperatorOut(Model):
    id: int
    login: str
    name: str
    role: str
    parent: str | None
    billing_mode: str
    credit_limit: int | None = Field(description="Minor units; absent for roles without financial access")
    credit_limit_text: str | None
    fund_balance: int | None
    fund_balance_text: str | None
    refund_policy: str
    id_format: str
    status: str
    permissions: list[str]

    @classmethod
    def of(cls, operator) -> "OperatorOut":
        """From the domain's record, which already hides the money from roles without it."""
        credit, fund = operator.credit_limit, operator.fund_balance
        return cls(
            id=operator.id,
            login=operator.login,
            name=operator.name,
            role=operator.role,
            parent=operator.parent,
            billing_mode=operator.billing_mode,
            credit_limit=credit,
            credit_limit_text=money(credit),
            fund_balance=fund,
            fund_balance_text=money(fund),
            refund_policy=operator.refund_policy,
            id_format=operator.id_format,
            status=operator.status,
            permissions=list(operator.permissions),
        )


class PermissionIn(Model):
    permission: str


class BalanceOut(Model):
    login: str
    billing_mode: str
    credit_limit: int
    fund: int | None = Field(description="Its fund at its parent (none for the admin)")
    available: int | None
    customers: int
    customer_wallets: int
    held_for_children: int
    accounts: dict[str, int] = Field(description="Totals of its book by account code, minor units")
    texts: dict[str, str] = Field(description="The same amounts formatted")


class StatementLineOut(Model):
    day: str | None
    entry: int
    kind: str
    debit: str
    credit: str
    amount: int
    amount_text: str
    memo: str


# --- packages and zones ---------------------------------------------------------


class MasterPackageIn(Model):
    name: str = Field(min_length=1, max_length=100)
    customer_type: str = Field(description="pppoe, hotspot, static or other")
    billing_type: str = Field(description="daily (prepaid) or monthly (postpaid)")
    period_days: int = Field(30, ge=1, le=3660)
    rate_rx: int = Field(gt=0, description="Bits per second the subscriber may upload")
    rate_tx: int = Field(gt=0, description="Bits per second the subscriber may download")
    burst_rx: int | None = None
    burst_tx: int | None = None
    burst_threshold_rx: int | None = None
    burst_threshold_tx: int | None = None
    burst_time_rx: int | None = None
    burst_time_tx: int | None = None
    priority: int | None = Field(None, ge=1, le=8)
    min_rx: int | None = None
    min_tx: int | None = None
    quota_bytes: int | None = Field(None, gt=0)
    fup_rx: int | None = None
    fup_tx: int | None = None
    ip_pool: str | None = None
    profile: str | None = None
    simultaneous_use: int | None = Field(None, ge=1)


class MasterPackageOut(Model):
    id: int
    name: str
    customer_type: str
    billing_type: str
    period_days: int
    rate_rx: int
    rate_tx: int
    quota_bytes: int | None
    simultaneous_use: int


class PackageIn(Model):
    name: str = Field(min_length=1, max_length=100)
    master: str
    customer_price: int = Field(ge=0)
    operator_price: int = Field(ge=0)
    visibility: str = "public"


class AssignIn(Model):
    to: str = Field(description="A direct child reseller or sub-reseller")
    operator_price: int = Field(ge=0)
    customer_price: int | None = Field(None, ge=0)
    visibility: str | None = None


class PackageOut(Model):
    package_id: int
    name: str
    master: str
    customer_type: str
    billing_type: str
    period_days: int
    customer_price: int
    customer_price_text: str
    operator_price: int | None = Field(
        description="What the operator pays its parent; absent for subscribers"
    )
    operator_price_text: str | None
    visibility: str

    @classmethod
    def of(cls, priced, with_operator_price: bool = True) -> "PackageOut":
        operator_price = priced.operator_price if with_operator_price else None
        return cls(
            package_id=priced.package_id,
            name=priced.name,
            master=priced.master,
            customer_type=priced.customer_type,
            billing_type=priced.billing_type,
            period_days=priced.period_days,
            customer_price=priced.customer_price,
            customer_price_text=money(priced.customer_price),
            operator_price=operator_price,
            operator_price_text=money(operator_price),
            visibility=priced.visibility,
        )


class ZoneIn(Model):
    code: str = Field(min_length=1, max_length=20)
    name: str = Field("", max_length=200)
    parent: str | None = None


class ZoneOut(Model):
    code: str
    name: str
    parent: str | None
    operator: str


# --- customers -------------------------------------------------------------------


class CustomerIn(Model):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    package: str
    zone: str | None = None
    mac: str | None = None
    static_ip: str | None = None
    name: str = Field("", max_length=200)
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=400)
    fields: dict[str, str] = {}


class CustomerEdit(Model):
    """Only the fields sent change; "" clears a phone, address, zone, MAC binding or static IP, and a
    custom field given as "" is removed (the others sent are set, those not sent stay). A changed MAC
    binding or static IP disconnects the live session so the next login meets it."""

    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=400)
    zone: str | None = None
    mac: str | None = None
    static_ip: str | None = None
    fields: dict[str, str] | None = None


class CustomerOut(Model):
    username: str
    customer_code: str
    owner: str
    package: str
    status: str
    status_reason: str | None
    expires_at: datetime | None
    wallet_balance: int | None = Field(
        None, description="Minor units; absent for roles without financial access"
    )
    wallet_balance_text: str | None = None
    name: str
    phone: str | None
    address: str | None
    zone: str | None
    static_ip: str | None
    mac_binding: str | None
    custom_fields: dict
    cycle_day: int | None
    created_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, record: dict) -> "CustomerOut":
        return cls(**record, wallet_balance_text=money(record.get("wallet_balance")))


class CustomerPage(Model):
    items: list[CustomerOut]
    next_after: str | None = Field(description="Pass as ?after= for the next page; none at the end")


class RenewIn(Model):
    cash: bool = Field(False, description="The customer paid the price in cash now (else: from its wallet)")


class ChangePackageIn(Model):
    package: str


class AttemptOut(Model):
    authdate: datetime
    reply: str | None
    reason: str | None
    nasipaddress: str | None
    callingstationid: str | None


# --- cards -------------------------------------------------------------------------


class CardBatchIn(Model):
    count: int = Field(ge=1, le=10_000)
    value: int | None = Field(None, gt=0, description="A value card: minor units into the wallet")
    package: str | None = Field(None, description="A package card: one period of this package")
    distributor: str | None = Field(None, description="One of your card distributors, to sell them")


class IssuedCardOut(Model):
    serial: str
    pin: str | None = Field(
        description="Shown in this answer only (stored hashed); null when an Idempotency-Key retry replays it"
    )


class CardBatchOut(Model):
    batch: int
    count: int
    value: int | None
    value_text: str | None
    package: str | None
    distributor: str | None
    cards: list[IssuedCardOut]

    @classmethod
    def of(cls, issued: list[dict], distributor: str | None) -> "CardBatchOut":
        first = issued[0]
        return cls(
            batch=first["batch_id"],
            count=len(issued),
            value=first["value"],
            value_text=money(first["value"]),
            package=first["package"],
            distributor=distributor,
            cards=[IssuedCardOut(serial=card["serial"], pin=card["pin"]) for card in issued],
        )

    @staticmethod
    def without_pins(answer: dict) -> dict:
        return {**answer, "cards": [{**card, "pin": None} for card in answer["cards"]]}


class CardOut(Model):
    """A card as listed: never its PIN, which only the batch's issue answer showed."""

    serial: str
    status: str
    batch: int
    value: int | None
    value_text: str | None = None
    package: str | None
    operator: str
    sale: int | None = Field(None, description="The sale that sold it, if it was sold")
    redeemed_at: datetime | None = None

    @classmethod
    def of(cls, record: dict) -> "CardOut":
        fields = {key: record[key] for key in cls.model_fields if key != "value_text"}
        return cls(**fields, value_text=money(record["value"]))


class CardSaleIn(Model):
    first: str = Field(max_length=40, description="The first card's serial, e.g. 00012-00001")
    last: str | None = Field(
        None, max_length=40, description="The last card's serial (same batch); none: one card"
    )
    buyer: str = Field(min_length=1, max_length=200, description="Who bought them")
    commission: int = Field(0, ge=0, description="Minor units the distributor keeps")
    cash: int | None = Field(None, ge=0, description="The cash received: must be the cards' face value")


class CardSaleOut(Model):
    id: int
    created_at: datetime
    operator: str = Field(description="The issuer, in whose book the sale is")
    distributor: str | None
    buyer: str
    count: int
    first: str
    last: str
    amount: int = Field(description="The cards' face value: the cash the buyer paid")
    amount_text: str
    commission: int
    commission_text: str
    cash_in: int = Field(description="What came in to the issuer: amount less commission")
    cash_in_text: str
    redeemed: int = Field(description="How many of the sold cards are redeemed")
    entry_id: int

    @classmethod
    def of(cls, record: dict) -> "CardSaleOut":
        texts = {f"{key}_text": money(record[key]) for key in ("amount", "commission", "cash_in")}
        return cls(**record, **texts)


class CardVoidOut(Model):
    batch: int
    voided: int = Field(description="Unused, unsold cards voided now")


class RedeemIn(Model):
    pin: str = Field(min_length=1, max_length=40)
    customer: str = Field(description="The customer's username")


class SubscriberRedeemIn(Model):
    pin: str = Field(min_length=1, max_length=40)


# --- what operators read -----------------------------------------------------------


class OnlineOut(Model):
    id: int = Field(description="The session's id, as `radbill session close` takes it")
    username: str
    nas: str
    ip: str | None
    mac: str | None
    started_at: datetime | None
    duration: int | None = Field(description="Seconds since the session started")
    upload_bytes: int
    download_bytes: int
    acct_session_id: str


class InvoiceOut(Model):
    id: int | None = None
    number: str
    username: str | None = None
    owner: str | None = None
    period_start: date
    period_end: date
    amount: int
    amount_text: str
    paid_amount: int
    paid_amount_text: str
    issued_on: date
    due_on: date
    status: str = Field(description="open, overdue (open and past due), paid or void")

    @classmethod
    def of(cls, record: dict) -> "InvoiceOut":
        fields = {key: record[key] for key in cls.model_fields if key in record}
        return cls(
            **fields, amount_text=money(record["amount"]), paid_amount_text=money(record["paid_amount"])
        )


class InvoicePage(Model):
    items: list[InvoiceOut]
    next_after: str | None = Field(description="Pass as ?after= for the next page; none at the end")


def _model_of(name: str, source, leave_out: tuple[str, ...] = ()) -> type[Model]:
    """A response model with the fields of a domain dataclass, so the two never drift apart."""
    return create_model(
        name,
        __base__=Model,
        **{field.name: (field.type, ...) for field in fields(source) if field.name not in leave_out},
    )


# A router job as `radbill enforcement list` shows it, less its payload: the attributes and
# session ids sent to the router are the router's business.
JobOut = _model_of("JobOut", JobRow, leave_out=("payload",))
# A router job of one customer not done yet, as `radbill why` lists it.
PendingJobOut = _model_of("PendingJobOut", PendingJob)


class WhyOut(Model):
    """`radbill why`: what the next login would get now, and the evidence."""

    username: str
    answer: str = Field(
        description="Access-Accept or Access-Reject: radiusd's answer to a login with the right password now"
    )
    reason: str = Field(description="radiusd's reason (a reject reason, or ok, fup, expired_restricted)")
    message: str = Field(description="The Reply-Message the subscriber would be shown")
    device: str | None = Field(
        description="The device (Calling-Station-Id) the login is assumed to come from"
    )
    attributes: list[tuple[str, str]] = Field(
        description="What the router would be told (binary values in hex)"
    )
    attempts: list[AttemptOut]
    sessions: list[OnlineOut]
    jobs: list[PendingJobOut]

    @classmethod
    def of(cls, found) -> "WhyOut":
        decision = found.decision
        return cls(
            username=found.username,
            answer="Access-Accept" if decision.accept else "Access-Reject",
            reason=decision.reason,
            message=decision.message,
            device=found.device,
            attributes=[
                (name, value.hex() if isinstance(value, bytes) else str(value))
                for name, value in decision.attributes
            ],
            attempts=[AttemptOut(**row) for row in found.attempts],
            sessions=[OnlineOut(**vars(session)) for session in found.sessions],
            jobs=[PendingJobOut(**vars(job)) for job in found.jobs],
        )


class BillingRunOut(Model):
    day: date
    started_at: datetime
    finished_at: datetime | None
    customers_charged: int
    customers_suspended: int | None = Field(description="The whole ISP's; absent for a seller")
    amount_charged: int
    amount_charged_text: str


# --- subscribers ---------------------------------------------------------------------


class ProfileOut(Model):
    username: str
    customer_code: str
    name: str
    phone: str | None
    address: str | None
    package: str
    billing_type: str
    status: str
    status_reason: str | None
    expires_at: datetime | None
    seconds_left: int | None = Field(description="Until expiry; 0 when expired")
    wallet_balance: int
    wallet_balance_text: str


class UsageOut(Model):
    period_start: date
    upload_bytes: int
    download_bytes: int
    quota_bytes: int | None
    remaining_bytes: int | None


class PaymentOut(Model):
    id: int
    amount: int
    amount_text: str
    method: str
    reference: str | None
    created_at: datetime


class BuyIn(Model):
    package: str = Field(description="Your package (one more period) or another public one (switch now)")
