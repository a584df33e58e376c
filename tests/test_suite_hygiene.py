"""The test suite's own rules (issue 22, item 6): fixtures shared through conftest are not
defined again in test modules, and no test sleeps a fixed time hoping that something slower
(an injected latency) is still under way: it waits for the thing itself."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
SHARED = TESTS / "conftest.py"


def _fixtures(path: Path) -> set[str]:
    """Names of the module-level functions of ``path`` decorated as pytest fixtures."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if ast.unparse(target) in {"pytest.fixture", "fixture"}:
                names.add(node.name)
    return names


def _test_modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


def test_the_signed_client_is_one_shared_fixture():
    assert "client" in _fixtures(SHARED)
    copies = [p.name for p in _test_modules() if "client" in _fixtures(p)]
    assert copies == [], f"define `client` once, in conftest.py; copies in {copies}"


# Stacks that are more than settings (a fault-timing clock, a simulator shared across restarts).
STACKS_OF_THEIR_OWN = {"test_faults.py", "test_incidents.py"}


def test_no_module_redefines_a_shared_fixture():
    shared = _fixtures(SHARED) - {"stack_settings"}  # the one meant to be overridden
    redefined = {
        p.name: sorted(shared & _fixtures(p))
        for p in _test_modules()
        if shared & _fixtures(p) - ({"stack"} if p.name in STACKS_OF_THEIR_OWN else set())
    }
    assert redefined == {}, "override `stack_settings`, or use the fixture in conftest.py"


def _sets_a_latency(node: ast.AST) -> bool:
    return isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Attribute) and t.attr == "latency" for t in node.targets
    )


def _sleeps(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and ast.unparse(node.func) == "time.sleep"


def _sleeps_beside_a_latency(path: Path) -> list[int]:
    """Lines of functions that set a simulated latency and also sleep a fixed time."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            inside = list(ast.walk(node))
            if any(map(_sets_a_latency, inside)) and any(map(_sleeps, inside)):
                found.append(node.lineno)
    return found


def test_no_test_races_a_fixed_sleep_against_a_simulated_latency():
    races = {p.name: _sleeps_beside_a_latency(p) for p in _test_modules()}
    assert {name: lines for name, lines in races.items() if lines} == {}
