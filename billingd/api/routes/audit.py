"""The audit trail of the operators the caller sees (login-as shows both identities)."""

from typing import Annotated

from fastapi import APIRouter, Query

from billingd import credentials
from billingd.api.deps import Db, OperatorActor
from billingd.api.models import AuditOut
from billingd.api.routes import ERRORS

router = APIRouter(tags=["audit"])


@router.get(
    "/audit", summary="Audit rows, newest first (keyset: pass the last id as before)", responses=ERRORS
)
def list_audit(
    actor: OperatorActor,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, description="Only rows with a smaller id")] = None,
) -> list[AuditOut]:
    return [AuditOut(**row) for row in credentials.list_audit(db, actor, limit=limit, before_id=before)]
