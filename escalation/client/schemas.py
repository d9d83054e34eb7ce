"""JSON Schemas of the contract, for services written with other Temporal SDKs.

    python -m escalation.client.schemas            # (re)write schemas/ (also: make schemas)
    python -m escalation.client.schemas --check    # exit 1 if schemas/ is out of date

One file per payload model of `escalation.client.contract` (`<Model>.json`, JSON Schema 2020-12) plus
`index.json`, which maps the workflow's start input, updates, queries, result and events to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from escalation.client import contract
from escalation.constants import DEFAULT_TASK_QUEUE, SEARCH_ATTRIBUTES, WORKFLOW_ID_PREFIX, WORKFLOW_TYPE

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "make schemas (python -m escalation.client.schemas)"


def _file(model: type) -> str:
    return f"{model.__name__}.json"


def _index() -> dict[str, Any]:
    return {
        "workflow_type": WORKFLOW_TYPE,
        "workflow_id": f"{WORKFLOW_ID_PREFIX}<case_id>",
        "task_queue": DEFAULT_TASK_QUEUE,
        "search_attributes": SEARCH_ATTRIBUTES,
        "start": _file(contract.START),
        "result": _file(contract.RESULT),
        "updates": {u.name: {"argument": _file(u.arg), "result": _file(u.result)} for u in contract.UPDATES},
        "signals": {s.name: {"argument": _file(s.arg)} for s in contract.SIGNALS},
        "queries": {q.name: {"result": _file(q.result)} for q in contract.QUERIES},
        "events": [_file(e) for e in contract.EVENTS],
    }


def render() -> dict[str, str]:
    """File name -> text of every file schemas/ should hold."""
    files = {}
    for model, mode in contract.payloads().items():
        schema = {"$schema": DIALECT, **model.model_json_schema(mode=mode)}
        files[_file(model)] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    files["index.json"] = json.dumps(_index(), indent=2) + "\n"
    return files


def stale(folder: Path = SCHEMA_DIR) -> list[str]:
    """What differs between `folder` and the models: 'X.json (differs)', '(missing)', '(not in the contract)'."""
    wanted = render()
    found = {p.name: p.read_text() for p in folder.glob("*.json")} if folder.is_dir() else {}
    problems = [
        f"{name} ({'missing' if name not in found else 'differs'})"
        for name, text in wanted.items()
        if found.get(name) != text
    ]
    problems += [f"{name} (not in the contract)" for name in sorted(set(found) - set(wanted))]
    return problems


def write(folder: Path = SCHEMA_DIR) -> list[str]:
    """Bring `folder` up to date; returns what changed."""
    changed = stale(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = render()
    for name, text in wanted.items():
        (folder / name).write_text(text)
    for old in folder.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m escalation.client.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if out of date")
    parser.add_argument("folder", nargs="?", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.folder)
        if problems:
            print(f"{args.folder} is out of date: {', '.join(problems)}; run {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{args.folder} is up to date")
        return 0
    changed = write(args.folder)
    print(f"{args.folder}: " + (f"updated {', '.join(changed)}" if changed else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
