"""Master packages (the technical spec), packages and price lists, zones."""

from typing import Annotated

from fastapi import APIRouter, Query

from billingd import packages as domain
from billingd import zones as zone_domain
from billingd.api.deps import Db, Once, OperatorActor
from billingd.api.models import (
    AssignIn,
    MasterPackageIn,
    MasterPackageOut,
    PackageIn,
    PackageOut,
    ZoneIn,
    ZoneOut,
)
from billingd.api.routes import ERRORS

router = APIRouter(tags=["packages"], responses=ERRORS)


@router.get("/master-packages", summary="Master packages: rates, quotas, pools")
def list_master_packages(actor: OperatorActor, db: Db) -> list[MasterPackageOut]:
    return [
        MasterPackageOut(**{key: row[key] for key in MasterPackageOut.model_fields})
        for row in domain.list_master_packages(db, actor)
    ]


@router.post("/master-packages", summary="Add a master package (the admin's side)", status_code=201)
def add_master_package(body: MasterPackageIn, actor: OperatorActor, db: Db, once: Once) -> MasterPackageOut:
    def add():
        spec = body.model_dump(
            exclude={"name", "customer_type", "billing_type", "period_days"}, exclude_none=True
        )
        domain.add_master_package(
            db,
            actor,
            body.name,
            customer_type=body.customer_type,
            billing_type=body.billing_type,
            period_days=body.period_days,
            **spec,
        )
        row = next(row for row in domain.list_master_packages(db, actor) if row["name"] == body.name)
        return MasterPackageOut(**{key: row[key] for key in MasterPackageOut.model_fields})

    return once.once(add, body, 201)


@router.get("/packages", summary="Your price list, or a descendant's (?operator=LOGIN)")
def price_list(
    actor: OperatorActor,
    db: Db,
    operator: Annotated[str | None, Query(description="A descendant operator's login")] = None,
) -> list[PackageOut]:
    return [PackageOut.of(priced) for priced in domain.price_list(db, actor, operator)]


@router.post("/packages", summary="Add a package to the admin's price list", status_code=201)
def add_package(body: PackageIn, actor: OperatorActor, db: Db, once: Once) -> PackageOut:
    return once.once(
        lambda: PackageOut.of(
            domain.add_package(
                db,
                actor,
                body.name,
                master=body.master,
                customer_price=body.customer_price,
                operator_price=body.operator_price,
                visibility=body.visibility,
            )
        ),
        body,
        201,
    )


@router.post("/packages/{name}/assign", summary="Let a child operator sell a package at its own prices")
def assign_package(name: str, body: AssignIn, actor: OperatorActor, db: Db) -> PackageOut:
    return PackageOut.of(
        domain.assign_package(
            db,
            actor,
            name,
            body.to,
            operator_price=body.operator_price,
            customer_price=body.customer_price,
            visibility=body.visibility,
        )
    )


@router.get("/zones", summary="Zones you can use", tags=["zones"])
def list_zones(actor: OperatorActor, db: Db) -> list[ZoneOut]:
    return [ZoneOut(**row) for row in zone_domain.list_zones(db, actor)]


@router.post("/zones", summary="Add a zone of your own", status_code=201, tags=["zones"])
def add_zone(body: ZoneIn, actor: OperatorActor, db: Db) -> ZoneOut:
    zone_domain.add_zone(db, actor, body.code, name=body.name, parent_code=body.parent)
    return next(
        ZoneOut(**row)
        for row in zone_domain.list_zones(db, actor)
        if row["code"] == body.code and row["operator"] == _home_login(db, actor)
    )


def _home_login(db, actor) -> str:
    from billingd.credentials import operator_login

    return operator_login(db, actor.home_id)
