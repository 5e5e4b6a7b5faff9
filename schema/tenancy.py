"""Who is acting, and what they may see and change: every rule, decided here once.

Every domain function takes an :class:`Actor`; no front end (CLI, API)
decides anything about permissions. The rules (the README's permission
table says the same in words):

- an operator sees its own customers and its descendants'; the admin side
  (the admin and the admin's staff) sees all;
- it changes only its own, unless it holds ``manage_descendants``;
- staff (manager, NOC, card distributor) work for their parent, the "home"
  operator whose customers and books they see; a manager needs a permission
  for each kind of work; NOC users never see or move money; card
  distributors only list the cards given to them;
- routers, billing runs and the ledger are the ISP's: only the admin side;
- an operator that is blocked, or has a blocked operator above it, can do
  nothing, and neither can its staff;
- ``--as LOGIN`` (act as) is for the admin towards anyone, and for a reseller,
  sub-reseller or a manager with ``operators`` towards strict descendants of
  its home that are not its home's staff; the result never has more rights
  than the caller (a manager acting as a reseller keeps its own permission
  limits), and it is audited;
- nobody grants a permission it does not hold itself.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from schema.audit import audit
from schema.errors import Forbidden, NotFound, RadbillError
from schema.tables import operators, permissions

STAFF_ROLES = ("manager", "noc", "card_distributor")
SELLING_ROLES = ("admin", "reseller", "sub_reseller")

# Permissions an operator can be granted (`radbill operator permit`), and the roles each fits.
PERMISSIONS = {
    "reseller_module": "may create sub-resellers under itself",
    "manage_descendants": "may change the customers of its descendants, not only its own",
    "customers": "manager: may add and change customers (with finance when that moves money)",
    "finance": "manager: may see and move money (balances, funds, payments, renewals, runs, ledger)",
    "packages": "manager: may add packages and assign prices",
    "operators": "manager: may add, block and permit operators, and act as them",
    "cards": "manager: may create and list recharge cards",
    "network": "admin's manager: may add and change routers",
}
PERMISSION_ROLES = {
    "reseller_module": ("reseller", "sub_reseller"),
    "manage_descendants": ("reseller", "sub_reseller", "manager"),
    "customers": ("manager",),
    "finance": ("manager",),
    "packages": ("manager",),
    "operators": ("manager",),
    "cards": ("manager",),
    "network": ("manager",),
}

# What each action needs from a manager; other roles are decided by role.
_MANAGER_NEEDS = {
    "customers.change": "customers",
    "money": "finance",
    "packages.change": "packages",
    "operators.change": "operators",
    "cards": "cards",
    "cards.sell": "cards",
    "sessions.close": "customers",
    "network.change": "network",
    "enforce": "network",
    "billing.run": "finance",
    "ledger": "finance",
    "passwords": "customers",
}
# Actions only the admin side (the admin and its staff) may take: the ISP's own things.
_ADMIN_SIDE_ONLY = ("network.view", "network.change", "billing.run", "ledger", "passwords")
_NOC_MAY = ("customers.view", "network.view", "enforce", "sessions.close")


@dataclass(frozen=True)
class Actor:
    """The operator a command runs as, and who really typed it."""

    id: int
    login: str
    role: str
    home_id: int  # whose customers, packages and books this actor works on
    caller_id: int  # differs from id under --as
    permissions: frozenset[str]
    home_is_root: bool  # the admin, or staff working for the admin
    ceiling: "Actor | None" = None  # under --as: the caller, whose limits still apply

    @property
    def is_admin(self) -> bool:
        """Sees everything: the admin and the admin's own staff."""
        return self.home_is_root

    def may(self, action: str) -> bool:
        """Role-level permission for an action, before any tenancy check."""
        if self.ceiling is not None and not self.ceiling.may(action):
            return False
        if action in _ADMIN_SIDE_ONLY and not self.is_admin:
            return False
        if self.role == "admin":
            return True
        if self.role == "noc":
            return action in _NOC_MAY
        if self.role == "card_distributor":
            return action in ("cards.view", "cards.sell")
        if self.role == "manager":
            needed = _MANAGER_NEEDS.get(action)
            return needed is None or needed in self.permissions
        return True  # resellers and sub-resellers: their own business, limited by tenancy below

    def holds(self, permission: str) -> bool:
        """Whether the actor has this permission itself (so that it may grant it)."""
        if self.ceiling is not None and not self.ceiling.holds(permission):
            return False
        if self.role == "admin":
            return True
        if permission in ("reseller_module", "manage_descendants"):
            return permission in self.permissions
        if self.role == "manager":
            return permission in self.permissions
        return self.role in ("reseller", "sub_reseller") and permission != "network"

    def require(self, action: str, what: str) -> None:
        if not self.may(action):
            if action == "money" and self.role in ("noc", "card_distributor"):
                raise Forbidden(f"{self.login} ({self.role}) has no financial access: cannot {what}")
            if action in _ADMIN_SIDE_ONLY and not self.is_admin:
                raise Forbidden(f"{self.login} may not {what}: only the admin side may")
            raise Forbidden(f"{self.login} ({self.role}) is not allowed to {what}")


def operator_row(connection: Connection, login: str):
    """The operator's row by login, or the one error every command gives for an unknown login."""
    row = connection.execute(select(operators).where(operators.c.login == login)).mappings().first()
    if row is None:
        raise NotFound(f"no operator {login!r}")
    return row


@dataclass(frozen=True)
class _Operator:
    id: int
    parent_id: int | None
    login: str
    role: str
    status: str
    permissions: frozenset[str]


class OperatorTree:
    """Every operator with its parent, status and permissions, read in one query (operators are few):
    an actor is resolved, its chain checked and its reach found without another round trip."""

    def __init__(self, connection: Connection):
        found: dict[int, tuple] = {}
        granted: dict[int, set[str]] = {}
        for row in connection.execute(
            select(
                operators.c.id,
                operators.c.parent_id,
                operators.c.login,
                operators.c.role,
                operators.c.status,
                permissions.c.permission,
            ).select_from(operators.outerjoin(permissions, permissions.c.operator_id == operators.c.id))
        ):
            found[row.id] = row[:5]
            granted.setdefault(row.id, set()).update([row.permission] if row.permission else [])
        self.by_id = {key: _Operator(*row, frozenset(granted[key])) for key, row in found.items()}
        self._by_login = {node.login: node for node in self.by_id.values()}
        self.parents = {key: node.parent_id for key, node in self.by_id.items()}

    def named(self, login: str) -> _Operator:
        """The operator by login, or the one error every command gives for an unknown login."""
        if login not in self._by_login:
            raise NotFound(f"no operator {login!r}")
        return self._by_login[login]

    def blocked_in_chain(self, operator_id: int) -> str | None:
        chain = ancestry(self.parents, operator_id)
        return next(
            (self.by_id[found].login for found in chain if self.by_id[found].status != "active"), None
        )

    def descendants(self, operator_id: int) -> set[int]:
        return {other for other in self.parents if operator_id in ancestry(self.parents, other)}


def blocked_in_chain(connection: Connection, operator_id: int) -> str | None:
    """The login of the first blocked operator from this one up to the admin, or None.

    A blocked operator stops everywhere (FIELD-NOTES 30): its staff and its
    descendants cannot act, log in or refresh a token either.
    """
    return OperatorTree(connection).blocked_in_chain(operator_id)


def _require_unblocked(tree: OperatorTree, node: _Operator) -> None:
    blocked = tree.blocked_in_chain(node.id)
    if blocked == node.login:
        raise Forbidden(f"operator {node.login!r} is blocked")
    if blocked is not None:
        raise Forbidden(f"operator {node.login!r} works under {blocked!r}, which is blocked")


def _actor_from(tree: OperatorTree, node: _Operator, caller_id: int, ceiling: Actor | None = None) -> Actor:
    home_id = node.parent_id if node.role in STAFF_ROLES and node.parent_id is not None else node.id
    home_is_root = tree.by_id[home_id].parent_id is None
    return Actor(node.id, node.login, node.role, home_id, caller_id, node.permissions, home_is_root, ceiling)


def resolve_actor(
    connection: Connection, caller_login: str, act_as_login: str | None = None, *, audited: bool = True
) -> Actor:
    """The actor for a command: the caller, or whom it acts as (checked, and audited unless
    ``audited`` is False: the API audits a "login as" once, when its session starts)."""
    tree = OperatorTree(connection)
    caller = tree.named(caller_login)  # a login that does not exist is nobody
    target = tree.named(act_as_login) if act_as_login not in (None, caller_login) else None
    return _resolve(connection, tree, caller, target, audited=audited)


def resolve_actor_by_id(connection: Connection, operator_id: int, act_as_id: int | None = None) -> Actor:
    """The actor of a login session or an API token, checked as resolve_actor checks it, from the ids
    the session keeps (its "login as" was audited when it started)."""
    tree = OperatorTree(connection)
    nodes = [tree.by_id.get(found) for found in (operator_id, act_as_id) if found is not None]
    if None in nodes:
        raise NotFound("the operator is gone")
    return _resolve(connection, tree, nodes[0], nodes[1] if len(nodes) > 1 else None, audited=False)


def _resolve(
    connection: Connection, tree: OperatorTree, caller: _Operator, target: _Operator | None, *, audited: bool
) -> Actor:
    _require_unblocked(tree, caller)
    actor = _actor_from(tree, caller, caller.id)
    if target is None or target.id == caller.id:
        return actor
    may_act_as = actor.role in SELLING_ROLES or (actor.role == "manager" and "operators" in actor.permissions)
    if not may_act_as:
        raise Forbidden(f"{caller.login} ({actor.role}) may not act as another operator")
    if actor.role != "admin" and target.id not in _actable(tree, actor):
        raise Forbidden(
            f"{caller.login} may not act as {target.login}: not one of its descendants "
            "(never its own home, an ancestor or its home's staff)"
        )
    _require_unblocked(tree, target)
    ceiling = None if actor.role == "admin" else actor
    if audited:
        audit(
            connection,
            "operator.act_as",
            actor_id=caller.id,
            acting_as_id=target.id,
            target_type="operator",
            target_id=target.id,
            login=target.login,
        )
    return _actor_from(tree, target, caller.id, ceiling)


def actable_ids(connection: Connection, actor: Actor) -> set[int]:
    """Whom a non-admin may act as: everything below its home's selling children.

    Not its home (a manager would become its employer), not its home's staff
    (a manager would borrow a colleague's permissions), never anyone above.
    """
    return _actable(OperatorTree(connection), actor)


def _actable(tree: OperatorTree, actor: Actor) -> set[int]:
    children = [
        node.id
        for node in tree.by_id.values()
        if node.parent_id == actor.home_id and node.role in ("reseller", "sub_reseller")
    ]
    return set().union(*(tree.descendants(child) for child in children))


def ancestry(parents: Mapping[int, int | None], operator_id: int) -> list[int]:
    """The operator and its ancestors, nearest first: the one walk of the operator tree.

    ``parents`` maps each operator to its parent (None at the root); a cycle,
    which the database does not forbid, ends the walk instead of looping.
    """
    chain: list[int] = []
    current: int | None = operator_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


def operator_parents(connection: Connection) -> dict[int, int | None]:
    """Every operator's parent: the whole tree in one query (operators are few)."""
    return dict(connection.execute(select(operators.c.id, operators.c.parent_id)).all())


def ancestor_ids(connection: Connection, operator_id: int) -> list[int]:
    """The operator and its ancestors, nearest first."""
    return ancestry(operator_parents(connection), operator_id)


def descendant_ids(connection: Connection, operator_id: int) -> set[int]:
    """The operator and everything below it."""
    parents = operator_parents(connection)
    return {other for other in parents if operator_id in ancestry(parents, other)}


def visible_operator_ids(connection: Connection, actor: Actor) -> set[int] | None:
    """Operators whose customers and books the actor may see; None means all."""
    if actor.is_admin:
        return None
    return descendant_ids(connection, actor.home_id)


def require_visible(connection: Connection, actor: Actor, operator_id: int, what: str) -> None:
    visible = visible_operator_ids(connection, actor)
    if visible is not None and operator_id not in visible:
        raise NotFound(f"{what} is not visible to {actor.login}")


def require_changeable(connection: Connection, actor: Actor, operator_id: int, what: str) -> None:
    """Own customers always; descendants' with manage_descendants; the admin all."""
    require_visible(connection, actor, operator_id, what)
    if actor.is_admin or operator_id == actor.home_id or "manage_descendants" in actor.permissions:
        return
    raise Forbidden(
        f"{what} belongs to a descendant operator; {actor.login} needs the manage_descendants permission"
    )


def require_grantable(actor: Actor, permission: str, role: str) -> None:
    """A permission fits the grantee's role, and the granter holds it itself."""
    if role not in PERMISSION_ROLES[permission]:
        raise RadbillError(f"{permission} is not a permission for a {role}")
    if permission == "network" and not actor.is_admin:
        raise Forbidden(f"{actor.login} may not grant network: routers are the admin side's")
    if not actor.holds(permission):
        raise Forbidden(f"{actor.login} may not grant {permission}: it does not hold it itself")
