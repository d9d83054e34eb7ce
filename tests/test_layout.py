"""The layout keeps its promises: the package imports no script, benchmark or test, and the domain no temporalio."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = sorted((ROOT / "escalation").rglob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", PACKAGE, ids=[str(p.relative_to(ROOT)) for p in PACKAGE])
def test_the_package_imports_no_script_benchmark_or_test(path):
    bad = {m for m in imports(path) if m.split(".")[0] in ("worker", "bench", "tests")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "escalation" / "domain").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_domain_imports_no_temporalio_and_nothing_above_it(path):
    above = ("escalation.client", "escalation.cli", "escalation.delivery", "escalation.service", "escalation.dev")
    bad = {m for m in imports(path) if m.split(".")[0] == "temporalio" or m.startswith(above)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_readme_layout_names_every_module_of_the_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```")[1]
    modules = [p for p in PACKAGE if p.name != "__init__.py" and "rules" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in modules if p.stem not in block]
    folders = {p.parent.name + "/" for p in PACKAGE if p.parent != ROOT / "escalation"}
    missing += [f for f in folders if f not in block]
    assert not missing, f"README Layout does not mention {missing}"
    rules = {p.stem for p in (ROOT / "escalation" / "domain" / "rules").glob("*.py") if p.stem != "__init__"}
    assert all(r in block for r in rules), sorted(r for r in rules if r not in block)
