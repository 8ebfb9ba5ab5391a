"""The service as a user installs it: a wheel built from this checkout's root, alone in a fresh
venv, run with the ``mesg-pusher`` entry point and only the variables an engine sets.

Why: the conformance checks and the packaging checks must catch what the in-tree tests cannot
see: a module or the mesg.yml missing from the wheel, a module in it that needs the checkout or
a test dependency, a dependency missing from pyproject.toml, an entry point that does not start
the service. ``CONFORMANCE_VENV=/some/dir`` keeps the venv between runs (its dependencies are
installed once; the wheel is reinstalled every time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.checkout import ROOT
from tests.support.processes import Child, ProcessError


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProcessError(
            f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def checkout_files() -> list[str]:
    """The files of the working tree as a fresh clone plus the uncommitted change would hold them:
    tracked and untracked ones, less what .gitignore leaves out (.venv, node_modules, builds)."""
    listed = _run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], "git"
    )
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@dataclass(frozen=True)
class Project:
    """A distribution of this repository: where its pyproject.toml is, its package, its script."""

    folder: str
    package: str
    script: str


SERVICE = Project(".", "mesg_pusher", "mesg-pusher")
LOCAL_ENGINE = Project("local-engine", "mesg_local_engine", "mesg-local-engine")


def build_wheel(workdir: Path, project: Project = SERVICE) -> Path:
    """``project``'s wheel, as ``pip wheel`` in its folder builds it (the service's: at the root).

    From a copy of the whole working tree (local-engine/, benchmarks/, tests/ and tools/
    included, so the checks see whether packaging picks any of them up), so the checkout itself
    gains no build/ files.
    """
    source = workdir / "source"
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    wheels = workdir / "wheels"
    # The test venv has setuptools >= 77 (grpcio-tools needs it): no isolated build environment.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(source / project.folder)],
        "building the wheel",
    )  # fmt: skip
    (wheel,) = wheels.glob(f"{project.package}-*.whl")
    return wheel


def install(venv: Path, wheel: Path, project: Project = SERVICE) -> Path:
    """Install ``wheel`` with its dependencies into ``venv``; return the entry point."""
    fresh = not (venv / "bin" / "python").exists()
    if fresh:
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating the venv")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet"]
    if fresh:
        _run([*pip, str(wheel)], "pip install of the wheel")
    else:
        _run([*pip, "--force-reinstall", "--no-deps", str(wheel)], "pip install of the wheel")
        _run([*pip, str(wheel)], "pip install of the dependencies")
    located = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import {project.package}, sys; sys.stdout.write({project.package}.__file__)",
        ],
        "importing the installed package",
    )
    if not Path(located).resolve().is_relative_to(venv.resolve()):
        raise ProcessError(
            f"the venv imports {project.package} from {located}, not from its own site-packages"
        )
    return venv / "bin" / project.script


@dataclass(frozen=True)
class Installation:
    """A distribution installed from its wheel alone: the wheel, and the venv's console script."""

    #: None when ``CONFORMANCE_SERVICE`` names an installation made elsewhere.
    wheel: Path | None
    entry_point: Path

    @property
    def python(self) -> Path:
        return self.entry_point.parent / "python"


@contextmanager
def installation(project: Project = SERVICE) -> Iterator[Installation]:
    """Build ``project``'s wheel and install it alone into a fresh venv (removed afterwards).

    For the service, ``CONFORMANCE_SERVICE=/path/to/bin/mesg-pusher`` uses that installation
    instead, as it is (another release, or a deliberately broken copy to see the checks fail),
    and ``CONFORMANCE_VENV`` keeps the venv.
    """
    given = os.environ.get("CONFORMANCE_SERVICE") if project == SERVICE else None
    if given:
        yield Installation(None, Path(given))
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"{project.script}-install-"))
    keep = os.environ.get("CONFORMANCE_VENV") if project == SERVICE else None
    try:
        wheel = build_wheel(workdir, project)
        yield Installation(wheel, install(Path(keep) if keep else workdir / "venv", wheel, project))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def installed_definition(entry_point: Path) -> Path:
    """mesg.yml as shipped in the wheel (the engine compiles the service from the same file)."""
    python = entry_point.parent / "python"
    located = _run(
        [str(python), "-c", "import mesg_pusher, pathlib, sys; "
         "sys.stdout.write(str(pathlib.Path(mesg_pusher.__file__).with_name('mesg.yml')))"],
        "locating mesg.yml",
    )  # fmt: skip
    return Path(located)


def definition_json(mesg_yml: Path, out: Path) -> Path:
    """The tasks' and events' parameters as JSON, for engine.js to validate with."""
    raw = yaml.safe_load(mesg_yml.read_text())
    definition = {
        "name": raw["name"],
        "tasks": {key: {"inputs": t.get("inputs") or {}, "outputs": t.get("outputs") or {}}
                  for key, t in raw["tasks"].items()},
        "events": {key: {"data": e.get("data") or {}} for key, e in (raw.get("events") or {}).items()},
    }  # fmt: skip
    out.write_text(json.dumps(definition))
    return out


class InstalledService(Child):
    """One ``mesg-pusher`` process started as an engine node starts it: only its variables set."""

    def __init__(self, entry_point: Path, env: Mapping[str, str], name: str = "service") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="conformance-service-"))  # no stray .env
        base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ", "SYSTEMROOT") if k in os.environ}
        super().__init__(name, [str(entry_point)], {**base, "PYTHONUNBUFFERED": "1", **env})

    def start(self, stdout: int | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )

    def assert_alive(self, seconds: float) -> None:
        """Still running after ``seconds`` (a crash loop or exit would show here)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(
                    f"service exited ({self.proc and self.proc.returncode}):\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        code = super().stop(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)
        return code
