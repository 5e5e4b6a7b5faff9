"""Find, read and check the TOML configuration.

Where it comes from, first match wins: ``--config FILE``, ``$RADBILL_CONFIG``,
``/etc/radbill/radbill.toml`` if it exists, else the built-in defaults.
``$RADBILL_DATABASE_URL`` overrides ``[database] url`` wherever it came from.
"""

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from schema.errors import RadbillError
from schema.settings import Settings

SYSTEM_CONFIG = Path("/etc/radbill/radbill.toml")

_TYPE_NAMES = {int: "an integer", str: "a string", bool: "true or false", float: "a number"}


class ConfigError(RadbillError):
    pass


def config_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("RADBILL_CONFIG"):
        return Path(os.environ["RADBILL_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_settings(explicit: str | None = None) -> Settings:
    path = config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"configuration {path} is not valid TOML: {error}") from None
    url = os.environ.get("RADBILL_DATABASE_URL")
    if url:
        raw.setdefault("database", {})
        if isinstance(raw["database"], dict):
            raw["database"]["url"] = url
    return settings_from_mapping(raw)


def settings_from_mapping(raw: dict[str, Any]) -> Settings:
    """Build Settings, refusing unknown keys and wrong types by name."""
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    for name in raw:
        if name not in sections:
            raise ConfigError(f"unknown configuration key '{name}'")
    built = {}
    for name, section_field in sections.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"configuration key '{name}' must be a table ([{name}])")
        built[name] = _build_section(name, section_field.default_factory, values)
    return Settings(**built)


def _build_section(section: str, cls: type, values: dict[str, Any]):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(values)
    for key, value in list(values.items()):
        if key not in fields:
            raise ConfigError(f"unknown configuration key '{section}.{key}'")
        expected = fields[key].type
        if expected is float and type(value) is int:  # TOML's 10 for a number of seconds
            value = values[key] = float(value)
        if type(value) is not expected:
            raise ConfigError(
                f"configuration key '{section}.{key}' must be {_TYPE_NAMES.get(expected, expected)}, got {value!r}"
            )
    try:
        return cls(**values)
    except ValueError as error:
        key, _, problem = str(error).partition(": ")
        raise ConfigError(f"configuration key '{section}.{key}' {problem}") from None
