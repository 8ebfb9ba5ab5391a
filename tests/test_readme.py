"""The README and docs/ stay in step with mesg.yml and with each other.

- docs/tasks.md's generated tables match mesg.yml (tools/task_tables.py), .env.example and
  docs/configuration.md name every PUSHER_* variable;
- the README stays short, every relative link in it and in docs/ resolves (file and anchor);
- every figure is marked with its id and docs/benchmarks.md says how each id is measured;
- no issue number or commit hash in the docs a newcomer reads.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _load_tool() -> ModuleType:
    """tools/ is not a package: import tools/task_tables.py by its path."""
    path = ROOT / "tools" / "task_tables.py"
    spec = importlib.util.spec_from_file_location("task_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


task_tables = _load_tool()


def _pusher_variables() -> list[str]:
    definition = yaml.safe_load((ROOT / "mesg.yml").read_text(encoding="utf-8"))
    names = [entry.split("=", 1)[0] for entry in definition["configuration"]["env"]]
    return [name for name in names if name.startswith("PUSHER_")]


def test_tasks_page_generated_section_is_current() -> None:
    page = ROOT / "docs" / "tasks.md"
    assert task_tables.updated_page(ROOT / "mesg.yml", page) == page.read_text(encoding="utf-8"), (
        "docs/tasks.md's task tables are out of date: run python tools/task_tables.py"
    )


def test_check_fails_on_drift(tmp_path: Path) -> None:
    page = tmp_path / "tasks.md"
    current = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    page.write_text(current.replace("| `appId` |", "| `appID` |", 1), encoding="utf-8")
    assert task_tables.main(["--check"], page=page) == 1
    assert page.read_text(encoding="utf-8") != current
    assert task_tables.main([], page=page) == 0
    assert page.read_text(encoding="utf-8") == current
    page.write_text("no markers", encoding="utf-8")
    assert task_tables.main(["--check"], page=page) == 2


def test_connection_inputs_are_listed_once() -> None:
    definition = yaml.safe_load((ROOT / "mesg.yml").read_text(encoding="utf-8"))
    shared = task_tables.common_inputs(definition["tasks"])
    assert {"appId", "key", "secret", "host", "timeout", "keepAlive"} <= set(shared)
    generated = task_tables.generate(definition)
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
    assert list(task_tables.common_inputs(definition["tasks"])) == ["host"]
    generated = task_tables.generate(definition)
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
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(rf"\b{variable}\b", readme), f"{variable} is not in README.md's summary"
    assert re.search(rf"^\| `{variable}` \|", configuration, re.MULTILINE), (
        f"{variable} has no row in docs/configuration.md"
    )
    # An assignment line, set or commented out, not just a mention in a comment.
    assert re.search(rf"^(# ?)?{variable}=", example, re.MULTILINE), f"{variable} has no line in .env.example"


# --- the docs a newcomer reads -------------------------------------------------------------

README_MAX_LINES = 300
# CHANGELOG.md is history: its links are checked, but it may name commits and issues.
DOCS = [ROOT / "README.md", ROOT / "local-engine" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Pages linked from here that another branch adds; checked once they exist.
WRITTEN_ELSEWHERE = {ROOT / "docs" / "testing.md"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FIGURE = re.compile(r"<!-- figure: ([a-z0-9-]+) -->")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links and headings there are not Markdown)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1 on repeats."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(page.read_text(encoding="utf-8")), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to docs/"


@pytest.mark.parametrize("page", [*DOCS, ROOT / "CHANGELOG.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if linked in WRITTEN_ELSEWHERE and not linked.exists():
            continue
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, broken


def _measured_ids() -> dict[str, str]:
    """docs/benchmarks.md's "How each figure is measured" table: id -> its command cell."""
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = text.split("## How each figure is measured", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z0-9-]+)` \|[^|]*\| (.+?) \|", section, re.MULTILINE))


def test_every_figure_says_how_it_is_measured() -> None:
    measured = _measured_ids()
    assert measured and all("`" in command for command in measured.values()), measured
    marked = {m for page in DOCS for m in FIGURE.findall(page.read_text(encoding="utf-8"))}
    assert marked - set(measured) == set(), "figures with no command in docs/benchmarks.md"
    assert set(measured) - marked == set(), "commands in docs/benchmarks.md for figures no page shows"


# An issue reference (issue 11, #11) or a commit hash (7 to 40 hex digits with a digit and a letter).
HISTORY = re.compile(
    r"[Ii]ssue ?#?[0-9]+|(?<![\w&/])#[0-9]{1,4}\b|\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"
)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_or_commit_hashes(page: Path) -> None:
    hits = [m.group(0) for m in HISTORY.finditer(page.read_text(encoding="utf-8"))]
    assert not hits, f"say what the code does and why instead (history goes to CHANGELOG.md): {hits}"


def _sources() -> list[Path]:
    """The code whose comments and docstrings a newcomer reads (tests/ has its own keeper)."""
    roots = [
        ROOT / "src",
        ROOT / "local-engine" / "src",
        ROOT / "benchmarks",
        ROOT / "tools",
        ROOT / "scripts",
    ]
    return sorted(
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".js", ""}
        and not {"_proto", "__pycache__"} & set(path.parts)
        and ".egg-info" not in str(path)
    )


def test_no_issue_numbers_or_commit_hashes_in_code() -> None:
    hits = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _sources()
        for m in HISTORY.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not hits, f"say what the code does and why instead (history goes to CHANGELOG.md): {hits}"


def test_architecture_lists_every_import_contract() -> None:
    """docs/architecture.md's contracts table names exactly pyproject.toml's import-linter contracts."""
    contracts = set(
        re.findall(r'^id = "([a-z-]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    )
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z-]+)` \(", architecture, re.MULTILINE))
    assert contracts and documented == contracts
