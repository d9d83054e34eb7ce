"""Settings shared by worker, client, CLI and demo, read from environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from escalation.constants import task_queue
from escalation.delivery_settings import DeliverySettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseModel):
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "escalations"
    data_dir: Path = PROJECT_ROOT / "data"
    policy_dir: Path = PROJECT_ROOT / "config" / "policies"
    roster_path: Path = PROJECT_ROOT / "config" / "roster.toml"
    # SMTP, SMS/voice gateway, webhooks, inbound answers; None: everything to the outbox and events file.
    delivery: DeliverySettings | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            address=env.get("TEMPORAL_ADDRESS", cls.model_fields["address"].default),
            namespace=env.get("TEMPORAL_NAMESPACE", cls.model_fields["namespace"].default),
            task_queue=task_queue(),
            data_dir=Path(env.get("ESCALATIONS_DATA_DIR", cls.model_fields["data_dir"].default)),
            policy_dir=Path(env.get("ESCALATIONS_POLICY_DIR", cls.model_fields["policy_dir"].default)),
            roster_path=Path(env.get("ESCALATIONS_ROSTER", cls.model_fields["roster_path"].default)),
            delivery=DeliverySettings.load(),
        )

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.jsonl"

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.jsonl"
