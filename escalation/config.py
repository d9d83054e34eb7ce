"""Settings shared by worker, client, CLI, inbound endpoint and `make run`: one model, read in one place.

The Temporal connection (address, namespace, TLS, API key) is read the way every Temporal SDK and the
`temporal` CLI read it (`temporalio.envconfig`): a profile from the client config file
(TEMPORAL_CONFIG_FILE, else the default location; TEMPORAL_PROFILE, else "default"), overridden by
TEMPORAL_* environment variables. Every ESCALATIONS_* value is read by pydantic-settings
(escalation.environment): `Settings` (ESCALATIONS_TASK_QUEUE, ESCALATIONS_POLICY_DIR, ...), its worker
options (`WorkerOptions`: ESCALATIONS_MAX_CONCURRENT_ACTIVITIES, ...) and its delivery sections
(`DeliverySettings`: ESCALATIONS_SMTP__HOST, ..., over the ESCALATIONS_DELIVERY_CONFIG file), its identity
section (`IdentitySettings`: ESCALATIONS_IDENTITY__KEYS, ..., and ESCALATIONS_CREDENTIAL) and its codec section
(`CodecSettings`: ESCALATIONS_CODEC__KEYS, ...: the keys that encrypt every payload). Command-line
options win over the environment, the environment over the delivery file. `Settings.from_env` is the one
place that reads them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig

from escalation.constants import DEFAULT_TASK_QUEUE
from escalation.delivery.settings import CONFIG_ENV, DeliverySettings
from escalation.domain.models import Duration
from escalation.domain.refusal import describe
from escalation.environment import EnvSettings
from escalation.files import FileProblem
from escalation.identity.settings import DEV_KEYS_FILE, IdentitySettings
from escalation.protect.settings import DEV_CODEC_KEYS_FILE, CodecSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The fields the Temporal connection fills (temporalio.envconfig, and the command line), never ESCALATIONS_*.
CONNECTION_FIELDS = frozenset(
    {
        "address",
        "namespace",
        "api_key",
        "tls",
        "tls_server_name",
        "tls_server_ca_cert",
        "tls_client_cert",
        "tls_client_key",
        "rpc_metadata",
        "profile",
    }
)
# TLS material: field -> (what it is, where it is set), so a missing file names its setting.
TLS_FILES: dict[str, tuple[str, str]] = {
    "tls_server_ca_cert": (
        "server CA certificate",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH / profile tls.server_ca_cert_path",
    ),
    "tls_client_cert": ("client certificate", "TEMPORAL_TLS_CLIENT_CERT_PATH / profile tls.client_cert_path"),
    "tls_client_key": ("client private key", "TEMPORAL_TLS_CLIENT_KEY_PATH / profile tls.client_key_path"),
}


def _on_unless(*off: str, fold: bool = False) -> BeforeValidator:
    """A yes/no variable that is on unless it reads as one of `off` (trimmed and lower-cased with `fold`), as
    these variables have always been read."""

    def on(value: Any) -> Any:
        if isinstance(value, str):
            return (value.strip().lower() if fold else value) not in off
        return value

    return BeforeValidator(on)


class ConfigError(Exception):
    """A setting that cannot work; the message names the setting, the value and what to do."""


class WorkerOptions(EnvSettings):
    """Worker tuning: ESCALATIONS_<FIELD>, e.g. ESCALATIONS_MAX_CACHED_WORKFLOWS. None leaves the SDK's default."""

    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=1)
    max_cached_workflows: int | None = Field(default=None, ge=0)
    # How long running activities get to finish on SIGTERM before they are cancelled.
    graceful_shutdown_timeout: Duration = timedelta(seconds=10)
    # How long a case's next task waits for the worker that has it cached before any worker may take it:
    # after a worker dies, its cases resume on another worker this much later. None: the SDK's 10 s.
    sticky_queue_schedule_to_start_timeout: Duration | None = Field(
        default=None, validation_alias="ESCALATIONS_STICKY_QUEUE_TIMEOUT"
    )

    # The SDK's workflow sandbox, a check for determinism (not a security boundary). "strict": each cached case
    # imports the workflow module afresh and every call its code makes is checked; the tests run this way, so a
    # call that would break replay (the wall clock, randomness, I/O) fails them. "off": the workflow code is
    # imported once and runs as it is, which costs a case about 150 KB of worker memory and a breach about a
    # third of the CPU less; lint refuses those calls in workflow code (workflows/ruff.toml).
    workflow_sandbox: Literal["off", "strict"] = "off"

    @model_validator(mode="after")
    def _sticky_timeout_positive(self) -> WorkerOptions:
        timeout = self.sticky_queue_schedule_to_start_timeout
        if timeout is not None and not timedelta(0) < timeout <= timedelta(minutes=10):
            raise ValueError("sticky_queue_schedule_to_start_timeout must be longer than zero and at most 10m")
        return self

    @model_validator(mode="after")
    def _sticky_needs_two(self) -> WorkerOptions:
        # The SDK refuses one workflow task slot while workflows are cached (the sticky queue needs two).
        if self.max_concurrent_workflow_tasks == 1 and self.max_cached_workflows != 0:
            raise ValueError("max_concurrent_workflow_tasks must be at least 2 unless max_cached_workflows is 0")
        return self

    def worker_kwargs(self) -> dict[str, Any]:
        """The SDK Worker's keyword arguments (the sandbox becomes its workflow runner)."""
        return self.model_dump(exclude_none=True, exclude={"workflow_sandbox"})


class Settings(EnvSettings):
    """Everything a process of ours needs. Constructed in code it holds what it is given; `from_env` reads it."""

    not_from_environment: ClassVar[frozenset[str]] = CONNECTION_FIELDS | {
        "worker",
        "delivery",
        "identity",
        "codec",
    }

    address: str = "localhost:7233"
    namespace: str = "default"
    # Temporal Cloud API key; turns TLS on (as the SDKs do).
    api_key: SecretStr | None = None
    # None: TLS when an API key or any TLS material is set; True/False forces it (TEMPORAL_TLS).
    tls: bool | None = None
    tls_server_name: str | None = None
    # A file (Path) or the PEM itself (bytes, from a profile's *_data or TEMPORAL_TLS_*_DATA).
    tls_server_ca_cert: Path | bytes | None = None
    tls_client_cert: Path | bytes | None = None
    tls_client_key: Path | bytes | None = None
    rpc_metadata: dict[str, str] = Field(default_factory=dict)
    profile: str | None = None  # the client config profile these came from, for messages

    task_queue: str = DEFAULT_TASK_QUEUE
    data_dir: Path = PROJECT_ROOT / "data"
    policy_dir: Path = PROJECT_ROOT / "config" / "policies"
    roster_path: Path = Field(default=PROJECT_ROOT / "config" / "roster.toml", validation_alias="ESCALATIONS_ROSTER")
    # The escalation-risk model new cases are scored with (`escalations train` writes it); unset: risk-model.json
    # in the data directory. No file there: cases open unscored.
    risk_model: Path | None = None
    worker: WorkerOptions = Field(default_factory=WorkerOptions)
    # Who may act: the keys that sign and verify credentials (ESCALATIONS_IDENTITY__*), ESCALATIONS_CREDENTIAL.
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    # Customer data protection: the keys that encrypt every payload (ESCALATIONS_CODEC__*), the codec server.
    codec: CodecSettings = Field(default_factory=CodecSettings)
    # SMTP, SMS/voice gateway, webhooks, inbound answers; None: everything to the outbox and events file.
    delivery: DeliverySettings | None = None
    # `make run` opens its demo cases on a fresh data directory unless DEMO is 0, false, no or off.
    demo: Annotated[bool, _on_unless("0", "false", "no", "off", fold=True)] = Field(
        default=True, validation_alias="DEMO"
    )
    # host:port where the worker serves Prometheus metrics (/metrics: the SDK's and escalation.metrics);
    # None or "off": no metrics. `make run` serves them on 127.0.0.1:9464 unless this is "off".
    metrics_address: str | None = None
    # The CLI prints the traceback of an unexpected error (ESCALATIONS_DEBUG set, and not 0).
    debug: Annotated[bool, _on_unless("", "0")] = False

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        profile: str | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Settings from a client config profile and TEMPORAL_* variables (the connection), ESCALATIONS_*
        variables and the delivery file, then `overrides` (command-line options; None values are ignored).
        `env` stands in for the environment. Raises ConfigError naming the bad setting."""
        env = os.environ if env is None else env
        config_file = config_file or (Path(env["TEMPORAL_CONFIG_FILE"]) if env.get("TEMPORAL_CONFIG_FILE") else None)
        if config_file is not None and not config_file.is_file():
            raise ConfigError(
                f"Temporal client config file (TEMPORAL_CONFIG_FILE / --config-file) not found: {config_file}"
            )
        try:
            conn = ClientConfigProfile.load(profile, config_source=config_file, override_env_vars=dict(env))
        except Exception as err:  # the SDK's ConfigError: unknown profile, bad TOML
            raise ConfigError(f"Temporal client config: {err}") from None
        values: dict[str, Any] = {
            "address": conn.address,
            "namespace": conn.namespace,
            "api_key": conn.api_key,
            "rpc_metadata": dict(conn.grpc_meta),
            "profile": profile or env.get("TEMPORAL_PROFILE"),
        }
        if conn.tls is not None:
            values.update(
                tls=None if conn.tls.disabled is None else not conn.tls.disabled,
                tls_server_name=conn.tls.server_name,
                tls_server_ca_cert=conn.tls.server_root_ca_cert,
                tls_client_cert=conn.tls.client_cert,
                tls_client_key=conn.tls.client_private_key,
            )
        try:
            values["delivery"] = DeliverySettings.read(env)
        except (FileNotFoundError, FileProblem) as err:
            raise ConfigError(str(err)) from None
        except ValidationError as err:
            raise ConfigError(
                f"delivery settings ({CONFIG_ENV} file or ESCALATIONS_<SECTION>__<FIELD>): " + describe(err)
            ) from None
        try:
            values["worker"] = WorkerOptions.read(env)
        except ValidationError as err:
            raise ConfigError(_describe(err, WorkerOptions, within="worker")) from None
        try:
            values["identity"] = IdentitySettings.read(env)
        except ValidationError as err:
            raise ConfigError(_describe(err, IdentitySettings, within="identity")) from None
        try:
            values["codec"] = CodecSettings.read(env)
        except ValidationError as err:
            raise ConfigError(_describe(err, CodecSettings, within="codec")) from None
        values = {k: v for k, v in values.items() if v is not None} | {
            k: v for k, v in overrides.items() if v is not None
        }
        try:
            settings = cls.read(env, **values)
        except ValidationError as err:
            raise ConfigError(_describe(err, cls)) from None
        settings.check()
        return settings.with_dev_keys().with_dev_codec()

    def with_dev_keys(self) -> Settings:
        """With no identity keys named, the signing key `make run` keeps in the data directory, when it is there:
        the CLI, the worker and the demo next to `make run` sign and verify with it without any setting."""
        identity = self.identity
        dev_keys = self.data_dir / DEV_KEYS_FILE
        if identity.keys is not None or identity.signing_keys is not None or not dev_keys.is_file():
            return self
        return self.model_copy(update={"identity": identity.model_copy(update={"keys": str(dev_keys)})})

    def with_dev_codec(self) -> Settings:
        """With no codec keys named and encryption not turned off, the codec key `make run` keeps in the data
        directory, when it is there and the identity keys in use are `make run`'s too: the CLI, the worker and the
        demo next to `make run` encrypt with it. A process given other identity keys (a deployment, the tests) is
        not `make run`'s and gets no key it was not given."""
        codec = self.codec
        dev_keys = self.data_dir / DEV_CODEC_KEYS_FILE
        if codec.configured or codec.enabled is False or not dev_keys.is_file():
            return self
        beside = self.identity.keys_file
        if beside is None or beside.resolve() != (self.data_dir / DEV_KEYS_FILE).resolve():
            return self
        return self.model_copy(update={"codec": codec.model_copy(update={"keys": dev_keys})})

    def check(self) -> None:
        """TLS material that is named must be there, and mTLS needs both halves."""
        for field, (what, where) in TLS_FILES.items():
            source = getattr(self, field)
            if isinstance(source, Path) and not source.is_file():
                raise ConfigError(f"{field}: {what} file not found: {source} (set by {where})")
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            missing = "tls_client_key" if self.tls_client_key is None else "tls_client_cert"
            raise ConfigError(
                f"{missing}: mTLS needs both a client certificate and its private key; set {TLS_FILES[missing][1]}"
            )

    @property
    def uses_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return self.api_key is not None or any(getattr(self, f) is not None for f in TLS_FILES)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `temporalio.client.Client.connect` (without the data converter)."""
        self.check()
        kwargs: dict[str, Any] = {"target_host": self.address, "namespace": self.namespace}
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get_secret_value()
        if self.rpc_metadata:
            kwargs["rpc_metadata"] = self.rpc_metadata
        if not self.uses_tls:
            kwargs["tls"] = False
        elif self.tls_server_name is None and all(getattr(self, f) is None for f in TLS_FILES):
            kwargs["tls"] = True  # system roots, no client certificate
        else:
            kwargs["tls"] = TLSConfig(
                domain=self.tls_server_name,
                server_root_ca_cert=self._pem("tls_server_ca_cert"),
                client_cert=self._pem("tls_client_cert"),
                client_private_key=self._pem("tls_client_key"),
            )
        return kwargs

    def _pem(self, field: str) -> bytes | None:
        source = getattr(self, field)
        if isinstance(source, Path):
            try:
                return source.read_bytes()
            except OSError as err:
                what, where = TLS_FILES[field]
                raise ConfigError(
                    f"{field}: cannot read the {what} {source}: {err.strerror} (set by {where})"
                ) from None
        return source

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.jsonl"

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.jsonl"

    @property
    def risk_model_path(self) -> Path:
        return self.risk_model or self.data_dir / "risk-model.json"


def _describe(err: ValidationError, model: type[EnvSettings], *, within: str = "") -> str:
    """Name the environment variable behind each bad value, since that is what a person fixes."""
    # A field with a name of its own (ESCALATIONS_ROSTER) is reported under that name: back to the field.
    aliased = {
        f.validation_alias: name for name, f in model.model_fields.items() if isinstance(f.validation_alias, str)
    }
    parts = []
    for e in err.errors(include_url=False, include_context=False):
        loc = [str(p) for p in e["loc"]]
        if loc and loc[0] in aliased:
            loc[0] = aliased[loc[0]]
        where = ".".join([within, *loc] if within else loc)
        label = where or "settings"
        if len(loc) == 1 and loc[0] in model.model_fields and loc[0] not in model.not_from_environment:
            label = f"{where} ({model.setting_name(loc[0])})"
        parts.append(f"{label}: {e['msg'].removeprefix('Value error, ')} (got {e['input']!r})")
    return "; ".join(parts)
