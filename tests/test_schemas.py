"""The JSON Schemas in schemas/ are current, complete and describe what really travels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from escalation.client import contract, schemas
from escalation.domain.models import CaseEvent, CaseState, EscalationInput
from escalation.domain.policy import PolicyStore
from escalation.domain.rules import open_case
from tests.cases import case_input
from workflows import Escalation

ROOT = Path(__file__).resolve().parent.parent


def test_schemas_folder_is_up_to_date():
    problems = schemas.stale()
    assert not problems, (
        f"schemas/ is out of date: {', '.join(problems)}. Regenerate with `{schemas.REGENERATE}` and commit the result."
    )


def test_stale_check_names_the_file_and_the_command(tmp_path):
    schemas.write(tmp_path)
    assert schemas.stale(tmp_path) == []
    (tmp_path / "OfferInput.json").write_text("{}")
    (tmp_path / "Gone.json").write_text("{}")
    (tmp_path / "CaseState.json").unlink()
    assert schemas.stale(tmp_path) == [
        "OfferInput.json (differs)",
        "CaseState.json (missing)",
        "Gone.json (not in the contract)",
    ]
    assert schemas.main(["--check", str(tmp_path)]) == 1
    assert schemas.main([str(tmp_path)]) == 0 and schemas.stale(tmp_path) == []


def test_contract_table_matches_the_workflow():
    """Every update and query the workflow defines is in the contract table with the same types, so the
    client, the CLI and the schemas cannot silently miss one."""
    defn = Escalation.__temporal_workflow_definition
    assert {u.name for u in contract.UPDATES} == set(defn.updates)
    for update in contract.UPDATES:
        arg_types = defn.updates[update.name].arg_types
        assert arg_types == [update.arg], update.name
    assert {q.name for q in contract.QUERIES} == set(defn.queries)
    assert {s.name for s in contract.SIGNALS} == set(defn.signals)
    assert defn.arg_types == [contract.START] and defn.ret_type is contract.RESULT
    index = json.loads((schemas.SCHEMA_DIR / "index.json").read_text())
    assert set(index["updates"]) == set(defn.updates) and set(index["queries"]) == set(defn.queries)


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((schemas.SCHEMA_DIR / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_example_case_and_real_state_match_their_schemas():
    _validator("EscalationInput.json").validate(json.loads((ROOT / "examples" / "case.json").read_text()))
    # A state made by the rules, as the `state` query returns it.
    policy = PolicyStore(ROOT / "tests" / "policies").get("standard")
    state, _ = open_case(case_input(), policy, datetime(2026, 11, 23, 9, tzinfo=UTC), "run-1")
    _validator("CaseState.json").validate(state.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("name", "payload", "path"),
    [
        ("EscalationInput.json", {**json.loads((ROOT / "examples" / "case.json").read_text()), "currncy": "EUR"}, []),
        (
            "EscalationInput.json",
            {**json.loads((ROOT / "examples" / "case.json").read_text()), "severity": "urgent"},
            ["severity"],
        ),
        ("OfferInput.json", {"actor": "ana", "kind": "refund", "amount": "20", "description": "x"}, ["kind"]),
        ("AcknowledgeInput.json", {"actor": ""}, ["actor"]),
    ],
)
def test_schemas_refuse_what_the_workflow_refuses(name, payload, path):
    errors = list(_validator(name).iter_errors(payload))
    assert errors and any(list(e.absolute_path) == path for e in errors), [e.message for e in errors]


def test_input_schemas_accept_money_as_string_and_output_schemas_promise_strings():
    offer_in = json.loads((schemas.SCHEMA_DIR / "OfferInput.json").read_text())
    assert "string" in json.dumps(offer_in["properties"]["amount"])
    offer_out = json.loads((schemas.SCHEMA_DIR / "Offer.json").read_text())
    assert offer_out["properties"]["amount"]["type"] == "string"
    # The internal continue-as-new field is not part of the published input.
    assert "carried" not in json.loads((schemas.SCHEMA_DIR / "EscalationInput.json").read_text())["properties"]
    assert {EscalationInput, CaseState, CaseEvent} <= set(contract.payloads())
