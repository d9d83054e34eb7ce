"""Settings shared by worker, client, CLI and demo.

The Temporal connection (address, namespace, TLS, API key) is read the way every Temporal SDK and the
`temporal` CLI read it (`temporalio.envconfig`): a profile from the client config file
(TEMPORAL_CONFIG_FILE, else the default location; TEMPORAL_PROFILE, else "default"), overridden by
TEMPORAL_* environment variables. Escalation settings and worker options come from ESCALATIONS_*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig

from escalation.constants import DEFAULT_TASK_QUEUE
from escalation.delivery.settings import CONFIG_ENV, DeliverySettings
from escalation.domain.models import Duration
from escalation.domain.refusal import describe
from escalation.files import FileProblem

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Settings field -> environment variable, for the settings read from ESCALATIONS_* (and named in errors).
ENV_VARS: dict[str, str] = {
    "task_queue": "ESCALATIONS_TASK_QUEUE",
    "data_dir": "ESCALATIONS_DATA_DIR",
    "policy_dir": "ESCALATIONS_POLICY_DIR",
    "roster_path": "ESCALATIONS_ROSTER",
}
WORKER_ENV_VARS: dict[str, str] = {
    "max_concurrent_activities": "ESCALATIONS_MAX_CONCURRENT_ACTIVITIES",
    "max_concurrent_workflow_tasks": "ESCALATIONS_MAX_CONCURRENT_WORKFLOW_TASKS",
    "max_cached_workflows": "ESCALATIONS_MAX_CACHED_WORKFLOWS",
    "graceful_shutdown_timeout": "ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT",
    "sticky_queue_schedule_to_start_timeout": "ESCALATIONS_STICKY_QUEUE_TIMEOUT",
}
# TLS material: field -> (what it is, where it is set), so a missing file names its setting.
TLS_FILES: dict[str, tuple[str, str]] = {
    "tls_server_ca_cert": (
        "server CA certificate",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH / profile tls.server_ca_cert_path",
    ),
    "tls_client_cert": ("client certificate", "TEMPORAL_TLS_CLIENT_CERT_PATH / profile tls.client_cert_path"),
    "tls_client_key": ("client private key", "TEMPORAL_TLS_CLIENT_KEY_PATH / profile tls.client_key_path"),
}


class ConfigError(Exception):
    """A setting that cannot work; the message names the setting, the value and what to do."""


class WorkerOptions(BaseModel):
    """Worker tuning. None leaves the SDK's default."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_activities: int | None = Field(default=None, ge=1)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=1)
    max_cached_workflows: int | None = Field(default=None, ge=0)
    # How long running activities get to finish on SIGTERM before they are cancelled.
    graceful_shutdown_timeout: Duration = timedelta(seconds=10)
    # How long a case's next task waits for the worker that has it cached before any worker may take it:
    # after a worker dies, its cases resume on another worker this much later. None: the SDK's 10 s.
    sticky_queue_schedule_to_start_timeout: Duration | None = None

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
        return self.model_dump(exclude_none=True)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    roster_path: Path = PROJECT_ROOT / "config" / "roster.toml"
    worker: WorkerOptions = Field(default_factory=WorkerOptions)
    # SMTP, SMS/voice gateway, webhooks, inbound answers; None: everything to the outbox and events file.
    delivery: DeliverySettings | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        profile: str | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Settings from a client config profile, TEMPORAL_* and ESCALATIONS_* variables, then `overrides`
        (command-line options; None values are ignored). Raises ConfigError naming the bad setting."""
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
        values |= {field: env[var] for field, var in ENV_VARS.items() if env.get(var)}
        worker = {field: env[var] for field, var in WORKER_ENV_VARS.items() if env.get(var)}
        values |= {"worker": worker} | {k: v for k, v in overrides.items() if v is not None}
        try:
            values["delivery"] = DeliverySettings.load(env)
        except (FileNotFoundError, FileProblem) as err:
            raise ConfigError(str(err)) from None
        except ValidationError as err:
            raise ConfigError(
                f"delivery settings ({CONFIG_ENV} file or ESCALATIONS_<SECTION>__<FIELD>): " + describe(err)
            ) from None
        try:
            settings = cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as err:
            raise ConfigError(_describe(err)) from None
        settings.check()
        return settings

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
                domain=self.tls_server_name, **{arg: self._pem(f) for arg, f in _TLS_ARGS.items()}
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


_TLS_ARGS = {
    "server_root_ca_cert": "tls_server_ca_cert",
    "client_cert": "tls_client_cert",
    "client_private_key": "tls_client_key",
}


def _describe(err: ValidationError) -> str:
    """Name the environment variable behind each bad value, since that is what a person fixes."""
    names = ENV_VARS | {f"worker.{k}": v for k, v in WORKER_ENV_VARS.items()}
    parts = []
    for e in err.errors(include_url=False, include_context=False):
        where = ".".join(str(p) for p in e["loc"])
        label = f"{where} ({names[where]})" if where in names else where or "settings"
        parts.append(f"{label}: {e['msg'].removeprefix('Value error, ')} (got {e['input']!r})")
    return "; ".join(parts)
