"""Types are a rule, not a trend: mypy runs strict on the whole of bot/ and storage/ with no
baseline to hide errors under, and tests/ and bench/ are type-checked too (.ci/typecheck).

These tests read the configuration; CI runs .ci/typecheck itself, which fails on any error.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TYPECHECK = (ROOT / ".ci" / "typecheck").read_text()
PRODUCT_PACKAGES = ("bot", "storage")

# Per-module options that, set to these values, would switch off part of --strict.
RELAXING = {
    "ignore_errors": True,
    "disallow_untyped_defs": False,
    "disallow_incomplete_defs": False,
    "disallow_any_generics": False,
    "disallow_untyped_calls": False,
    "check_untyped_defs": False,
    "disallow_untyped_decorators": False,
    "warn_return_any": False,
    "no_implicit_reexport": False,
    "strict_equality": False,
    "warn_unused_ignores": False,
}


def _mypy() -> dict[str, Any]:
    config: dict[str, Any] = PYPROJECT["tool"]["mypy"]
    return config


def _is_product_module(pattern: str) -> bool:
    return pattern.split(".")[0] in PRODUCT_PACKAGES


def test_no_ratchet_baseline_is_left() -> None:
    assert not (ROOT / ".ci" / "mypy-baseline.txt").exists()
    assert "baseline" not in TYPECHECK.lower()
    assert "ratchet" not in TYPECHECK.lower()


def test_mypy_is_strict_for_bot_and_storage() -> None:
    config = _mypy()
    assert config.get("strict") is True
    for package in PRODUCT_PACKAGES:
        assert package in config.get("files", [])


def test_no_override_relaxes_product_code() -> None:
    for override in _mypy().get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        product = [m for m in modules if _is_product_module(m)]
        if not product:
            continue
        relaxed = {k: v for k, v in override.items() if RELAXING.get(k) == v}
        assert not relaxed, f"{product} relaxed by {relaxed}"


def test_typecheck_checks_tests_and_bench_too() -> None:
    commands = [line for line in TYPECHECK.splitlines() if "mypy" in line.lower()]
    assert any("tests" in line and "bench" in line for line in commands), TYPECHECK
    assert (ROOT / ".ci" / "run").read_text().count("bash .ci/typecheck") == 1
