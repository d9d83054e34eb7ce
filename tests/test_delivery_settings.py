"""Delivery configuration: environment over file, outbox by default, secrets never shown."""

from __future__ import annotations

import json

import pytest
import structlog
from pydantic import ValidationError

from activities.channels import ChannelDelivery, build_delivery, build_events
from activities.delivery import OutboxDelivery, OutboxEvents
from activities.email import SmtpEmail
from activities.gateway import HttpGateway
from activities.webhooks import WebhookEvents
from escalation import logs
from escalation.config import PROJECT_ROOT, Settings
from escalation.delivery.settings import CONFIG_ENV, DeliverySettings, SmtpSecurity
from escalation.domain.models import ContactChannel, Tier
from escalation.domain.rules.step import Message, MessageKind, Recipient

CONFIG = """
[smtp]
host = "mail.internal"
security = "tls"
username = "notifier"
password = "file-password"
sender = "Care <care@example.com>"

[gateway]
url = "https://sms.example.com/v1/send"
call_url = "https://voice.example.com/v1/call"
auth = "Bearer file-token"
[gateway.body]
To = "{{ to }}"
Body = "{{ text }}"

[webhook]
url = "https://crm.example.com/hooks/escalations"
secret = "file-webhook-secret"

[teams]
agent = "agent-desk@example.com"
"""


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "ESCALATIONS_DELIVERY_CONFIG",
        "ESCALATIONS_SMTP__HOST",
        "ESCALATIONS_SMTP__PASSWORD",
        "ESCALATIONS_SMTP__PORT",
        "ESCALATIONS_WEBHOOK__SECRET",
        "ESCALATIONS_INBOUND__SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_nothing_configured_means_outbox_and_events_file(clean_env, tmp_path):
    settings = DeliverySettings.load()
    assert settings.smtp is None and settings.gateway is None and settings.webhook is None
    assert settings.describe() == {"email": "outbox", "sms": "outbox", "call": "outbox", "events": "events file"}
    assert isinstance(build_delivery(None, tmp_path / "o.jsonl"), OutboxDelivery)
    assert isinstance(build_events(None, tmp_path / "e.jsonl"), OutboxEvents)
    assert Settings().delivery is None


def test_file_then_environment_and_the_environment_wins(clean_env, tmp_path):
    path = tmp_path / "delivery.toml"
    path.write_text(CONFIG)
    clean_env.setenv(CONFIG_ENV, str(path))
    clean_env.setenv("ESCALATIONS_SMTP__PASSWORD", "env-password")
    clean_env.setenv("ESCALATIONS_SMTP__PORT", "2465")
    s = Settings.from_env().delivery
    assert s.smtp.host == "mail.internal" and s.smtp.port == 2465 and s.smtp.security == SmtpSecurity.TLS
    assert s.smtp.password.get_secret_value() == "env-password"
    assert s.gateway.url_for(ContactChannel.SMS) == "https://sms.example.com/v1/send"
    assert s.gateway.url_for(ContactChannel.CALL) == "https://voice.example.com/v1/call"
    assert s.gateway.body == {"To": "{{ to }}", "Body": "{{ text }}"}
    assert s.teams == {Tier.AGENT: "agent-desk@example.com"}
    assert s.describe() == {
        "email": "smtp mail.internal:2465 (tls)",
        "sms": "gateway https://sms.example.com/v1/send",
        "call": "gateway https://voice.example.com/v1/call",
        "events": "webhook https://crm.example.com/hooks/escalations",
    }
    delivery = build_delivery(s, tmp_path / "o.jsonl")
    assert isinstance(delivery, ChannelDelivery)
    assert isinstance(delivery.backends[ContactChannel.EMAIL], SmtpEmail)
    assert delivery.backends[ContactChannel.SMS] is delivery.backends[ContactChannel.CALL]
    assert isinstance(delivery.backends[ContactChannel.SMS], HttpGateway)
    assert isinstance(build_events(s, tmp_path / "e.jsonl"), WebhookEvents)


def test_environment_alone_configures_a_channel(clean_env):
    clean_env.setenv("ESCALATIONS_SMTP__HOST", "relay.local")
    s = DeliverySettings.load()
    assert s.smtp.host == "relay.local" and s.smtp.effective_port == 587 and s.gateway is None


def test_an_empty_variable_is_an_empty_value_not_the_files(tmp_path):
    path = tmp_path / "delivery.toml"
    path.write_text('[inbound]\nsecret = "file-secret"\nport = 9000\n')
    s = DeliverySettings.load(
        {CONFIG_ENV: str(path), "ESCALATIONS_INBOUND__SECRET": "", "escalations_inbound__host": "::1"}
    )
    assert s.inbound.secret is not None and s.inbound.secret.get_secret_value() == ""
    assert (s.inbound.host, s.inbound.port) == ("::1", 9000)


def test_the_file_holds_delivery_settings_only(tmp_path):
    path = tmp_path / "delivery.toml"
    path.write_text('task_queue = "elsewhere"\n')
    with pytest.raises(ValidationError, match="task_queue"):
        DeliverySettings.load({CONFIG_ENV: str(path)})


def test_a_missing_config_file_or_a_typo_is_an_error(clean_env, tmp_path):
    clean_env.setenv(CONFIG_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        DeliverySettings.load()
    typo = tmp_path / "typo.toml"
    typo.write_text('[smtp]\nhost = "x"\npasword = "y"\n')
    clean_env.setenv(CONFIG_ENV, str(typo))
    with pytest.raises(ValidationError, match="pasword"):
        DeliverySettings.load()


def test_tls_and_template_files_are_checked_at_start_up_naming_the_setting_and_the_path(tmp_path):
    from escalation.config import ConfigError

    no_profile = tmp_path / "temporal.toml"
    no_profile.write_text("")
    not_a_cert = tmp_path / "notes.txt"
    not_a_cert.write_text("hello")
    config = tmp_path / "delivery.toml"
    for env, message in [
        (
            {"ESCALATIONS_SMTP__HOST": "relay", "ESCALATIONS_SMTP__CA_FILE": str(tmp_path / "relay-ca.pem")},
            r"smtp\.ca_file: CA file not found: .*relay-ca\.pem",
        ),
        (
            {"ESCALATIONS_SMTP__HOST": "relay", "ESCALATIONS_SMTP__CA_FILE": str(not_a_cert)},
            r"smtp\.ca_file: cannot load CA certificates from .*notes\.txt",
        ),
        ({CONFIG_ENV: str(config)}, r"templates_dir: templates folder not found: .*my-templates"),
    ]:
        config.write_text(f'templates_dir = "{tmp_path / "my-templates"}"\n')
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env, config_file=no_profile)
    (tmp_path / "my-templates").mkdir()
    assert Settings.from_env({CONFIG_ENV: str(config)}, config_file=no_profile).delivery.templates_dir.is_dir()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('To = "{{ phone }}"', r"gateway\.body: To: unknown field phone; templates may use to, channel"),
        ('meta = { refs = ["{{ key }}", "{{ kase }}"] }', r"gateway\.body: meta\.refs\[1\]: unknown field kase"),
        ('To = "{{ to }"', r"gateway\.body: To: template error: unexpected '}'"),
    ],
)
def test_a_gateway_body_template_that_cannot_render_stops_start_up(tmp_path, body, message):
    from escalation.config import ConfigError

    no_profile = tmp_path / "temporal.toml"
    no_profile.write_text("")
    config = tmp_path / "delivery.toml"
    config.write_text(f'[gateway]\nurl = "https://sms.example.com/send"\n[gateway.body]\n{body}\n')
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({CONFIG_ENV: str(config)}, config_file=no_profile)


def test_secrets_never_show_in_reprs_descriptions_or_logs(clean_env, tmp_path, capsys):
    path = tmp_path / "delivery.toml"
    path.write_text(CONFIG)
    clean_env.setenv(CONFIG_ENV, str(path))
    clean_env.setenv("ESCALATIONS_INBOUND__SECRET", "env-inbound-secret")
    s = DeliverySettings.load()
    secrets = ["file-password", "file-token", "file-webhook-secret", "env-inbound-secret"]
    shown = repr(s) + str(s) + json.dumps(s.describe()) + s.model_dump_json()
    assert not [secret for secret in secrets if secret in shown]
    logs.configure()
    try:
        structlog.get_logger().info(
            "worker_started",
            **s.describe(),
            password="file-password",
            webhook_secret="file-webhook-secret",
            auth_token="file-token",
        )
    finally:
        structlog.reset_defaults()
    logged = capsys.readouterr().err
    assert "worker_started" in logged and not [secret for secret in secrets if secret in logged]
    tokened = DeliverySettings(gateway={"url": "https://user:url-password@gw.example.com/send?api_key=url-token"})
    assert tokened.describe()["sms"] == "gateway https://gw.example.com/send"


async def test_team_messages_go_to_the_team_address_or_else_to_the_outbox(tmp_path):
    class Recorder:
        def __init__(self):
            self.got: list[Message] = []

        async def deliver(self, message):
            self.got.append(message)
            return "ok"

    email, outbox = Recorder(), Recorder()
    delivery = ChannelDelivery(
        {ContactChannel.EMAIL: email}, outbox, DeliverySettings(teams={"agent": "desk@example.com"})
    )
    for tier in (Tier.AGENT, Tier.MANAGER):
        await delivery.deliver(
            Message(
                key=f"C-1/run-1/3/unassigned/team-{tier.value}",
                case_id="C-1",
                kind=MessageKind.UNASSIGNED,
                to=Recipient(kind="team", id=f"team-{tier.value}", name="queue", tier=tier),
                channel=ContactChannel.EMAIL,
                subject="waiting",
                body="brief",
            )
        )
    [sent] = email.got
    assert sent.to.email == "desk@example.com" and sent.to.tier == Tier.AGENT
    [queued] = outbox.got
    assert queued.to.tier == Tier.MANAGER and queued.to.email is None


def test_the_example_config_file_loads_with_its_secrets_from_the_environment(clean_env):
    clean_env.setenv(CONFIG_ENV, str(PROJECT_ROOT / "config" / "delivery.example.toml"))
    with pytest.raises(ValidationError, match=r"webhook\.secret"):
        DeliverySettings.load()  # a secret the file leaves to the environment is required
    clean_env.setenv("ESCALATIONS_WEBHOOK__SECRET", "from-env")
    s = DeliverySettings.load()
    assert s.smtp.security == SmtpSecurity.STARTTLS and set(s.teams) == set(Tier)
    assert s.webhook.secret.get_secret_value() == "from-env"


def test_worker_settings_name_a_bad_delivery_setting_and_read_only_the_environment_given(tmp_path):
    from escalation.config import ConfigError

    no_profile = tmp_path / "temporal.toml"
    no_profile.write_text("")
    with pytest.raises(ConfigError, match="no delivery config file at"):
        Settings.from_env({CONFIG_ENV: str(tmp_path / "nope.toml")}, config_file=no_profile)
    with pytest.raises(ConfigError, match=r"smtp\.port: .*integer"):
        Settings.from_env({"ESCALATIONS_SMTP__HOST": "relay", "ESCALATIONS_SMTP__PORT": "five"}, config_file=no_profile)
    s = Settings.from_env(
        {"ESCALATIONS_SMTP__HOST": "relay", "ESCALATIONS_TEAMS__MANAGER": "mgrs@example.com"}, config_file=no_profile
    )
    assert s.delivery.smtp.host == "relay" and s.delivery.teams == {Tier.MANAGER: "mgrs@example.com"}
    assert Settings.from_env({}, config_file=no_profile).delivery.smtp is None
