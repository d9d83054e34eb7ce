"""How settings are read (pydantic-settings): every ESCALATIONS_* name by the same rules, in one place.

A settings class (`EnvSettings`) constructed in code holds only what it is given: tests and services that
build their settings themselves get no surprise from the environment. `read` fills in the rest, highest
first: the values given (command-line options), the environment (or a mapping given in its place), the
files the class names (the delivery TOML file), the defaults. A field is ESCALATIONS_<FIELD>, a field of a
section ESCALATIONS_<SECTION>__<FIELD> (double underscore), upper or lower case; a field may carry its own
name instead (`validation_alias`, e.g. ESCALATIONS_ROSTER).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Self

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "ESCALATIONS_"
NESTED_DELIMITER = "__"

# The class being read and the environment it is read from; unset while settings are constructed in code.
_reading: ContextVar[tuple[type[BaseSettings], Mapping[str, str]] | None] = ContextVar("reading", default=None)


class Environment(EnvSettingsSource):
    """The environment, or a mapping given in its place; the fields in `skip` come from elsewhere."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], skip: frozenset[str] = frozenset()
    ) -> None:
        self.environ = environ
        self.skip = skip
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self.environ.items()
            if value or not self.env_ignore_empty
        }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in self.skip:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if field_name in self.skip:  # nor from ESCALATIONS_<FIELD>__<SUBFIELD>
            return None
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class EnvSettings(BaseSettings):
    """A settings class whose `read` fills it from the environment (see the module's docstring)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        case_sensitive=False,
        env_ignore_empty=True,  # an empty variable leaves the default
        enable_decoding=False,  # values are text, never JSON; a section's fields are set one by one
        extra="forbid",
        validate_by_name=True,  # fields with a name of their own may still be given by field name in code
    )

    # Fields whose values come from elsewhere (the Temporal connection, sections read by their own class).
    not_from_environment: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Self:
        """`given`, then `environ` (default: this process's environment), then the class's files, then defaults.
        Raises pydantic's ValidationError naming the field, or what a file source raises."""
        token = _reading.set((cls, os.environ if environ is None else environ))
        try:
            return cls(**given)
        finally:
            _reading.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        reading = _reading.get()
        if reading is None or reading[0] is not settings_cls:  # constructed in code, or a default of another
            return (init_settings,)
        environment = Environment(settings_cls, reading[1], cls.not_from_environment)
        return (init_settings, environment, *cls.file_sources(environment))

    @classmethod
    def file_sources(cls, environment: Environment) -> tuple[PydanticBaseSettingsSource, ...]:
        """Files under the environment, lowest last; `environment` may name them."""
        return ()

    @classmethod
    def setting_name(cls, field_name: str) -> str:
        """The environment variable that sets `field_name` (for messages)."""
        alias = cls.model_fields[field_name].validation_alias
        return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field_name}".upper()
