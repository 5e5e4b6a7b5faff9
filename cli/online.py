"""``radbill online``: who is connected now, from the open sessions radiusd keeps."""

import dataclasses
from datetime import UTC, datetime

import click

from billingd import reports
from cli.context import Context
from cli.output import emit_table

SESSION_COLUMNS = ["id", "user", "nas", "ip", "mac", "start", "duration", "upload", "download"]


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    days, rest = divmod(max(seconds, 0), 86_400)
    hours, rest = divmod(rest, 3_600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}d {text}" if days else text


def session_rows(found) -> list[dict]:
    """Open sessions as people read them: start in UTC, duration as [Nd ]HH:MM:SS."""
    return [
        dict(
            id=s.id,
            user=s.username,
            nas=s.nas,
            ip=s.ip,
            mac=s.mac,
            start=s.started_at.strftime("%Y-%m-%d %H:%M:%S") if s.started_at else None,
            duration=_duration(s.duration),
            upload=s.upload_bytes,
            download=s.download_bytes,
        )
        for s in found
    ]


def read_online(obj: Context, nas_name: str | None) -> list[reports.OnlineSession]:
    """The open sessions of the caller's customers (``radbill online`` and ``report online``)."""
    with obj.engine.begin() as connection:
        return reports.online_sessions(connection, obj.actor(connection), datetime.now(UTC), nas_name)


@click.command()
@click.option("--nas", "nas_name", metavar="NAME", help="Only sessions on this router.")
@click.pass_obj
def online(obj: Context, nas_name: str | None) -> None:
    """List open sessions of the customers you can see: id, user, NAS, IP, MAC, start, duration, bytes up/down."""
    found = read_online(obj, nas_name)
    if obj.as_json:
        emit_table(found, [field.name for field in dataclasses.fields(reports.OnlineSession)])
        return
    emit_table(session_rows(found), SESSION_COLUMNS)


COMMANDS = [online]
