"""``radbill nas``: the routers radbill answers."""

import click
from twisted.internet import defer

from billingd import network
from cli.context import Context
from cli.output import emit_record, emit_table
from cli.params import PORT
from schema.errors import RadbillError
from schema.tables import MESSAGE_AUTHENTICATOR_POLICIES

_POLICY = click.Choice(MESSAGE_AUTHENTICATOR_POLICIES)


@click.group("nas")
def nas_group() -> None:
    """Routers (RADIUS clients)."""


def _router_options(command):
    options = [
        click.option("--coa-port", type=PORT, help="RFC 5176 CoA/Disconnect port (RouterOS: 3799)."),
        click.option(
            "--require-message-authenticator",
            "require_message_authenticator",
            type=_POLICY,
            help="yes, no, or auto: required once the NAS has sent one.",
        ),
        click.option("--api-host", help="RouterOS API address (default: the NAS IP)."),
        click.option("--api-port", type=PORT, help="RouterOS API port (8728, or 8729 with TLS)."),
        click.option("--api-user", help="RouterOS API user."),
        click.option("--api-password", help="RouterOS API password."),
        click.option("--api-tls/--no-api-tls", default=None, help="Use the API over TLS (api-ssl)."),
        click.option(
            "--api-tls-ca-file",
            help='Check the router\'s certificate against this CA file ("" clears it).',
        ),
        click.option(
            "--api-tls-fingerprint",
            help='Pin the router\'s certificate by its SHA-256 fingerprint ("" clears it).',
        ),
        click.option(
            "--api-tls-insecure/--api-tls-verify",
            "api_tls_insecure",
            default=None,
            help="Do not check the router's certificate (an explicit opt-out), or check it again.",
        ),
        click.option("--description", help="Free text."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _tls_verify(options: dict) -> dict:
    insecure = options.pop("api_tls_insecure")
    return {**options, "api_tls_verify": None if insecure is None else not insecure}


@nas_group.command("add")
@click.argument("name")
@click.option("--ip", "ip_address", required=True, help="Source address of its RADIUS packets.")
@click.option("--secret", required=True, help="Shared RADIUS secret.")
@_router_options
@click.pass_obj
def add(obj: Context, name: str, ip_address: str, secret: str, **options) -> None:
    """Add a router."""
    options = {key: value for key, value in _tls_verify(options).items() if value is not None}
    with obj.engine.begin() as connection:
        router = network.add_router(connection, obj.actor(connection), name, ip_address, secret, **options)
    click.echo(f"added NAS {router.name} ({router.ip_address})")


@nas_group.command("set")
@click.argument("name")
@click.option("--name", "new_name", help="Rename it.")
@click.option("--ip", "ip_address", help="New source address.")
@click.option("--secret", help="New shared secret.")
@_router_options
@click.pass_obj
def set_(obj: Context, name: str, new_name: str | None, **changes) -> None:
    """Change a router; radiusd picks the change up within a second."""
    with obj.engine.begin() as connection:
        router = network.update_router(
            connection, obj.actor(connection), name, name=new_name, **_tls_verify(changes)
        )
    click.echo(f"updated NAS {router.name} ({router.ip_address})")


@nas_group.command("delete")
@click.argument("name")
@click.pass_obj
def delete(obj: Context, name: str) -> None:
    """Remove a router that has no open sessions or unfinished jobs."""
    with obj.engine.begin() as connection:
        network.delete_router(connection, obj.actor(connection), name)
    click.echo(f"deleted NAS {name}")


@nas_group.command("list")
@click.pass_obj
def list_(obj: Context) -> None:
    """List routers."""
    with obj.engine.begin() as connection:
        routers = network.list_routers(connection, obj.actor(connection))
    emit_table(
        routers,
        ["name", "ip_address", "coa_port", "require_message_authenticator", "api_host", "description"],
    )


@nas_group.command("show")
@click.argument("name")
@click.pass_obj
def show(obj: Context, name: str) -> None:
    """Show one router (secrets hidden)."""
    with obj.engine.begin() as connection:
        router = network.show_router(connection, obj.actor(connection), name)
    emit_record(router)


@nas_group.command("test")
@click.argument("name")
@click.pass_obj
def test(obj: Context, name: str) -> None:
    """Probe a router: a harmless CoA-Request and a RouterOS API login; name the likely cause of a failure."""
    from cli.reactor import run_on_reactor
    from nas.probe import check_router

    with obj.engine.begin() as connection:
        router = network.show_router(connection, obj.actor(connection), name)
    checks = run_on_reactor(
        lambda reactor: defer.ensureDeferred(check_router(reactor, router, obj.settings.nas))
    )
    for check in checks:
        click.echo(f"{check.what}: {'ok' if check.ok else 'FAILED'}: {check.detail}")
    if not router.api_user:
        click.echo(f"API: not set up (radbill nas set {name} --api-user ...): static-IP blocking needs it")
    failed = [check.what for check in checks if not check.ok]
    if failed:
        raise RadbillError(f"NAS {name}: {' and '.join(failed)} failed")


COMMANDS = [nas_group]
