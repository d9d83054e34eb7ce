"""Connection and worker settings: client config profiles, TEMPORAL_* and ESCALATIONS_* variables, TLS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from escalation.config import ConfigError, Settings
from escalation.constants import task_queue
from tests.conftest import IDENTITY_KEYS, TESTS
from worker import build_worker

ROOT = TESTS.parent
# A stand-in PEM: the settings only read and pass the bytes on; the TLS handshake is the SDK's business.
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def profile_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(body)
    return path


def test_defaults_without_any_configuration(tmp_path):
    s = Settings.from_env({}, config_file=profile_file(tmp_path, ""))
    assert (s.address, s.namespace, s.task_queue) == ("localhost:7233", "default", "escalations")
    kwargs = s.connect_kwargs()
    assert kwargs == {"target_host": "localhost:7233", "namespace": "default", "tls": False}
    assert s.worker.worker_kwargs() == {"graceful_shutdown_timeout": timedelta(seconds=10)}


def test_environment_variables_for_connection_escalations_and_worker(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PEM)
    s = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": "temporal.internal:7233",
            "TEMPORAL_NAMESPACE": "prod",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
            "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
            "ESCALATIONS_TASK_QUEUE": "esc-eu",
            "ESCALATIONS_POLICY_DIR": "/etc/escalations/policies",
            "ESCALATIONS_MAX_CONCURRENT_ACTIVITIES": "20",
            "ESCALATIONS_MAX_CONCURRENT_WORKFLOW_TASKS": "8",
            "ESCALATIONS_MAX_CACHED_WORKFLOWS": "500",
            "ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT": "45s",
            "ESCALATIONS_WORKFLOW_SANDBOX": "strict",
        },
        config_file=profile_file(tmp_path, ""),
    )
    assert (s.address, s.namespace, s.task_queue) == ("temporal.internal:7233", "prod", "esc-eu")
    assert s.policy_dir == Path("/etc/escalations/policies")
    assert s.worker.worker_kwargs() == {
        "max_concurrent_activities": 20,
        "max_concurrent_workflow_tasks": 8,
        "max_cached_workflows": 500,
        "graceful_shutdown_timeout": timedelta(seconds=45),
    }
    assert s.worker.workflow_sandbox == "strict"  # the worker's runner, not a Worker keyword
    tls = s.connect_kwargs()["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == PEM and tls.domain == "temporal.internal" and tls.client_cert is None


def test_profile_with_mtls_files_and_inline_key_then_env_and_options_override(tmp_path):
    cert = tmp_path / "client.pem"
    cert.write_bytes(PEM)
    config = profile_file(
        tmp_path,
        f'''
[profile.prod]
address = "prod.example.internal:7233"
namespace = "escalations-prod"
[profile.prod.tls]
client_cert_path = "{cert}"
client_key_data = "KEY"
[profile.prod.grpc_meta]
x-team = "care"
''',
    )
    s = Settings.from_env(
        {"TEMPORAL_NAMESPACE": "from-env"}, profile="prod", config_file=config, address="override:7233"
    )
    assert s.address == "override:7233" and s.namespace == "from-env" and s.profile == "prod"
    kwargs = s.connect_kwargs()
    assert kwargs["tls"].client_cert == PEM and kwargs["tls"].client_private_key == b"KEY"
    assert kwargs["rpc_metadata"] == {"x-team": "care"}
    # TEMPORAL_PROFILE picks the profile the same way.
    assert (
        Settings.from_env({"TEMPORAL_PROFILE": "prod", "TEMPORAL_CONFIG_FILE": str(config)}).namespace
        == "escalations-prod"
    )


def test_options_left_unset_keep_the_environment(tmp_path):
    """What the CLI passes when --address and friends are not given."""
    s = Settings.from_env(
        {"TEMPORAL_ADDRESS": "temporal.internal:7233", "ESCALATIONS_TASK_QUEUE": "esc-eu"},
        config_file=profile_file(tmp_path, ""),
        address=None,
        namespace=None,
        task_queue=None,
    )
    assert (s.address, s.namespace, s.task_queue) == ("temporal.internal:7233", "default", "esc-eu")


def test_every_escalations_name_with_empty_ones_leaving_the_default(tmp_path):
    s = Settings.from_env(
        {
            "ESCALATIONS_ROSTER": "/etc/escalations/roster.toml",
            "ESCALATIONS_DATA_DIR": "/var/lib/escalations",
            "ESCALATIONS_STICKY_QUEUE_TIMEOUT": "3s",
            "ESCALATIONS_TASK_QUEUE": "",
            "ESCALATIONS_MAX_CACHED_WORKFLOWS": "",
            "ESCALATIONS_WORKFLOW_SANDBOX": "",
        },
        config_file=profile_file(tmp_path, ""),
    )
    assert s.roster_path == Path("/etc/escalations/roster.toml") and s.data_dir == Path("/var/lib/escalations")
    assert s.task_queue == "escalations" and s.worker.max_cached_workflows is None
    assert s.worker.workflow_sandbox == "off"  # the empty value leaves the default
    assert s.worker.worker_kwargs()["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=3)
    # Only settings named by the environment or an option count as given (the client then knows the policies).
    assert "policy_dir" not in s.model_fields_set
    given = Settings.from_env({"ESCALATIONS_POLICY_DIR": "/p"}, config_file=profile_file(tmp_path, ""))
    assert "policy_dir" in given.model_fields_set


def test_the_connection_comes_from_temporal_settings_only(tmp_path):
    s = Settings.from_env(
        {"ESCALATIONS_ADDRESS": "elsewhere:7233", "ESCALATIONS_NAMESPACE": "other", "ESCALATIONS_API_KEY": "k"},
        config_file=profile_file(tmp_path, ""),
    )
    assert (s.address, s.namespace, s.api_key) == ("localhost:7233", "default", None)


def test_settings_built_in_code_read_nothing_from_the_environment(monkeypatch):
    monkeypatch.setenv("ESCALATIONS_TASK_QUEUE", "from-env")
    monkeypatch.setenv("ESCALATIONS_MAX_CACHED_WORKFLOWS", "3")
    monkeypatch.setenv("ESCALATIONS_SMTP__HOST", "relay")
    s = Settings(policy_dir=Path("/p"), roster_path=Path("/r.toml"))
    assert (s.task_queue, s.worker.max_cached_workflows, s.delivery) == ("escalations", None, None)
    assert s.roster_path == Path("/r.toml")
    # The client's default task queue is read like every other setting.
    assert task_queue() == "from-env"


@pytest.mark.parametrize(
    ("env", "demo", "debug"),
    [
        ({}, True, False),
        ({"DEMO": " Off ", "ESCALATIONS_DEBUG": "1"}, False, True),
        ({"DEMO": "0", "ESCALATIONS_DEBUG": "0"}, False, False),
        ({"DEMO": "yes please", "ESCALATIONS_DEBUG": "no"}, True, True),  # anything but the "off" words is on
    ],
)
def test_make_run_demo_and_cli_debug_switches(tmp_path, env, demo, debug):
    s = Settings.from_env(env, config_file=profile_file(tmp_path, ""))
    assert (s.demo, s.debug) == (demo, debug)


def test_api_key_turns_tls_on_and_is_never_shown(tmp_path):
    s = Settings.from_env(
        {"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_API_KEY": "sekrit"},
        config_file=profile_file(tmp_path, ""),
    )
    assert s.connect_kwargs() == {
        "target_host": "ns.acct.tmprl.cloud:7233",
        "namespace": "default",
        "api_key": "sekrit",
        "tls": True,
    }
    assert "sekrit" not in repr(s) and "sekrit" not in s.model_dump_json()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "{tmp}/missing-ca.pem"},
            r"tls_server_ca_cert: server CA certificate file not found: .*missing-ca\.pem \(set by TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        ),
        (
            {"TEMPORAL_TLS_CLIENT_CERT_PATH": "{tmp}/nope.pem", "TEMPORAL_TLS_CLIENT_KEY_DATA": "KEY"},
            r"tls_client_cert: client certificate file not found: .*nope\.pem \(set by TEMPORAL_TLS_CLIENT_CERT_PATH",
        ),
        (
            {"TEMPORAL_TLS_CLIENT_KEY_PATH": "{tmp}/key.pem"},
            r"tls_client_key: client private key file not found: .*key\.pem",
        ),
        (
            {"TEMPORAL_TLS_CLIENT_CERT_DATA": "CERT"},
            r"tls_client_key: mTLS needs both a client certificate and its private key; set TEMPORAL_TLS_CLIENT_KEY_PATH",
        ),
        (
            {"ESCALATIONS_MAX_CACHED_WORKFLOWS": "lots"},
            r"worker\.max_cached_workflows \(ESCALATIONS_MAX_CACHED_WORKFLOWS\): Input should be a valid integer.*'lots'",
        ),
        (
            {"ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT": "soon"},
            r"worker\.graceful_shutdown_timeout \(ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT\)",
        ),
        (
            {"ESCALATIONS_STICKY_QUEUE_TIMEOUT": "soon"},
            r"worker\.sticky_queue_schedule_to_start_timeout \(ESCALATIONS_STICKY_QUEUE_TIMEOUT\)",
        ),
        (
            {"ESCALATIONS_WORKFLOW_SANDBOX": "shared"},
            r"worker\.workflow_sandbox \(ESCALATIONS_WORKFLOW_SANDBOX\): Input should be 'off' or 'strict'.*'shared'",
        ),
        (
            {"ESCALATIONS_MAX_CONCURRENT_WORKFLOW_TASKS": "1"},
            r"max_concurrent_workflow_tasks must be at least 2 unless max_cached_workflows is 0",
        ),
        ({"TEMPORAL_PROFILE": "staging"}, r"Temporal client config: .*staging"),
        (
            {"TEMPORAL_CONFIG_FILE": "{tmp}/no-such.toml"},
            r"Temporal client config file \(TEMPORAL_CONFIG_FILE / --config-file\) not found: .*no-such\.toml",
        ),
    ],
)
def test_bad_settings_are_a_clear_error_naming_the_setting(tmp_path, env, message):
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    config = None if "TEMPORAL_CONFIG_FILE" in env else profile_file(tmp_path, "")
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env, config_file=config)


def test_a_tls_file_removed_after_loading_is_named_when_connecting(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PEM)
    s = Settings.from_env({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca)}, config_file=profile_file(tmp_path, ""))
    ca.unlink()
    with pytest.raises(ConfigError, match=r"tls_server_ca_cert: .*ca\.pem"):
        s.connect_kwargs()


async def test_worker_uses_the_worker_options(env, tmp_path):
    s = Settings.from_env(
        {
            "ESCALATIONS_MAX_CONCURRENT_ACTIVITIES": "3",
            "ESCALATIONS_MAX_CACHED_WORKFLOWS": "7",
            "ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT": "2m",
            "ESCALATIONS_TASK_QUEUE": "opts-test",
            "ESCALATIONS_IDENTITY__KEYS": str(IDENTITY_KEYS),
        },
        config_file=profile_file(tmp_path, ""),
        policy_dir=TESTS / "policies",
        roster_path=TESTS / "roster.toml",
        data_dir=tmp_path,
    )
    w = build_worker(env.client, s)
    assert w.config()["max_concurrent_activities"] == 3
    assert w.config()["max_cached_workflows"] == 7
    assert w.config()["graceful_shutdown_timeout"] == timedelta(minutes=2)
    assert w.task_queue == "opts-test"


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    return subprocess.run(args, env=clean | env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_worker_that_cannot_connect_says_so_and_exits_1(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = _run(
        [sys.executable, "-m", "worker"],
        {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "ESCALATIONS_DATA_DIR": str(tmp_path),
            "ESCALATIONS_CODEC__ENABLED": "0",
        },
    )
    assert done.returncode == 1, done.stderr
    assert f"escalations-worker: cannot connect to Temporal at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "Fatal Python error" not in done.stderr


async def test_worker_without_policies_or_roster_stops_naming_the_setting(env, tmp_path):
    base = Settings(policy_dir=TESTS / "policies", roster_path=TESTS / "roster.toml", data_dir=tmp_path)
    with pytest.raises(
        ConfigError, match=r"policy_dir: no policies \(\*\.toml\) in .*nowhere \(set by ESCALATIONS_POLICY_DIR\)"
    ):
        build_worker(env.client, base.model_copy(update={"policy_dir": tmp_path / "nowhere"}))
    with pytest.raises(
        ConfigError, match=r"roster_path: roster file not found: .*roster\.toml \(set by ESCALATIONS_ROSTER\)"
    ):
        build_worker(env.client, base.model_copy(update={"roster_path": tmp_path / "roster.toml"}))


def test_a_worker_without_codec_keys_refuses_unless_plain_payloads_are_chosen(tmp_path):
    done = _run(
        [sys.executable, "-m", "worker"], {"TEMPORAL_ADDRESS": "127.0.0.1:1", "ESCALATIONS_DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 1, done.stderr
    assert "codec: no keys to encrypt customer data with" in done.stderr
    assert "ESCALATIONS_CODEC__ENABLED=false" in done.stderr and "Traceback" not in done.stderr
