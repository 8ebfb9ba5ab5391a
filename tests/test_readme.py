"""README.md and .env.example stay in step with mesg.yml."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _load_tool() -> ModuleType:
    """tools/ is not a package: import tools/readme_tables.py by its path."""
    path = ROOT / "tools" / "readme_tables.py"
    spec = importlib.util.spec_from_file_location("readme_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme_tables = _load_tool()


def _pusher_variables() -> list[str]:
    definition = yaml.safe_load((ROOT / "mesg.yml").read_text(encoding="utf-8"))
    names = [entry.split("=", 1)[0] for entry in definition["configuration"]["env"]]
    return [name for name in names if name.startswith("PUSHER_")]


def test_readme_generated_section_is_current() -> None:
    current = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_tables.updated_readme(ROOT / "mesg.yml", ROOT / "README.md") == current, (
        "README.md's task tables are out of date: run python tools/readme_tables.py"
    )


def test_connection_inputs_are_listed_once() -> None:
    definition = yaml.safe_load((ROOT / "mesg.yml").read_text(encoding="utf-8"))
    shared = readme_tables.common_inputs(definition["tasks"])
    assert {"appId", "key", "secret", "host", "timeout", "keepAlive"} <= set(shared)
    generated = readme_tables.generate(definition)
    assert generated.count("| `appId` |") == 1
    assert "| `batch[].channel` | String | yes |" in generated


def test_common_inputs_and_events() -> None:
    shared = {"type": "String", "optional": True, "description": "Shared."}
    definition = {
        "tasks": {
            "a": {"inputs": {"host": shared, "x": {"type": "Number"}}},
            "b": {"inputs": {"host": shared, "x": {"type": "String"}}},
        },
        "events": {"ping": {"name": "Ping", "data": {"at": {"type": "Number", "repeated": True}}}},
    }
    assert list(readme_tables.common_inputs(definition["tasks"])) == ["host"]
    generated = readme_tables.generate(definition)
    assert "### Connection inputs (every task)" in generated
    assert generated.count("| `x` |") == 2
    assert "## Events" in generated and "| `at` | list of Number | yes |" in generated


SEED_VARIABLES = {
    "PUSHER_APP_ID",
    "PUSHER_APP_KEY",
    "PUSHER_APP_SECRET",
    "PUSHER_CLUSTER",
    "PUSHER_USE_TLS",
    "PUSHER_HOST",
    "PUSHER_PORT",
    "PUSHER_PROXY",
    "PUSHER_TIMEOUT",
    "PUSHER_KEEP_ALIVE",
}


def test_the_original_services_variables_are_all_declared() -> None:
    assert set(_pusher_variables()) >= SEED_VARIABLES


@pytest.mark.parametrize("variable", _pusher_variables())
def test_pusher_variable_documented(variable: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(rf"\b{variable}\b", readme), f"{variable} is not in README.md"
    # An assignment line, set or commented out, not just a mention in a comment.
    assert re.search(rf"^(# ?)?{variable}=", example, re.MULTILINE), f"{variable} has no line in .env.example"
