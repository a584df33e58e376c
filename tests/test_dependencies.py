"""Dependencies honest: what the code imports is what pyproject.toml declares, and
python-binance still has the public interface (and the one pinned private hook) that
bot/binance/read_only_client.py relies on.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import binance.client
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.binance.budget import WeightBudget
from bot.binance.errors import ForbiddenEndpoint
from bot.binance.read_only_client import ReadOnlyClient
from bot.binance.transport import KeyType, Transport, load_private_key

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_DIRS = ("bot", "storage")  # installed: only [project].dependencies may be assumed
DEV_DIRS = ("tests", "bench")  # run from a checkout with the dev extra installed
FIRST_PARTY = {"bot", "storage", "tests", "bench"}


def _requirements(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(req.name): req for req in map(Requirement, specs)}


RUNTIME = _requirements(PYPROJECT["project"]["dependencies"])
DEV = RUNTIME | _requirements(PYPROJECT["project"]["optional-dependencies"]["dev"])


# --- (a) every third-party import is declared ---------------------------------------------------


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level module, line) of every absolute import in the file, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno
        elif (  # importlib.import_module("x.y") / __import__("x") with a literal name
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.args[0].value.partition(".")[0], node.lineno


def _is_local(module: str, path: Path) -> bool:
    """The project's own packages, or a module beside the importing file (bench/_common.py)."""
    here = path.parent
    return (
        module in FIRST_PARTY
        or (here / f"{module}.py").is_file()
        or (here / module / "__init__.py").is_file()
    )


def _third_party_imports(dirs: tuple[str, ...]) -> dict[str, list[str]]:
    """Third-party top-level module -> ["file:line", ...] for every .py under dirs."""
    found: dict[str, list[str]] = {}
    for top in dirs:
        for path in sorted((ROOT / top).rglob("*.py")):
            for module, line in _imports(path):
                if module in sys.stdlib_module_names or _is_local(module, path):
                    continue
                found.setdefault(module, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def _undeclared(dirs: tuple[str, ...], declared: dict[str, Requirement], where: str) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, sites in sorted(_third_party_imports(dirs).items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(
                f"module {module!r} (imported at {', '.join(sites)}) belongs to no installed "
                f"distribution: install it and declare it in {where}"
            )
        elif not dists & declared.keys():
            problems.append(
                f"module {module!r} (imported at {', '.join(sites)}) comes from "
                f"{' / '.join(sorted(dists))}, which is not declared in {where}"
            )
    return problems


def test_runtime_code_imports_only_declared_dependencies():
    problems = _undeclared(RUNTIME_DIRS, RUNTIME, "pyproject.toml [project].dependencies")
    assert not problems, "\n".join(problems)


def test_tests_and_benchmarks_import_only_declared_dependencies():
    where = "pyproject.toml [project].dependencies or the dev extra"
    problems = _undeclared(DEV_DIRS, DEV, where)
    assert not problems, "\n".join(problems)


def test_every_runtime_dependency_is_imported_by_the_runtime_code():
    """A runtime dependency nothing in bot/ or storage/ imports belongs in an extra (or nowhere)."""
    providers = importlib.metadata.packages_distributions()
    imported = {
        canonicalize_name(dist)
        for module in _third_party_imports(RUNTIME_DIRS)
        for dist in providers.get(module, [])
    }
    unused = sorted(RUNTIME.keys() - imported)
    assert not unused, (
        f"declared in [project].dependencies but imported by nothing under bot/ or storage/: "
        f"{', '.join(unused)}; move each to the extra that uses it (dev for tests)"
    )


def test_the_scan_sees_imports_of_every_kind(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, yaml.constructor\n"
        "from Crypto.PublicKey import RSA\n"
        "from . import sibling\n"
        "def f():\n"
        "    import binance\n"
        "    return __import__('slack_sdk'), importlib.import_module('sqlmodel.main')\n"
    )
    assert {m for m, _ in _imports(sample)} == {
        "os",
        "yaml",
        "Crypto",
        "binance",
        "slack_sdk",
        "sqlmodel",
    }


# --- (b) python-binance through its public interface ------------------------------------------
#
# bot/binance/read_only_client.py is the one module that imports python-binance. It builds a
# Client with public constructor keywords, sets public attributes (the session it sends through,
# the base URLs, recvWindow, the clock offset), calls public reads, and uses exactly one private
# method, for which no public one exists. A release that drops or changes any of these fails
# here, not in production.

ADAPTER = ROOT / "bot" / "binance" / "read_only_client.py"
BROKEN = "python-binance changed the interface bot/binance/read_only_client.py relies on: "

# Client(...) keywords the adapter passes (ping= appeared in 1.0.20).
CONSTRUCTOR_KEYWORDS = ("api_key", "api_secret", "requests_params", "private_key", "ping")
# Attributes of a Client the adapter sets, or reads (PRIVATE_KEY, to check the key was read as
# the declared type). Setting one python-binance no longer reads fails silently: the behavioural
# test below sends a request and looks at what arrived.
ATTRIBUTES = (
    "session",
    "API_URL",
    "MARGIN_API_URL",
    "REQUEST_RECVWINDOW",  # before 1.0.23 there was none, and recvWindow was never sent
    "timestamp_offset",
    "PRIVATE_KEY",
)
# The public reads the adapter calls (ReadOnlyClient has a method of the same name for each),
# and the one path each must request.
PUBLIC_READS = {
    "get_server_time": "/api/v3/time",
    "get_account_api_permissions": "/sapi/v1/account/apiRestrictions",
    "get_account_api_trading_status": "/sapi/v1/account/apiTradingStatus",
    "get_account_status": "/sapi/v1/account/status",
    "get_withdraw_history": "/sapi/v1/capital/withdraw/history",
    "get_deposit_history": "/sapi/v1/capital/deposit/hisrec",
}
# No release up to 1.0.37 has a public method for GET /sapi/v1/capital/withdraw/address/list:
# ReadOnlyClient.get_withdraw_address_list calls this private one, pinned here (parameters as
# in every release from 1.0.19 to 1.0.37).
PRIVATE_HOOKS = {
    "_request_margin_api": ("self", "method", "path", "signed", "version", "**kwargs"),
}
WITHDRAW_ADDRESSES = "/sapi/v1/capital/withdraw/address/list"


def _parameters(function) -> tuple[str, ...]:
    marks: dict[inspect._ParameterKind, str] = {
        inspect.Parameter.VAR_POSITIONAL: "*",
        inspect.Parameter.VAR_KEYWORD: "**",
    }
    return tuple(
        marks.get(p.kind, "") + name for name, p in inspect.signature(function).parameters.items()
    )


def _library_method(name: str):
    """The method as python-binance defines it: Client or its bases."""
    for cls in binance.client.Client.__mro__:
        if name in vars(cls):
            return cls, vars(cls)[name]
    return None, None


def _python_binance_private_names() -> set[str]:
    """Every _name python-binance's Client defines: methods, class and instance attributes."""
    names = {name for cls in binance.client.Client.__mro__ for name in vars(cls)}
    names |= set(vars(binance.client.Client(ping=False)))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _names_used(path: Path) -> set[str]:
    """Attribute names read or written, and names of functions defined, in a module."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            used.add(node.name)
    return used


def test_only_the_adapter_imports_python_binance():
    importers = sorted(
        site.split(":")[0] for site in _third_party_imports(RUNTIME_DIRS).get("binance", [])
    )
    assert set(importers) == {str(ADAPTER.relative_to(ROOT))}, (
        f"python-binance is imported by {importers}: only {ADAPTER.relative_to(ROOT)} may, "
        f"so that one module holds everything the bot relies on in it"
    )


def test_the_adapter_uses_no_private_python_binance_name_but_the_pinned_hook():
    private = _names_used(ADAPTER) & _python_binance_private_names()
    unexpected = sorted(private - PRIVATE_HOOKS.keys())
    assert not unexpected, (
        f"{ADAPTER.relative_to(ROOT)} uses python-binance's private {', '.join(unexpected)} "
        f"(or names its own helpers like them): use the public interface, or pin a hook that "
        f"truly has no public equivalent in PRIVATE_HOOKS, with the reason"
    )


@pytest.mark.parametrize("name", list(PRIVATE_HOOKS))
def test_python_binance_still_has_the_private_hook_the_adapter_calls(name):
    expected = PRIVATE_HOOKS[name]
    cls, method = _library_method(name)
    assert method is not None, (
        f"{BROKEN}binance.client.Client (and its bases) no longer define {name}(); "
        f"the adapter calls {name}({', '.join(expected)}). Look for a public method that does "
        f"the same, or adapt ReadOnlyClient, then PRIVATE_HOOKS"
    )
    actual = _parameters(method)
    assert actual == expected, (
        f"{BROKEN}{cls.__qualname__}.{name} now takes ({', '.join(actual)}), "
        f"the adapter expects ({', '.join(expected)}). Adapt ReadOnlyClient, then PRIVATE_HOOKS"
    )


def test_python_binance_constructor_takes_the_keywords_the_adapter_passes():
    parameters = inspect.signature(binance.client.Client.__init__).parameters
    missing = [k for k in CONSTRUCTOR_KEYWORDS if k not in parameters]
    assert not missing, f"{BROKEN}Client.__init__ no longer takes {', '.join(missing)}"


def test_python_binance_client_still_has_the_attributes_the_adapter_sets():
    client = binance.client.Client(ping=False)
    missing = [name for name in ATTRIBUTES if not hasattr(client, name)]
    assert not missing, f"{BROKEN}a Client no longer has {', '.join(missing)}"


def test_python_binance_still_has_the_public_reads_the_adapter_calls():
    missing = [
        name for name in PUBLIC_READS if not callable(getattr(binance.client.Client, name, None))
    ]
    assert not missing, f"{BROKEN}Client no longer has {', '.join(missing)}()"


@pytest.mark.parametrize("name", [*PUBLIC_READS, "get_withdraw_address_list"])
def test_each_read_requests_its_own_allow_listed_path(sim, name):
    key = sim.add_key(key_type="ED25519")
    transport = Transport(sim.url, 2.0, 5000, WeightBudget(), pool=1)
    client = ReadOnlyClient(
        transport, key.api_key, private_key=load_private_key(KeyType.ED25519, key.secret)
    )
    getattr(client, name)()
    expected = PUBLIC_READS.get(name, WITHDRAW_ADDRESSES)
    assert [(r.method, r.path, r.status) for r in sim.request_log] == [("GET", expected, 200)], (
        f"{BROKEN}{name}() no longer requests GET {expected} alone"
    )


def test_python_binance_signs_and_sends_through_the_gated_transport(sim):
    """What python-binance sends goes through the session it was given: booked in the
    gateway's budget, with the API key, the shared clock offset and recvWindow; and what
    python-binance's own write methods send is refused there, before a byte leaves."""
    key = sim.add_key()
    budget = WeightBudget()
    transport = Transport(sim.url, 2.0, 5000, budget, pool=1)
    transport.clock_offset_ms = -2_000
    client = ReadOnlyClient(transport, key.api_key, key.secret)
    library = client._binance  # the python-binance Client inside the adapter
    assert library.session is client.session is transport.client_session, (
        f"{BROKEN}a Client no longer keeps the session it is given in .session"
    )
    expected_ms = time.time() * 1000 + transport.clock_offset_ms
    client.get_account_api_permissions()
    (sent,) = sim.request_log
    assert (sent.path, sent.status, sent.api_key) == (
        "/sapi/v1/account/apiRestrictions",
        200,
        key.api_key,
    ), f"{BROKEN}the signed read did not arrive as sent: {sent}"
    assert budget.stats().sent == 1, f"{BROKEN}python-binance sent around the gated session"
    assert sent.params.get("recvWindow") == "5000", (
        f"{BROKEN}signing no longer sends REQUEST_RECVWINDOW as recvWindow"
    )
    assert abs(int(sent.params["timestamp"]) - expected_ms) < 1_000, (
        f"{BROKEN}signing no longer adds timestamp_offset to the timestamp"
    )
    writes = [
        lambda: library.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1),
        lambda: library.withdraw(coin="USDT", address="0xevil", amount=100),
        lambda: library.get_account(),  # a read, but not on the allow-list
    ]
    for write in writes:
        with pytest.raises(ForbiddenEndpoint):
            write()
    assert len(sim.request_log) == 1 and budget.stats().sent == 1


def test_python_binance_has_a_floor_and_no_ceiling():
    """The adapter relies only on python-binance's public interface (and one pinned hook), and
    the tests above check it on whatever release is installed: no upper bound is needed."""
    bound = RUNTIME["python-binance"].specifier
    capped = [s for s in bound if s.operator in ("<", "<=", "==", "===", "~=")]
    assert not capped and any(s.operator == ">=" for s in bound), (
        f"python-binance's bound is {bound}: give it a floor (>=) and no ceiling"
    )


def test_installed_python_binance_is_within_the_declared_bound():
    version = importlib.metadata.version("python-binance")
    bound = RUNTIME["python-binance"].specifier
    assert bound.contains(version, prereleases=True), (
        f"python-binance {version} is installed, outside pyproject.toml's bound {bound}"
    )
