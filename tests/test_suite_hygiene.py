"""The test suite's own rules (issue 22, item 6): fixtures shared through conftest are not
defined again in test modules, and no test sleeps a fixed time hoping that something slower
(an injected latency) is still under way: it waits for the thing itself."""

from __future__ import annotations

import ast
from pathlib import Path

import sqlalchemy as sa

from storage.db import make_engine, migrate
from tests.conftest import copy_migrated_sqlite, create_postgres_database, drop_postgres_database

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


# --- databases migrated once and copied (conftest.py) ------------------------------------------


def _schema(engine) -> dict[str, object]:
    """Tables, their columns and indexes, and the Alembic revision: what a migration makes."""
    inspector = sa.inspect(engine)
    tables = sorted(inspector.get_table_names())
    with engine.connect() as connection:
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return {
        "revision": revision,
        "columns": {
            t: [(c["name"], str(c["type"])) for c in inspector.get_columns(t)] for t in tables
        },
        "indexes": {t: sorted(i["name"] or "" for i in inspector.get_indexes(t)) for t in tables},
    }


def _row_counts(engine) -> set[int]:
    with engine.connect() as connection:
        return {
            connection.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
            for table in sa.inspect(connection).get_table_names()
            if table != "alembic_version"
        }


def test_a_copied_migrated_database_is_the_migrated_database(database_url, tmp_path, request):
    """Tests get copies of one database migrated once (``engine``, ``make_stack``): a copy has
    what migrating an empty database makes, and no row."""
    fresh = make_engine(database_url)  # empty: this test asks for no ``engine``
    migrate(fresh)
    if database_url.startswith("sqlite"):
        copy_migrated_sqlite(tmp_path / "copy.db")
        copied_url = f"sqlite:///{tmp_path / 'copy.db'}"
    else:
        copied_url = create_postgres_database(
            template=request.getfixturevalue("migrated_postgres_template")
        )
    copy = make_engine(copied_url)
    try:
        assert _schema(copy) == _schema(fresh)
        assert _row_counts(copy) == {0}
    finally:
        copy.dispose()
        fresh.dispose()
        if not database_url.startswith("sqlite"):
            drop_postgres_database(copied_url)
