"""One module per resource; each router only translates HTTP to one domain call."""

from billingd.api.models import ErrorOut

# The error answers every authenticated route may give, in the OpenAPI document.
ERRORS = {
    400: {"model": ErrorOut, "description": "Refused: the message says why"},
    401: {"model": ErrorOut, "description": "Not logged in, or the token has ended"},
    403: {"model": ErrorOut, "description": "Not allowed for this role or permission"},
    404: {"model": ErrorOut, "description": "No such thing, or not visible to the caller"},
}


def _routers():
    from billingd.api.routes import audit, auth, cards, customers, me, network, operators, packages

    return [
        auth.router,
        operators.router,
        packages.router,
        customers.router,
        cards.router,
        network.router,
        audit.router,
        me.router,
    ]


ROUTERS = _routers()
