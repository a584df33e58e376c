"""Dependencies honest: what the code imports is what pyproject.toml declares, and the
python-binance internals that bot/binance/transport.py overrides are still the ones it expects.
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
from bot.binance.transport import ReadOnlyClient, Transport

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


# --- (b) the python-binance internals transport.py relies on ------------------------------------

BROKEN = "python-binance changed the internals bot/binance/transport.py relies on: "

# Parameter names (kind-marked) of the private methods ReadOnlyClient overrides, as in
# python-binance 1.0.37, and identical in every release from 1.0.19 to 1.0.37 (1.0.18 added an
# `order_params` parameter to _get_request_kwargs, 1.0.19 removed it again). The bound in
# pyproject.toml says which releases were checked, and why it starts where it does.
OVERRIDDEN = {
    "_init_private_key": ("self", "private_key", "private_key_pass"),
    "_init_session": ("self",),
    "_get_request_kwargs": ("self", "method", "signed", "force_params", "**kwargs"),
    "_request": ("self", "method", "uri", "signed", "force_params", "**kwargs"),
}
# What ReadOnlyClient calls without overriding it.
CALLED = {
    "_get_headers": ("self",),
}
# Client.__init__ keywords ReadOnlyClient passes (ping= appeared in 1.0.20).
CONSTRUCTOR_KEYWORDS = ("api_key", "api_secret", "ping")
# Class attributes ReadOnlyClient sets: setting one python-binance no longer reads fails silently
# (before 1.0.23 there was no REQUEST_RECVWINDOW, and recvWindow was never sent).
SETTINGS = ("API_URL", "MARGIN_API_URL", "REQUEST_TIMEOUT", "REQUEST_RECVWINDOW")


def _parameters(function) -> tuple[str, ...]:
    marks = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return tuple(
        marks.get(p.kind, "") + name for name, p in inspect.signature(function).parameters.items()
    )


def _library_method(name: str):
    """The method as python-binance defines it: Client or its bases, never ReadOnlyClient."""
    for cls in binance.client.Client.__mro__:
        if name in vars(cls):
            return cls, vars(cls)[name]
    return None, None


@pytest.mark.parametrize("name", [*OVERRIDDEN, *CALLED])
def test_python_binance_still_has_the_private_methods_the_transport_relies_on(name):
    expected = {**OVERRIDDEN, **CALLED}[name]
    cls, method = _library_method(name)
    assert method is not None, (
        f"{BROKEN}binance.client.Client (and its bases) no longer define {name}(); "
        f"ReadOnlyClient expects {name}({', '.join(expected)}). Re-read Client and its base, "
        f"adapt ReadOnlyClient, then the expectations and the bound in pyproject.toml"
    )
    actual = _parameters(method)
    assert actual == expected, (
        f"{BROKEN}{cls.__qualname__}.{name} now takes ({', '.join(actual)}), "
        f"ReadOnlyClient expects ({', '.join(expected)}). Re-read it, adapt ReadOnlyClient, "
        f"then the expectations and the bound in pyproject.toml"
    )


@pytest.mark.parametrize("name", list(OVERRIDDEN))
def test_read_only_client_overrides_match_the_expectations(name):
    """Keeps this file and transport.py in step: an override is written for these parameters."""
    assert name in vars(ReadOnlyClient), f"ReadOnlyClient no longer overrides {name}"
    assert _parameters(vars(ReadOnlyClient)[name]) == OVERRIDDEN[name]


def test_python_binance_constructor_takes_the_keywords_the_transport_passes():
    parameters = inspect.signature(binance.client.Client.__init__).parameters
    missing = [k for k in CONSTRUCTOR_KEYWORDS if k not in parameters]
    assert not missing, f"{BROKEN}Client.__init__ no longer takes {', '.join(missing)}"


def test_python_binance_still_has_the_settings_the_transport_sets():
    missing = [name for name in SETTINGS if not hasattr(binance.client.Client, name)]
    assert not missing, f"{BROKEN}Client no longer has {', '.join(missing)}"


def test_python_binance_still_calls_the_hooks_the_transport_overrides():
    """The constructor must still fetch the key and session through the overridden hooks, and
    signing must still read ``timestamp_offset`` and ``REQUEST_RECVWINDOW``. Nothing is sent."""
    transport = Transport("http://127.0.0.1:9", 1.0, 5000, WeightBudget(), pool=1)
    transport.clock_offset_ms = 3_600_000
    declared_key = object()
    try:
        client = ReadOnlyClient(transport, "api-key", private_key=declared_key, is_rsa=True)
        hmac_client = ReadOnlyClient(transport, "api-key", "api-secret")
        before = time.time() * 1000 + transport.clock_offset_ms
        kwargs = hmac_client._get_request_kwargs("get", True, data={"x": 1})
    except Exception as exc:
        failure = f"{BROKEN}building a ReadOnlyClient or signing a GET fails: {exc!r}"
    else:
        failure = None
    if failure:  # outside the except: no traceback through python-binance's code to render
        pytest.fail(failure, pytrace=False)
    assert client.PRIVATE_KEY is declared_key and client._is_rsa is True, (
        f"{BROKEN}Client() no longer loads its key through _init_private_key()"
    )
    assert client.session is transport.session, (
        f"{BROKEN}Client() no longer builds its session through _init_session()"
    )
    query = kwargs.get("params") if isinstance(kwargs, dict) else None
    params = dict(p.partition("=")[::2] for p in query.split("&")) if query else {}
    missing = sorted({"x", "timestamp", "recvWindow", "signature"} - params.keys())
    assert not missing, (
        f"{BROKEN}_get_request_kwargs() signs a GET without {', '.join(missing)} in its params "
        f"(it returned the keys {sorted(kwargs)} and params {sorted(params)})"
    )
    assert int(params["timestamp"]) >= before - 1, (
        f"{BROKEN}signing no longer adds timestamp_offset to the timestamp"
    )
    assert params["recvWindow"] == "5000", (
        f"{BROKEN}signing no longer sends REQUEST_RECVWINDOW as recvWindow"
    )


def test_installed_python_binance_is_within_the_declared_bound():
    version = importlib.metadata.version("python-binance")
    bound = RUNTIME["python-binance"].specifier
    assert bound.contains(version, prereleases=True), (
        f"python-binance {version} is installed, outside pyproject.toml's bound {bound}: "
        f"the transport's reliance on its internals is verified only within the bound"
    )
