"""Who is online, why a login failed or would fail, router jobs, invoices and billing runs."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from billingd import reports
from billingd.api.deps import Db, Now, OperatorActor, State, Today
from billingd.api.models import (
    AttemptOut,
    BillingRunOut,
    InvoiceOut,
    InvoicePage,
    JobOut,
    OnlineOut,
    WhyOut,
    money,
)
from billingd.api.routes import ERRORS

router = APIRouter(responses=ERRORS)


@router.get("/sessions", summary="Open sessions of the customers you see", tags=["network"])
def online(
    actor: OperatorActor,
    db: Db,
    instant: Now,
    nas: Annotated[str | None, Query(description="Only this router")] = None,
) -> list[OnlineOut]:
    return [OnlineOut(**vars(session)) for session in reports.online_sessions(db, actor, instant, nas)]


@router.get(
    "/customers/{username}/attempts", summary="A subscriber's latest login attempts and why", tags=["network"]
)
def attempts(
    username: str, actor: OperatorActor, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[AttemptOut]:
    return [AttemptOut(**row) for row in reports.attempts(db, actor, username, limit)]


@router.get(
    "/customers/{username}/why",
    summary="What a subscriber's next login would get now, and why (as `radbill why`)",
    tags=["network"],
)
def why(
    username: str,
    actor: OperatorActor,
    db: Db,
    instant: Now,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500, description="How many of the latest attempts")] = 10,
) -> WhyOut:
    return WhyOut.of(reports.why(db, actor, username, now=instant, decide=state.decide, limit=limit))


@router.get(
    "/enforcement-jobs", summary="Router actions for the customers you see, newest first", tags=["network"]
)
def jobs(
    actor: OperatorActor,
    db: Db,
    status: Annotated[str | None, Query(pattern="^(pending|done|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[JobOut]:
    return [
        JobOut(**{key: getattr(job, key) for key in JobOut.model_fields})
        for job in reports.enforcement_jobs_of(db, actor, status, limit)
    ]


@router.post(
    "/enforcement-jobs/{job_id}/retry",
    summary="Run a failed or waiting router action again now",
    tags=["network"],
)
def retry(job_id: int, actor: OperatorActor, db: Db) -> Response:
    reports.retry_enforcement(db, actor, job_id)
    return Response(status_code=204)


@router.get(
    "/invoices", summary="Invoices of the customers you see, newest first, a page at a time", tags=["money"]
)
def invoices(
    actor: OperatorActor,
    db: Db,
    today: Today,
    status: Annotated[str | None, Query(pattern="^(open|overdue|paid)$")] = None,
    after: Annotated[
        str | None,
        Query(max_length=40, description="The next_after of the previous page (an invoice number)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InvoicePage:
    rows = reports.invoice_report(db, actor, today.today, status, after=after or None, limit=limit + 1)
    items = [InvoiceOut.of(row) for row in rows[:limit]]
    return InvoicePage(items=items, next_after=items[-1].number if len(rows) > limit else None)


@router.get(
    "/billing-runs", summary="The days billing ran (a seller: its own customers' share)", tags=["money"]
)
def billing_runs(
    actor: OperatorActor, db: Db, limit: Annotated[int, Query(ge=1, le=366)] = 30
) -> list[BillingRunOut]:
    return [
        BillingRunOut(**row, amount_charged_text=money(row["amount_charged"]))
        for row in reports.recent_runs(db, actor, limit)
    ]
