"""Every table of radbill in one place (SQLAlchemy Core).

Conventions:
- money is BIGINT minor units (poisha, cents), never a float;
- instants are timezone-aware UTC; calendar days are DATE in the operator time zone;
- byte counters are BIGINT and named upload/download from the subscriber's side;
- status and kind columns are short strings guarded by CHECK constraints, so
  both SQLite and PostgreSQL refuse an impossible value.

The Alembic migrations in ``schema/migrations`` must produce exactly this
metadata; ``tests/test_migrations.py`` proves it on both databases.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Column widths the domain checks input against before writing.
ID_FORMAT_LENGTH, CUSTOMER_CODE_LENGTH, ZONE_CODE_LENGTH = 100, 64, 20
# The one definition of each enumerated value: the tables' CHECKs, the domain's
# validation and the CLI's choices all import these.
ROLES = ("admin", "manager", "reseller", "sub_reseller", "noc", "card_distributor")
BILLING_MODES = ("prepaid", "postpaid")
REFUND_POLICIES = ("none", "prorated")
OPERATOR_STATUSES = ("active", "blocked")
MESSAGE_AUTHENTICATOR_POLICIES = ("yes", "no", "auto")
CUSTOMER_TYPES = ("pppoe", "hotspot", "static", "other")
BILLING_TYPES = ("daily", "monthly")
VISIBILITIES = ("public", "private")
CUSTOMER_STATUSES = ("active", "suspended", "disabled")
ACCOUNT_KINDS = ("asset", "liability", "equity", "income", "expense")
INVOICE_STATUSES = ("open", "paid", "void")
CARD_STATUSES = ("new", "redeemed", "void")
JOB_ACTIONS = ("disconnect", "coa", "api_disable", "api_enable")
JOB_STATUSES = ("pending", "done", "failed")
CHANGE_ENTITIES = ("customer", "nas", "operator", "package", "master_package", "package_price", "sessions")
# customers.status_reason when billing suspends a customer: it did not pay
# (its wallet could not pay the day, or an invoice is overdue), or an operator
# above it could not pay its parent. radiusd treats "did not pay" as expiry,
# so the expired-subscriber policy (reject or restrict) applies.
SUSPENDED_EXPIRED, SUSPENDED_OVERDUE, SUSPENDED_OPERATOR_FUND = "expired", "overdue", "operator_fund"
UNPAID_REASONS = (SUSPENDED_EXPIRED, SUSPENDED_OVERDUE)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


def _created_at() -> Column:
    return Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )


def _money(name: str, **kwargs) -> Column:
    kwargs.setdefault("nullable", False)
    if not kwargs["nullable"]:
        kwargs.setdefault("server_default", text("0"))
    return Column(name, BigInteger, **kwargs)


# --- operators and their rights -------------------------------------------

operators = Table(
    "operators",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("login", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("role", String(20), nullable=False),
    Column("parent_id", ForeignKey("operators.id"), index=True),
    Column("billing_mode", String(10), nullable=False, server_default="prepaid"),
    _money("credit_limit"),
    Column("refund_policy", String(10), nullable=False, server_default="prorated"),
    Column("id_format", String(ID_FORMAT_LENGTH), nullable=False, server_default="{seq:05d}"),
    Column("id_sequence", BigInteger, nullable=False, server_default=text("0")),
    Column("status", String(10), nullable=False, server_default="active"),
    Column("phone", String(40)),
    Column("email", String(200)),
    # Argon2id hash of the operator's API/panel password; NULL: no password, no login.
    Column("password_hash", String(200)),
    # Cached balance of the operator's fund held by its parent (negative:
    # payable when postpaid); the ledger is the truth, `ledger verify` checks it.
    _money("fund_balance"),
    _created_at(),
    _one_of("role", ROLES, "role"),
    _one_of("billing_mode", BILLING_MODES, "billing_mode"),
    _one_of("refund_policy", REFUND_POLICIES, "refund_policy"),
    _one_of("status", OPERATOR_STATUSES, "status"),
    CheckConstraint("credit_limit >= 0", name="credit_limit"),
)

permissions = Table(
    "permissions",
    metadata,
    Column("operator_id", ForeignKey("operators.id"), primary_key=True),
    Column("permission", String(64), primary_key=True),
    Column("granted_by", ForeignKey("operators.id")),
    _created_at(),
)

zones = Table(
    "zones",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("parent_id", ForeignKey("zones.id")),
    Column("code", String(ZONE_CODE_LENGTH), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    _created_at(),
    UniqueConstraint("operator_id", "code"),
)

# --- routers -----------------------------------------------------------------

nas = Table(
    "nas",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("ip_address", String(45), nullable=False, unique=True),
    Column("secret", String(128), nullable=False),
    Column("coa_port", Integer, nullable=False, server_default=text("3799")),
    Column("api_host", String(255)),
    Column("api_port", Integer),
    Column("api_user", String(64)),
    Column("api_password", String(128)),
    Column("api_tls", Boolean, nullable=False, server_default=text("false")),
    # api-ssl: the router's certificate is checked against this CA file, or its
    # SHA-256 fingerprint, or the system's CAs; api_tls_verify false opts out.
    Column("api_tls_ca_file", String(255)),
    Column("api_tls_fingerprint", String(64)),
    Column("api_tls_verify", Boolean, nullable=False, server_default=text("true")),
    Column("require_message_authenticator", String(4), nullable=False, server_default="auto"),
    # RFC 3579 "auto": once a NAS has sent a Message-Authenticator it must
    # always send one. Stored so the rule survives a restart.
    Column("message_authenticator_seen", Boolean, nullable=False, server_default=text("false")),
    Column("operator_id", ForeignKey("operators.id")),
    Column("description", String(200), nullable=False, server_default=""),
    _created_at(),
    _one_of("require_message_authenticator", MESSAGE_AUTHENTICATOR_POLICIES, "require_message_authenticator"),
    CheckConstraint("coa_port BETWEEN 1 AND 65535", name="coa_port"),
)

# --- packages and prices -------------------------------------------------------

master_packages = Table(
    "master_packages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("customer_type", String(10), nullable=False),
    Column("billing_type", String(10), nullable=False),
    Column("period_days", Integer, nullable=False, server_default=text("30")),
    # Rates in bits per second; rx is the subscriber's upload (MikroTik's view).
    Column("rate_rx", BigInteger, nullable=False),
    Column("rate_tx", BigInteger, nullable=False),
    Column("burst_rx", BigInteger),
    Column("burst_tx", BigInteger),
    Column("burst_threshold_rx", BigInteger),
    Column("burst_threshold_tx", BigInteger),
    Column("burst_time_rx", Integer),
    Column("burst_time_tx", Integer),
    Column("priority", Integer),
    Column("min_rx", BigInteger),
    Column("min_tx", BigInteger),
    Column("quota_bytes", BigInteger),
    Column("fup_rx", BigInteger),
    Column("fup_tx", BigInteger),
    Column("ip_pool", String(64)),
    Column("profile", String(64)),
    Column("address_list", String(64)),
    Column("simultaneous_use", Integer, nullable=False, server_default=text("1")),
    _created_at(),
    UniqueConstraint("operator_id", "name"),
    _one_of("customer_type", CUSTOMER_TYPES, "customer_type"),
    _one_of("billing_type", BILLING_TYPES, "billing_type"),
    CheckConstraint("period_days > 0", name="period_days"),
    CheckConstraint("rate_rx > 0 AND rate_tx > 0", name="rate"),
    CheckConstraint("priority IS NULL OR priority BETWEEN 1 AND 8", name="priority"),
    CheckConstraint("quota_bytes IS NULL OR quota_bytes > 0", name="quota_bytes"),
    CheckConstraint("simultaneous_use > 0", name="simultaneous_use"),
)

packages = Table(
    "packages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("master_package_id", ForeignKey("master_packages.id"), nullable=False),
    Column("name", String(100), nullable=False),
    _created_at(),
    UniqueConstraint("operator_id", "name"),
)

# Who may sell a package, and at what prices: the operator pays its parent
# operator_price per period and charges its customers customer_price.
package_prices = Table(
    "package_prices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("package_id", ForeignKey("packages.id"), nullable=False),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    _money("customer_price"),
    _money("operator_price"),
    Column("visibility", String(10), nullable=False, server_default="public"),
    Column("assigned_by", ForeignKey("operators.id")),
    _created_at(),
    UniqueConstraint("package_id", "operator_id"),
    _one_of("visibility", VISIBILITIES, "visibility"),
    CheckConstraint("customer_price >= 0 AND operator_price >= 0", name="prices"),
)

# A price list row's new prices from a day on (`package set --from`): applied in day order,
# by the daily run of that day (or at once when every earlier day is run), never to past days.
package_price_changes = Table(
    "package_price_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("price_id", ForeignKey("package_prices.id"), nullable=False, index=True),
    Column("effective_on", Date, nullable=False),
    _money("customer_price", nullable=True),
    _money("operator_price", nullable=True),
    Column("created_by", ForeignKey("operators.id")),
    _created_at(),
    Column("applied_at", DateTime(timezone=True)),
)

# A master package's new spec from a day on (`master-package set --from`): the fields it
# changes (rates, quota, pool, profile, simultaneous use), applied like a price change.
master_package_changes = Table(
    "master_package_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("master_package_id", ForeignKey("master_packages.id"), nullable=False, index=True),
    Column("effective_on", Date, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_by", ForeignKey("operators.id")),
    _created_at(),
    Column("applied_at", DateTime(timezone=True)),
)

# --- subscribers -----------------------------------------------------------

# On PostgreSQL the migration gives customers fillfactor 50: the daily run
# updates every daily customer's wallet and expiry, and free room in the page
# keeps those updates HOT (heap-only, no index writes).

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False, index=True),
    # One global, case-insensitive namespace: stored lower-cased.
    Column("username", String(64), nullable=False, unique=True),
    # Reversible, because CHAP and MS-CHAP need the cleartext (or NT hash).
    Column("password", String(128), nullable=False),
    Column("customer_code", String(CUSTOMER_CODE_LENGTH), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("phone", String(40)),
    Column("address", String(400)),
    Column("zone_id", ForeignKey("zones.id")),
    Column("package_id", ForeignKey("packages.id"), nullable=False),
    Column("status", String(10), nullable=False, server_default="active"),
    Column("status_reason", String(200)),
    Column("expires_at", DateTime(timezone=True)),
    _money("wallet_balance"),
    Column("static_ip", String(45), unique=True),
    Column("mac_binding", String(17)),
    Column("custom_fields", JSON, nullable=False, server_default=text("'{}'")),
    # The day of month a postpaid customer's invoice is cut.
    Column("cycle_day", Integer),
    # Day 0 of the daily price split for pay-as-you-go days (operator time zone).
    Column("billing_anchor", Date),
    _created_at(),
    Column("deleted_at", DateTime(timezone=True)),
    _one_of("status", CUSTOMER_STATUSES, "status"),
    CheckConstraint("cycle_day IS NULL OR cycle_day BETWEEN 1 AND 28", name="cycle_day"),
)

# What a customer search looks in: username, name, phone and customer ID as one text (a newline
# between them, which no search contains, so a match never spans two fields). On PostgreSQL a
# trigram index (pg_trgm, created by the migration) answers ILIKE '%part%' on it without reading
# the table; SQLite scans, which is fast enough at its sizes.
_NEWLINE, _EMPTY = literal_column("'\n'"), literal_column("''")
# Written as PostgreSQL prints it back (each || in parentheses), so Alembic can compare the index.
customer_search_text = customers.c.username
for _part in (customers.c.name, func.coalesce(customers.c.phone, _EMPTY), customers.c.customer_code):
    customer_search_text = customer_search_text.op("||")(_NEWLINE).op("||")(_part)
# The dashboard's figures about an operator's customers (who is online, what a day of them
# costs) read this index alone (an index-only scan on PostgreSQL): for the admin all of it, for an
# operator the range of its subtree's operator ids. No index holds expires_at (revision 0019): the
# daily run moves every daily customer's expiry, and that update is HOT only while no index
# holds a column it changes (see the fillfactor above).
Index(
    "ix_customers_states",
    customers.c.operator_id,
    customers.c.status,
    postgresql_include=["status_reason", "deleted_at", "id", "package_id"],
)
Index(
    "ix_customers_search_trgm",
    customer_search_text.label("search_text"),
    postgresql_using="gin",
    postgresql_ops={"search_text": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

# Volume used per customer per billing period, for quotas and fair usage.
customer_usage = Table(
    "customer_usage",
    metadata,
    Column("customer_id", ForeignKey("customers.id"), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("upload_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("download_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("quota_enforced_at", DateTime(timezone=True)),
)

# A ledger entry's id (the column type of every reference to one).
_ENTRY_ID = BigInteger().with_variant(Integer, "sqlite")

# Days on which a customer's service was enabled and charged (daily runs and
# proration count these; a day is charged at most once). No foreign keys: the
# daily run writes a row per customer, and PostgreSQL checks a key per row
# (revision 0017); ``radbill ledger verify`` reports a day whose customer or
# entry does not exist.
customer_days = Table(
    "customer_days",
    metadata,
    Column("customer_id", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    _money("amount"),
    Column("entry_id", _ENTRY_ID),
)

# customer_days summed per day and owning operator: what the dashboard's 30-day chart reads
# (30 rows per operator instead of a month of customer days). Kept by triggers on customer_days
# (revision 0016), so every writer keeps it right; ``radbill ledger verify`` checks it.
customer_day_totals = Table(
    "customer_day_totals",
    metadata,
    Column("day", Date, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), primary_key=True),
    Column("customers", Integer, nullable=False, server_default=text("0")),
    _money("amount"),
)

# Live customers counted per operator and standing: in service (status active, whether or not its
# paid time has lapsed), unpaid (suspended for not paying) or suspended (any other suspension, or
# disabled). What the dashboard's state counts read instead of every customer. Kept by triggers on
# customers (revision 0018), so every writer keeps it right; ``radbill ledger verify`` checks it.
CUSTOMER_STANDINGS = ("in_service", "unpaid", "suspended")
customer_state_totals = Table(
    "customer_state_totals",
    metadata,
    Column("operator_id", ForeignKey("operators.id"), primary_key=True),
    Column("standing", String(10), primary_key=True),
    Column("customers", Integer, nullable=False, server_default=text("0")),
    _one_of("standing", CUSTOMER_STANDINGS, "standing"),
)
# PostgreSQL's triggers note here the standings an UPDATE statement changed, row by row, and fold
# them into customer_state_totals when the statement ends (revision 0018 says why): empty between
# statements. Nothing else reads or writes it.
customer_state_changes = Table(
    "customer_state_changes",
    metadata,
    Column("operator_id", Integer, nullable=False),
    Column("standing", String(10), nullable=False),
    Column("change", Integer, nullable=False),
)

# What a prepaid operator paid at the start of a monthly customer's cycle for
# its days (the first cycle prorated); the invoice of those days settles it:
# the level gets back the advance and pays its price for the enabled days.
monthly_advances = Table(
    "monthly_advances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("period_start", Date, nullable=False),
    _money("amount"),
    Column("entry_id", ForeignKey("ledger_entries.id"), nullable=False),
    Column("settled_entry_id", ForeignKey("ledger_entries.id")),
    Index("ix_monthly_advances_open", "customer_id", "settled_entry_id"),
)

# --- the ledger: append-only, double-entry, one book per operator -------------

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    # The book: every account belongs to exactly one operator's books.
    Column("book_operator_id", ForeignKey("operators.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    # Set on the account that tracks money owed to or by another operator,
    # or a customer's wallet.
    Column("counterparty_operator_id", ForeignKey("operators.id")),
    Column("customer_id", ForeignKey("customers.id"), index=True),
    _created_at(),
    UniqueConstraint("book_operator_id", "code"),
    _one_of("kind", ACCOUNT_KINDS, "kind"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _ENTRY_ID, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("memo", String(400), nullable=False, server_default=""),
    Column("actor_operator_id", ForeignKey("operators.id")),
    Column("customer_id", ForeignKey("customers.id"), index=True),
    Column("reverses_entry_id", ForeignKey("ledger_entries.id")),
    # Makes runs idempotent: "daily:2026-11-24:customer:42" is posted once.
    Column("idempotency_key", String(128), unique=True),
    Column("effective_on", Date),
    _created_at(),
)

# One row per movement of money within one book: balanced by construction.
# No foreign keys, for the daily run's line per customer (see customer_days); the
# entries and accounts a line names are append-only, and ``radbill ledger verify``
# reports a line whose entry or account does not exist.
ledger_lines = Table(
    "ledger_lines",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("entry_id", _ENTRY_ID, nullable=False, index=True),
    Column("book_operator_id", Integer, nullable=False),
    Column("debit_account_id", Integer, nullable=False, index=True),
    Column("credit_account_id", Integer, nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(40), nullable=False, unique=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, index=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    _money("amount"),
    _money("paid_amount"),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("status", String(10), nullable=False, server_default="open"),
    Column("entry_id", ForeignKey("ledger_entries.id")),
    _created_at(),
    UniqueConstraint("customer_id", "period_start"),
    _one_of("status", INVOICE_STATUSES, "status"),
    CheckConstraint("paid_amount >= 0 AND paid_amount <= amount", name="paid_amount"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    # Either a customer paying its owner, or an operator paying its parent.
    Column("customer_id", ForeignKey("customers.id"), index=True),
    Column("payer_operator_id", ForeignKey("operators.id")),
    Column("payee_operator_id", ForeignKey("operators.id"), nullable=False),
    Column("invoice_id", ForeignKey("invoices.id")),
    _money("amount"),
    Column("method", String(20), nullable=False, server_default="cash"),
    Column("reference", String(100)),
    Column("entry_id", ForeignKey("ledger_entries.id")),
    Column("created_by", ForeignKey("operators.id")),
    _created_at(),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint("customer_id IS NOT NULL OR payer_operator_id IS NOT NULL", name="payer"),
    # A payment reference (a bank or mobile-money transaction id) is recorded once per method and payer.
    Index("ix_payments_customer_reference", "method", "reference", "customer_id", unique=True),
    Index("ix_payments_operator_reference", "method", "reference", "payer_operator_id", unique=True),
    # Today's collections on the dashboard.
    Index("ix_payments_created_at", "created_at"),
)

# --- recharge cards -----------------------------------------------------------

card_batches = Table(
    "card_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("distributor_id", ForeignKey("operators.id")),
    _money("value", nullable=True),
    Column("package_id", ForeignKey("packages.id")),
    Column("count", Integer, nullable=False),
    Column("created_by", ForeignKey("operators.id")),
    # Which card PIN key hashed its PINs (an HMAC of a fixed text): every process must use the same key.
    # Always written; nullable only so that SQLite adds it without rebuilding a table others refer to.
    Column("pin_key_id", String(16)),
    _created_at(),
    CheckConstraint("(value IS NULL) <> (package_id IS NULL)", name="value_or_package"),
    CheckConstraint("count > 0", name="count"),
)

recharge_cards = Table(
    "recharge_cards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", ForeignKey("card_batches.id"), nullable=False, index=True),
    Column("serial", String(32), nullable=False, unique=True),
    # HMAC-SHA256 of the PIN under the card PIN key (kept outside the database): the PIN is shown once, at issue.
    Column("pin_hash", String(64), nullable=False, unique=True),
    Column("status", String(10), nullable=False, server_default="new"),
    Column("redeemed_by_customer_id", ForeignKey("customers.id")),
    Column("redeemed_at", DateTime(timezone=True)),
    Column("entry_id", ForeignKey("ledger_entries.id")),
    _one_of("status", CARD_STATUSES, "status"),
)

# A distributor (or the issuer) sold cards for cash: the cards' face value, less the
# commission the distributor keeps, came in as the issuer's cash.
card_sales = Table(
    "card_sales",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False, index=True),
    Column("distributor_id", ForeignKey("operators.id"), index=True),
    Column("buyer", String(200), nullable=False),
    Column("count", Integer, nullable=False),
    _money("amount"),
    _money("commission"),
    Column("entry_id", ForeignKey("ledger_entries.id"), nullable=False),
    Column("created_by", ForeignKey("operators.id")),
    _created_at(),
    CheckConstraint("count > 0", name="count"),
    CheckConstraint("commission >= 0 AND commission <= amount", name="commission"),
)

# Which cards a sale sold, each at its face value then: a card is sold once.
card_sale_items = Table(
    "card_sale_items",
    metadata,
    Column("card_id", ForeignKey("recharge_cards.id"), primary_key=True),
    Column("sale_id", ForeignKey("card_sales.id"), nullable=False, index=True),
    _money("value"),
)

# --- sessions and accounting --------------------------------------------------

# On PostgreSQL sessions, radacct and customer_usage have fillfactor 70 (revision 0020): every
# Interim-Update rewrites a row of each, and room in the page keeps those updates HOT.

# radbill's own view of a session: open ones count towards simultaneous use.
sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("acct_unique_id", String(32), nullable=False, unique=True),
    Column("acct_session_id", String(64), nullable=False),
    Column("nas_id", ForeignKey("nas.id")),
    Column("nas_ip_address", String(45), nullable=False),
    Column("customer_id", ForeignKey("customers.id")),
    Column("username", String(64), nullable=False),
    Column("framed_ip_address", String(45)),
    Column("calling_station_id", String(50)),
    Column("nas_port_id", String(50)),
    Column("started_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("stopped_at", DateTime(timezone=True)),
    Column("upload_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("download_bytes", BigInteger, nullable=False, server_default=text("0")),
    Column("terminate_cause", String(32)),
    # The rest of the session's state, also in radacct, kept here so the
    # accounting writer reads one table (radacct is written, never read back).
    Column("session_time", BigInteger),
    Column("interim_interval", BigInteger),
    Column("connect_info_start", Text),
    Column("connect_info_stop", Text),
    Index("ix_sessions_open_customer", "customer_id", "stopped_at"),
    Index("ix_sessions_open_nas", "nas_ip_address", "stopped_at"),
    # Who is online now (the dashboard), without reading the closed sessions of the past.
    Index(
        "ix_sessions_online",
        "customer_id",
        postgresql_where=text("stopped_at IS NULL"),
        sqlite_where=text("stopped_at IS NULL"),
    ),
)

# FreeRADIUS's accounting table, column for column, so its tooling reads ours.
radacct = Table(
    "radacct",
    metadata,
    Column("radacctid", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("acctsessionid", Text, nullable=False),
    Column("acctuniqueid", Text, nullable=False, unique=True),
    Column("username", Text),
    Column("realm", Text),
    Column("nasipaddress", String(45), nullable=False),
    Column("nasportid", Text),
    Column("nasporttype", Text),
    Column("acctstarttime", DateTime(timezone=True)),
    Column("acctupdatetime", DateTime(timezone=True)),
    Column("acctstoptime", DateTime(timezone=True)),
    Column("acctinterval", BigInteger),
    Column("acctsessiontime", BigInteger),
    Column("acctauthentic", Text),
    Column("connectinfo_start", Text),
    Column("connectinfo_stop", Text),
    Column("acctinputoctets", BigInteger),
    Column("acctoutputoctets", BigInteger),
    Column("calledstationid", Text),
    Column("callingstationid", Text),
    Column("acctterminatecause", Text),
    Column("servicetype", Text),
    Column("framedprotocol", Text),
    Column("framedipaddress", String(45)),
    Column("framedipv6address", String(45)),
    Column("framedipv6prefix", String(45)),
    Column("framedinterfaceid", Text),
    Column("delegatedipv6prefix", String(45)),
    Column("class", Text),
    Index("ix_radacct_username", "username"),
    Index("ix_radacct_open", "nasipaddress", "acctstoptime"),
    Index("ix_radacct_acctstarttime", "acctstarttime"),
)

# FreeRADIUS's post-auth log, plus the reason label radbill adds.
radpostauth = Table(
    "radpostauth",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("username", Text, nullable=False),
    Column("pass", Text),
    Column("reply", Text),
    Column("reason", String(32)),
    Column("nasipaddress", String(45)),
    Column("callingstationid", Text),
    Column("class", Text),
    Column("authdate", DateTime(timezone=True), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    Index("ix_radpostauth_username_authdate", "username", "authdate"),
    # billingd deletes the rows older than [billingd] postauth_days.
    Index("ix_radpostauth_authdate", "authdate"),
)

# --- plumbing between the parts ---------------------------------------------------

# Jobs for nas/: disconnect, CoA, RouterOS API calls. Written in the same
# transaction as the change that needs them (transactional outbox).
enforcement_jobs = Table(
    "enforcement_jobs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), index=True),
    Column("nas_id", ForeignKey("nas.id")),
    Column("action", String(20), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("payload", JSON, nullable=False, server_default=text("'{}'")),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("not_before", DateTime(timezone=True)),
    Column("last_error", Text),
    # "quota:42:2026-11-01" keeps an enforcement from being queued twice.
    Column("dedupe_key", String(128), unique=True),
    _created_at(),
    Column("done_at", DateTime(timezone=True)),
    Index("ix_enforcement_jobs_pending", "status", "not_before"),
    _one_of("action", JOB_ACTIONS, "action"),
    _one_of("status", JOB_STATUSES, "status"),
)

# SMS notices to send (billingd/notices.py): an outbox like enforcement_jobs;
# dedupe_key names the cause, so one cause is told once.
notice_outbox = Table(
    "notice_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("operator_id", ForeignKey("operators.id")),
    Column("customer_id", ForeignKey("customers.id")),
    Column("phone", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Column("dedupe_key", String(160), nullable=False, unique=True),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("not_before", DateTime(timezone=True)),
    Column("last_error", Text),
    _created_at(),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_notice_outbox_pending", "status", "not_before"),
    _one_of("kind", ("broadcast", "expiry", "low_wallet"), "kind"),
    _one_of("status", ("pending", "sent", "failed"), "status"),
)

# A monotonic feed of "this row changed": radiusd's cache follows it.
change_log = Table(
    "change_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("entity", String(20), nullable=False),
    Column("entity_id", BigInteger, nullable=False),
    _created_at(),
    # "sessions": the customer's open sessions changed (counted for simultaneous use).
    _one_of("entity", CHANGE_ENTITIES, "entity"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("actor_operator_id", ForeignKey("operators.id")),
    Column("acting_as_operator_id", ForeignKey("operators.id")),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32)),
    Column("target_id", BigInteger),
    Column("details", JSON, nullable=False, server_default=text("'{}'")),
    _created_at(),
)

# The day each scheduled run last completed, so missed days are caught up.
billing_runs = Table(
    "billing_runs",
    metadata,
    Column("day", Date, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("customers_charged", Integer, nullable=False, server_default=text("0")),
    Column("customers_suspended", Integer, nullable=False, server_default=text("0")),
    _money("amount_charged"),
)


# --- credentials of the API (billingd/credentials.py) --------------------------

# One row per login: an operator's, an operator's acting as a descendant
# ("login as"), or a subscriber's. The refresh token is stored as its SHA-256
# only; refreshing rotates it (the previous hash is kept to detect a replayed
# one); access tokens name the session, so revoking it ends them at once.
auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), index=True),
    Column("acting_as_operator_id", ForeignKey("operators.id")),
    Column("customer_id", ForeignKey("customers.id"), index=True),
    Column("refresh_hash", String(64), nullable=False, unique=True),
    Column("previous_hash", String(64), index=True),
    Column("client_address", String(45)),
    _created_at(),
    Column("refreshed_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("(operator_id IS NULL) <> (customer_id IS NULL)", name="subject"),
)

# Long-lived bearer tokens for integrations, scoped to one operator, shown once.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", ForeignKey("operators.id")),
    _created_at(),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# Failed logins per login name and per client address, for throttling.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("scope", String(10), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("window_started_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    _one_of("scope", ("login", "address"), "scope"),
)

# The answer to a POST carrying an Idempotency-Key, stored in the request's
# own transaction, so a retry gets the same answer and the work is done once.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(40), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    _created_at(),
)
