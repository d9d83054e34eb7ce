"""Who may act, end to end on the dev server: every command's credential is verified before it can enter a case's
history, the roster and the policy decide, and a refusal changes nothing. The pure rules are tested in
test_permissions.py, the credentials library in test_identity.py."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from escalation.client import Case, EscalationClient, contract
from escalation.client.credentials import use_credential
from escalation.client.errors import EscalationError, InvalidArgument, InvalidState, NotPermitted, Unauthenticated
from escalation.domain.models import CaseState, Tier
from escalation.domain.principal import Identity
from escalation.identity import IdentitySettings, Signer, new_key
from tests.cases import case_input, eventually
from tests.conftest import IDENTITY, TESTS, make_settings
from worker import build_worker
from workflows.replay import replay_interceptors

SIGNER = Signer.from_settings(IDENTITY)
assert SIGNER is not None


@pytest_asyncio.fixture
async def esc(env, worker, settings) -> EscalationClient:
    return EscalationClient(env.client, task_queue=settings.task_queue)


def bare(client: Client) -> Client:
    """A client that sends commands as they are, with no credential (a raw SDK caller)."""
    return Client(**(client.config() | {"interceptors": []}))


async def opened(esc: EscalationClient, **overrides) -> tuple[Case, CaseState]:
    case = await esc.open(case_input("standard", **overrides))

    async def owned() -> CaseState | None:
        s = await case.state()
        return s if s.owner is not None else None

    return case, await eventually(owned)


async def unchanged(case: Case, before: CaseState) -> None:
    after = await case.state()
    assert after.timeline == before.timeline and after.offers == before.offers and after.tier == before.tier


def forged(token: str) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "maya"  # the same key id and signature, another person
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


async def test_a_command_without_a_valid_credential_is_refused_and_changes_nothing(env, esc):
    case, before = await opened(esc)
    owner = before.owner.id
    raw = Case(bare(env.client).get_workflow_handle(case.handle.id), case.case_id)
    with pytest.raises(Unauthenticated, match="credential: the command carries no credential; nothing was applied"):
        await raw.acknowledge({"actor": owner})
    expired = SIGNER.mint(owner, now=datetime.now(UTC) - timedelta(hours=1))
    for token, reason in [
        (expired, "expired"),
        (forged(SIGNER.mint(owner)), "signature"),
        ("not a token", "JWT"),
        (Signer.from_settings(_other_keys()).mint(owner), "unknown key id"),  # type: ignore[union-attr]
    ]:
        with use_credential(token), pytest.raises(Unauthenticated, match=reason) as refused:
            await case.acknowledge({"actor": owner})
        assert token not in str(refused.value)  # a refusal never quotes the credential
    await unchanged(case, before)


def _other_keys() -> IdentitySettings:
    """Keys nobody told the worker about (a credential minted elsewhere)."""
    path = Path(tempfile.mkdtemp(prefix="escalations-other-keys-")) / "other.jwks"
    new_key(path, kid="other")
    return IdentitySettings(keys=str(path))


async def test_actor_must_be_who_the_credential_names_and_nobody_can_be_the_case_or_its_customer(esc):
    case, before = await opened(esc)
    with use_credential(SIGNER.mint("ana")), pytest.raises(NotPermitted, match="'maya' is not who sent this"):
        await case.add_note({"actor": "maya", "text": "I am the manager"})
    with pytest.raises(ValueError, match="system"):
        SIGNER.mint("system")
    # A customer credential cannot act as a rep: "customer" only answers check-ins and relays replies.
    with use_credential(SIGNER.mint("customer", case_id=case.case_id)), pytest.raises(NotPermitted):
        await case.add_note({"actor": "customer", "text": "refund me twice"})
    with use_credential(SIGNER.mint("ana")), pytest.raises(NotPermitted, match="'customer' is not who sent this"):
        await case.add_note({"actor": "customer", "text": "written as the customer"})
    await unchanged(case, before)


async def test_unknown_and_inactive_reps_cannot_act(env, tmp_path):
    roster = tmp_path / "roster.toml"
    shutil.copy(TESTS / "roster.toml", roster)
    settings = make_settings(tmp_path).model_copy(update={"roster_path": roster})
    async with build_worker(env.client, settings):
        esc = EscalationClient(env.client, task_queue=settings.task_queue)
        case, before = await opened(esc)
        with pytest.raises(Unauthenticated, match="'eve' is not a rep or service of the roster"):
            await case.acknowledge({"actor": "eve"})
        text = roster.read_text().replace('id = "sam"\n', 'id = "sam"\nactive = false\n')
        roster.write_text(text)
        with pytest.raises(Unauthenticated, match="rep 'sam' is inactive in the roster"):
            await case.add_note({"actor": "sam", "text": "still here?"})
        await unchanged(case, before)


async def test_a_lower_tier_may_not_and_a_higher_tier_may_as_the_policy_says(esc):
    case, state = await opened(esc, threat=True)  # threats start at supervisor
    assert state.tier == Tier.SUPERVISOR
    with pytest.raises(NotPermitted, match=r"tara \(team_lead\) may not escalate on case .* at supervisor"):
        await case.escalate({"actor": "tara", "reason": "needs_authority"})
    note = await case.add_note({"actor": "maya", "text": "I am taking a look"})
    assert note.actor == "maya" and note.detail["override_of"] == state.owner.id
    with pytest.raises(NotPermitted, match=r"only its owner \(sam\) or a rep above supervisor may"):
        await case.resolve({"actor": "tara", "resolution": "x", "root_cause": "other", "kb_missing": True})


async def test_an_agent_cannot_use_a_managers_limit_and_the_refusal_names_who_can(esc):
    case, state = await opened(esc)
    agent = state.owner.id
    with pytest.raises(InvalidArgument) as refused:
        await case.propose_offer({"actor": agent, "kind": "compensation", "amount": "4000", "description": "refund"})
    text = str(refused.value)
    assert f"above {agent}'s (agent) authority limit of 25 EUR" in text
    assert "the lowest tier that may grant it is manager (limit 5000)" in text
    assert "customer lifetime value is 4200" in text
    await case.escalate({"actor": agent, "reason": "needs_authority", "target_tier": "manager"})

    async def at_manager() -> CaseState | None:
        s = await case.state()
        return s if s.tier == Tier.MANAGER and s.owner is not None else None

    await eventually(at_manager)
    with pytest.raises(NotPermitted):  # the agent cannot act on the manager's case at all
        await case.propose_offer({"actor": agent, "kind": "compensation", "amount": "20", "description": "refund"})
    offer = await case.propose_offer({"actor": "maya", "kind": "compensation", "amount": "6000", "description": "x"})
    assert offer.proposed_by == "maya" and offer.amount == 6000  # her own limit (10,000), above the tier's 5,000


async def test_a_customers_answer_needs_the_customers_credential_for_that_case(env, esc):
    case, state = await opened(esc)
    owner = state.owner.id
    await case.resolve({"actor": "tara", "resolution": "refunded", "root_cause": "billing_error", "kb_article": "KB-1"})
    raw = Case(bare(env.client).get_workflow_handle(case.handle.id), case.case_id)
    with pytest.raises(Unauthenticated):
        await raw.followup_response({"answer": "not_fixed"})
    with use_credential(SIGNER.mint(owner)), pytest.raises(NotPermitted, match="only the customer answers"):
        await case.followup_response({"answer": "not_fixed"})
    other = SIGNER.mint("customer", case_id="C-somebody-else")
    with use_credential(other), pytest.raises(NotPermitted, match="is for case C-somebody-else"):
        await case.followup_response({"answer": "not_fixed"})
    # The customer's own credential passes who-may-act; the case then says no check-in went out yet.
    with (
        use_credential(SIGNER.mint("customer", case_id=case.case_id)),
        pytest.raises(InvalidState, match="no check-in"),
    ):
        await case.followup_response({"answer": "fixed"})


async def test_a_case_started_without_a_credential_fails_at_once(env, settings, worker):
    inp = case_input("standard")
    handle = await bare(env.client).start_workflow(
        "Escalation", inp, id=f"escalation-{inp.case_id}", task_queue=settings.task_queue
    )
    with pytest.raises(Exception) as failed:
        await handle.result()
    assert "opening a case needs a credential naming who opens it" in str(failed.value.cause)  # type: ignore[attr-defined]
    esc = EscalationClient(env.client, task_queue=settings.task_queue)
    with use_credential(SIGNER.mint("roster")), pytest.raises(NotPermitted, match=r"roster \(service\) may not open"):
        await esc.open(case_input("standard", opened_by="roster"))  # a service the roster lets reassign, not open


async def test_keys_rotate_old_credentials_verify_until_the_key_is_removed_and_histories_still_replay(env, tmp_path):
    keys = tmp_path / "identity.jwks"
    new_key(keys, kid="k1")
    identity = IdentitySettings(keys=str(keys))
    settings = make_settings(tmp_path).model_copy(update={"identity": identity})
    from escalation.service.worker import build_identity

    checker = build_identity(settings)
    old = Signer.from_settings(identity)
    assert old is not None
    async with build_worker(env.client, settings, identity=checker):
        esc = EscalationClient(env.client, task_queue=settings.task_queue)
        with use_credential(old.mint("ana")):
            case, state = await opened(esc)
        owner = state.owner.id
        new_key(keys, kid="k2")  # the new key signs from now on; k1 still verifies
        await checker.verifier.refresh()
        new = Signer.from_settings(identity)
        assert new is not None and new.kid == "k2"
        with use_credential(old.mint(owner)):
            await case.add_note({"actor": owner, "text": "signed with the old key"})
        with use_credential(new.mint(owner)):
            await case.add_note({"actor": owner, "text": "signed with the new key"})
        document = json.loads(keys.read_text())
        document["keys"] = [k for k in document["keys"] if k["kid"] != "k1"]
        keys.write_text(json.dumps(document))
        await checker.verifier.refresh()
        with use_credential(old.mint(owner)), pytest.raises(Unauthenticated, match="k1"):
            await case.add_note({"actor": owner, "text": "the old key is gone"})
        with use_credential(new.mint(owner)):
            await case.add_note({"actor": owner, "text": "the new key still works"})
        history = await case.handle.fetch_history()
    from temporalio.worker import Replayer

    from escalation.client.converter import data_converter
    from workflows import Escalation

    # Replay needs no key: it reads the principals the case recorded.
    result = await Replayer(
        workflows=[Escalation], data_converter=data_converter, interceptors=replay_interceptors()
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_service_acting_for_a_rep_is_recorded_beside_them(env, tmp_path):
    roster = tmp_path / "roster.toml"
    roster.write_text(
        (TESTS / "roster.toml").read_text() + '\n[[services]]\nid = "crm"\nname = "Helpdesk"\nacts_for_reps = true\n'
    )
    settings = make_settings(tmp_path).model_copy(update={"roster_path": roster})
    async with build_worker(env.client, settings):
        esc = EscalationClient(env.client, task_queue=settings.task_queue)
        case, state = await opened(esc)
        owner = state.owner.id
        with use_credential(SIGNER.mint(owner, acting_service="crm")):
            entry = await case.add_note({"actor": owner, "text": "logged from the helpdesk"})
        assert (entry.actor, entry.via) == (owner, "crm")
        with use_credential(SIGNER.mint(owner, acting_service="crm")):
            await case.escalate({"actor": owner, "reason": "complexity"})
        assert f"by {owner} through crm: complexity" in (await case.brief()).text


# Every command a rep sends, with an argument of the right shape; ids that do not exist are fine: who may act is
# decided before anything else, so a lower tier is refused for that, and a rep who may act gets past it.
COMMANDS = {
    "acknowledge": lambda a: {"actor": a},
    "escalate": lambda a: {"actor": a, "reason": "complexity"},
    "de_escalate": lambda a: {"actor": a, "reason": "handled lower"},
    "add_note": lambda a: {"actor": a, "text": "a note"},
    "propose_offer": lambda a: {"actor": a, "kind": "goodwill", "amount": "0", "description": "apology"},
    "record_offer_response": lambda a: {"actor": a, "offer_id": "offer-9", "answer": "accepted"},
    "wait_on_customer": lambda a: {"actor": a, "reason": "bank statement"},
    "customer_replied": lambda a: {"actor": a},
    "resolve": lambda a: {"actor": a, "resolution": "fixed", "root_cause": "other", "kb_missing": True},
    "close": lambda a: {"actor": a, "outcome": "legal", "reason": "lawyer's letter"},
    "reassign": lambda a: {"actor": a, "reason": "rebalancing"},
    "schedule_callback": lambda a: {"actor": a, "at": "earliest"},
    "reschedule_callback": lambda a: {"actor": a, "callback_id": "callback-9", "at": "earliest"},
    "cancel_callback": lambda a: {"actor": a, "callback_id": "callback-9", "reason": "not needed"},
    "record_callback_outcome": lambda a: {"actor": a, "callback_id": "callback-9", "outcome": "reached"},
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_each_command_takes_only_someone_who_may_send_it(env, esc, command):
    case, state = await opened(esc, threat=True)  # a threat starts at supervisor: sam owns it
    assert (state.tier, state.owner.id) == (Tier.SUPERVISOR, "sam")
    arg = COMMANDS[command]

    async def send(actor: str, token: str | None = None):
        with use_credential(token or SIGNER.mint(actor)):
            return await case.update(getattr(contract, command.upper()), arg(actor))

    with pytest.raises(Unauthenticated, match="'eve' is not a rep or service of the roster"):
        await send("eve")
    with pytest.raises(Unauthenticated, match="expired"):
        await send("sam", SIGNER.mint("sam", now=datetime.now(UTC) - timedelta(hours=1)))
    with pytest.raises(NotPermitted, match="'sam' is not who sent this"):
        await send("sam", SIGNER.mint("maya"))
    with pytest.raises(NotPermitted, match=r"tara \(team_lead\) may not"):
        await send("tara")
    await unchanged(case, state)
    # The owner gets past who may act; whatever else the case then says is about the case (no such offer,
    # nothing to reply to, a legal close only at the top tier), not about them.
    try:
        await send("sam")
    except (NotPermitted, Unauthenticated) as err:
        pytest.fail(f"the owner may {command}: {err}")
    except EscalationError:
        pass


def test_every_update_of_a_case_has_a_validator_where_its_credential_is_verified():
    """Handlers read the recorded credential unverified: only an update with a validator may exist."""
    from temporalio.workflow import _Definition

    from workflows import Escalation

    defn = _Definition.must_from_class(Escalation)
    assert None not in defn.updates, "a dynamic update handler would take commands nobody verified"
    unguarded = sorted(name for name, update in defn.updates.items() if update.validator is None)
    assert unguarded == []


def test_a_recorded_credential_is_read_leniently_whatever_todays_rules():
    from temporalio.api.common.v1 import Payload

    from escalation.identity import header_payload
    from workflows.verified import recorded_identity

    token = SIGNER.mint("ana", acting_service="crm")
    assert recorded_identity(header_payload(token)) == Identity(subject="ana", acting_service="crm", key_id=SIGNER.kid)
    # A token today's verifier would refuse (far too long an id) still reads as it was recorded.
    body = base64.urlsafe_b64encode(json.dumps({"sub": "x" * 500, "checkin": True}).encode()).decode().rstrip("=")
    assert recorded_identity(Payload(metadata={"encoding": b"binary/plain"}, data=f"h.{body}.s".encode())) == (
        Identity(subject="x" * 500)
    )
    assert recorded_identity(Payload(metadata={"encoding": b"json/plain"}, data=b'"not a token"')) is None
    assert recorded_identity(None) is None
