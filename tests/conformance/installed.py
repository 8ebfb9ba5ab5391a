"""The service as a user installs it: a wheel of this checkout in a throwaway venv, run with the
``mesg-pusher`` entry point and only the variables an engine sets.

Why: the conformance checks must catch what the in-tree tests cannot see: a module or the
mesg.yml missing from the wheel, a dependency missing from pyproject.toml, an entry point that
does not start the service. ``CONFORMANCE_VENV=/some/dir`` keeps the venv between runs (its
dependencies are installed once; the wheel is reinstalled every time).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.support.processes import Child, ProcessError

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: the working tree as it is, not a commit.
SOURCES = ("src", "pyproject.toml", "README.md")


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProcessError(
            f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def build_wheel(workdir: Path) -> Path:
    """A wheel of the working tree, built from a copy so the checkout gains no build/ files."""
    source = workdir / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = workdir / "wheels"
    # The test venv has setuptools >= 77 (grpcio-tools needs it): no isolated build environment.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(source)],
        "building the wheel",
    )  # fmt: skip
    (wheel,) = wheels.glob("mesg_pusher-*.whl")
    return wheel


def install(venv: Path, wheel: Path) -> Path:
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
            "import mesg_pusher, sys; sys.stdout.write(mesg_pusher.__file__)",
        ],
        "importing the installed package",
    )
    if not Path(located).resolve().is_relative_to(venv.resolve()):
        raise ProcessError(f"the venv imports mesg_pusher from {located}, not from its own site-packages")
    return venv / "bin" / "mesg-pusher"


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
